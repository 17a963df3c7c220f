"""ONNX export of a model's two heads (``audfer export``) and the parity check against PyTorch.

The graph takes ``clips`` (B, T, 3, S, S) float, normalised as ``model.input_spec`` says, and returns
``logits`` (B, C) and, when the AU head is on, ``au_logits`` (B, 18); the batch axis is dynamic.
onnx / onnxruntime are an optional extra: ``pip install 'audfer[onnx]'``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audfer.errors import AudferError
from audfer.files import atomic_path
from audfer.models.base import DFERModel


class _Heads(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, clips):
        out = self.model(clips)
        return (out.logits, out.au_logits) if out.au_logits is not None else (out.logits,)


def export_onnx(model: DFERModel, path: str | Path, *, opset: int = 17) -> Path:
    """Write ``model`` as ONNX (legacy TorchScript exporter: no onnxscript needed); returns the path."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise AudferError("ONNX export needs the onnx extra: pip install 'audfer[onnx]'") from None
    model = model.eval()
    spec = model.input_spec
    x = torch.zeros(1, spec.frames, 3, spec.size, spec.size)
    has_au = getattr(model, "au_head", None) is not None
    names = ["logits", "au_logits"] if has_au else ["logits"]
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Heads(model),
            (x,),
            str(tmp),
            input_names=["clips"],
            output_names=names,
            opset_version=opset,
            dynamic_axes={"clips": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            dynamo=False,
        )
    return Path(path)


def onnx_parity(model: DFERModel, path: str | Path, *, batch: int = 2, seed: int = 0) -> dict[str, float]:
    """Max absolute difference between onnxruntime and PyTorch on a random batch, per output."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise AudferError("the ONNX parity check needs onnxruntime: pip install 'audfer[onnx]'") from None
    spec = model.input_spec
    x = torch.randn(batch, spec.frames, 3, spec.size, spec.size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = _Heads(model.eval())(x)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"clips": x.numpy()})
    names = [o.name for o in sess.get_outputs()]
    return {n: float(np.abs(g - r.numpy()).max()) for n, g, r in zip(names, got, ref)}


#: The largest onnxruntime-vs-PyTorch difference an export may show (per output, on a random batch).
ONNX_TOLERANCE = 1e-4


def export_checked(
    model: DFERModel, path: str | Path, *, opset: int = 17, tolerance: float = ONNX_TOLERANCE
) -> dict[str, float]:
    """``export_onnx`` then ``onnx_parity``: the per-output differences, or ``AudferError`` when one exceeds
    ``tolerance`` (the file is kept for inspection)."""
    export_onnx(model, path, opset=opset)
    diff = onnx_parity(model, path)
    if max(diff.values()) > tolerance:
        raise AudferError(f"{path}: ONNX output differs from PyTorch by {max(diff.values()):.2e} (> {tolerance:g})")
    return diff
