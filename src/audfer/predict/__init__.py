"""Video -> face track -> crops -> windows -> expression and AU probabilities; checkpoint loading without Lightning;
ONNX export."""
