"""Temporal sampling of each base model (reference README §4): which frame indices a clip gives.

All functions take the clip's frame count ``n`` and return ``num`` indices into ``[0, n)``; a clip
shorter than needed is padded by repeating frames (indices repeat, never go out of range).
``rng=None`` means test time: deterministic (unlike the official M3DFEL code, which also
randomises at test time).
"""

from __future__ import annotations

import numpy as np

from ..errors import AudferError


def _check(n: int) -> None:
    if n < 1:
        raise AudferError(f"a clip needs at least one frame, got {n}")


def m3dfel_indices(n: int, num: int = 16, rng: np.random.Generator | None = None) -> np.ndarray:
    """M3DFEL: frame_i = int(n * i / num) + offset, offset random in [0, num) in training, 0 at test, clamped."""
    _check(n)
    base = (n * np.arange(num)) // num
    offset = int(rng.integers(0, num)) if rng is not None else 0
    return np.minimum(base + offset, n - 1)


def segment_indices(n: int, segments: int = 8, per_segment: int = 2, rng: np.random.Generator | None = None) -> np.ndarray:
    """Former-DFER: ``segments`` equal segments, ``per_segment`` consecutive frames from each
    (random start inside the segment in training, its centre at test)."""
    _check(n)
    out = []
    edges = np.linspace(0, n, segments + 1)
    for s in range(segments):
        lo, hi = int(edges[s]), max(int(edges[s + 1]), int(edges[s]) + 1)
        span = max(hi - lo - per_segment + 1, 1)
        start = lo + (int(rng.integers(0, span)) if rng is not None else span // 2)
        out.extend(min(start + k, n - 1) for k in range(per_segment))
    return np.asarray(out)


def strided_indices(n: int, num: int = 16, stride: int = 4, rng: np.random.Generator | None = None,
                    view: int = 0, views: int = 1) -> np.ndarray:
    """MAE-DFER: ``num`` frames ``stride`` apart from a start that is random in training; at test,
    ``views`` evenly spaced temporal views (``view`` picks one); short clips pad by repetition."""
    _check(n)
    length = (num - 1) * stride + 1
    slack = max(n - length, 0)
    if rng is not None:
        start = int(rng.integers(0, slack + 1))
    else:
        start = int(round(slack * view / (views - 1))) if views > 1 else slack // 2
    idx = start + stride * np.arange(num)
    if n < length:  # pad by repeating frames: spread the available frames over the window
        idx = np.floor(np.arange(num) * n / num).astype(int)
    return np.minimum(idx, n - 1)


def uniform_indices(n: int, num: int = 16, rng: np.random.Generator | None = None) -> np.ndarray:
    """``num`` frames spread evenly over the clip (centres of equal segments; jittered in training)."""
    _check(n)
    pos = (np.arange(num) + (rng.random(num) if rng is not None else 0.5)) * n / num
    return np.minimum(pos.astype(int), n - 1)


SAMPLERS = {"m3dfel": m3dfel_indices, "former_dfer": segment_indices, "mae_dfer": strided_indices, "uniform": uniform_indices}


def sample_indices(kind: str, n: int, num: int = 16, rng: np.random.Generator | None = None, **kwargs) -> np.ndarray:
    """Indices of ``kind`` (m3dfel, former_dfer, mae_dfer, uniform) for a clip of n frames."""
    if kind not in SAMPLERS:
        raise AudferError(f"unknown sampling {kind!r}; expected one of {', '.join(SAMPLERS)}")
    if kind == "former_dfer":
        per = kwargs.pop("per_segment", 2)
        if num % per:
            raise AudferError(f"former_dfer sampling: {num} frames is not a multiple of {per} per segment")
        return segment_indices(n, num // per, per, rng)
    return SAMPLERS[kind](n, num, rng=rng, **kwargs)
