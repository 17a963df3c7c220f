"""RandAugment with timm's semantics for clips (MAE-DFER's ``--aa``), and timm's config strings."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from audfer.data.transforms.base import ClipStep
from audfer.data.transforms.colour import _frame_mean, _gray, _per_clip
from audfer.errors import ConfigError


def parse_randaugment(spec: str | Sequence[float]) -> dict:
    """timm's RandAugment config string (``rand-m7-n4-mstd0.5-inc1``, MAE-DFER's ``--aa``) or ``[m, n]``
    -> ``{"m", "n", "mstd", "p", "increasing"}``. ``[m, n]`` means ``rand-m<m>-n<n>-inc1`` (no noise)."""
    if isinstance(spec, (list, tuple)):
        if len(spec) != 2:
            raise ConfigError(f"randaugment: expected [m, n] or a string like rand-m7-n4-mstd0.5-inc1, got {spec!r}")
        return {"m": float(spec[0]), "n": int(spec[1]), "mstd": 0.0, "p": 0.5, "increasing": True}
    parts = str(spec).split("-")
    if parts[0] != "rand":
        raise ConfigError(f"randaugment: {spec!r} does not start with 'rand-'")
    out = {"m": 10.0, "n": 2, "mstd": 0.0, "p": 0.5, "increasing": False}
    for part in parts[1:]:
        found = re.fullmatch(r"([a-z]+)([0-9.]+)", part)
        if not found:
            raise ConfigError(f"randaugment: cannot read {part!r} in {spec!r}")
        key, val = found.groups()
        if key == "m":
            out["m"] = float(val)
        elif key == "n":
            out["n"] = int(val)
        elif key == "mstd":
            out["mstd"] = float(val)
        elif key == "inc":
            out["increasing"] = bool(int(val))
        elif key == "p":
            out["p"] = float(val)
        else:
            raise ConfigError(f"randaugment: unknown section {part!r} in {spec!r} (expected m, n, mstd, inc, p)")
    return out


_FILL = 128.0  # timm's default fill for geometric ops (VideoMAE's create_random_augment passes no img_mean)


def _warp(x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Resample every frame of a batch of clips ``(n, T, 3, H, W)`` with clip ``i``'s affine map ``coef[i]`` =
    ``(a, b, c, d, e, f)``: the output pixel centre ``(xo, yo)`` reads the input at ``(a xo + b yo + c,
    d xo + e yo + f)`` (PIL's ``Image.transform`` convention); bicubic (torch's, A = -0.75), every tap outside the
    frame reading timm's fill 128 (grid sampling of ``x - 128`` with zero padding, plus 128). The Rotate op's warp;
    the shears and translations, whose other coordinate lands on pixel centres, take ``_shift_lines``."""
    n, t, ch, h, w = x.shape
    yo, xo = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=x.device) + 0.5,
        torch.arange(w, dtype=torch.float32, device=x.device) + 0.5,
        indexing="ij",
    )
    a, b, c, d, e, f = (coef[:, k].view(n, 1, 1) for k in range(6))
    xi, yi = a * xo + b * yo + c, d * xo + e * yo + f
    grid = torch.stack([2 * xi / w - 1, 2 * yi / h - 1], -1)  # (n, H, W, 2): every frame of a clip on one grid
    frames = (x - _FILL).reshape(n, t * ch, h, w)
    out = F.grid_sample(frames, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    return out.view(n, t, ch, h, w) + _FILL


_CUBIC_A = -0.75  #: torch's bicubic constant (``grid_sample``, ``interpolate``)


def _cubic_weights(frac: np.ndarray) -> np.ndarray:
    """The 4 bicubic tap weights (A = -0.75, torch's ``get_cubic_upsample_coefficients``) for positions ``frac`` in
    [0, 1) past the second tap, in float64 -> ``(..., 4)``."""
    A = _CUBIC_A

    def near(u: np.ndarray) -> np.ndarray:  # |u| <= 1
        return ((A + 2) * u - (A + 3)) * u * u + 1

    def far(u: np.ndarray) -> np.ndarray:  # 1 < |u| < 2
        return ((A * u - 5 * A) * u + 8 * A) * u - 4 * A

    return np.stack([far(frac + 1), near(frac), near(1 - frac), far(2 - frac)], -1)


def _shift_lines(x: torch.Tensor, shifts: np.ndarray, axis: int = -1) -> torch.Tensor:
    """Resample each line of float frames ``(..., H, W)`` along ``axis`` at its position plus ``shifts[line]`` (in
    pixels, float64 on the host): ``axis=-1``, row ``y`` reads ``x + shifts[y]`` (shears and translations along x);
    ``axis=-2``, column ``x`` reads ``y + shifts[x]`` (the same on the transposed frames). Bicubic (A = -0.75, the
    weights of ``_cubic_weights`` at the shift's fraction, rounded once to float32), every tap outside the frame
    reading the fill 128, each output ``((w0 v0 + w1 v1) + w2 v2) + w3 v3``: elementwise in a fixed order, so the same
    pixels on any device and at any batch or thread count. On the CPU rows of equal integer shift are one band, a few
    slices of the frames each (a shear of 0.21 over 160 rows: about 35 bands), four taps instead of grid sampling's
    sixteen; elsewhere every tap is gathered at once (``_shift_lines_gathered``)."""
    if axis == -2:  # contiguous rows: a band of a few columns would be slow to slice
        return _shift_lines(x.transpose(-1, -2).contiguous(), shifts).transpose(-1, -2).contiguous()
    h, w = x.shape[-2:]
    k = np.clip(np.floor(shifts), -(w + 2), w + 2).astype(np.int64)  # past the frame all taps are fill anyway
    weights = torch.tensor(_cubic_weights(shifts - np.floor(shifts)), dtype=torch.float32, device=x.device)
    if x.device.type != "cpu":
        return _shift_lines_gathered(x, k, weights)
    out, tmp = torch.empty_like(x), torch.empty_like(x)  # written in place: fresh temporaries cost page faults
    taps = [weights[:, j : j + 1].contiguous() for j in range(4)]  # (H, 1) each
    fills = [t * _FILL for t in taps]
    starts = np.flatnonzero(np.diff(k, prepend=k[0] - 1))
    for r0, r1 in zip(starts, [*starts[1:], h]):
        acc, term = out[..., r0:r1, :], tmp[..., r0:r1, :]
        for j in range(4):
            into = acc if j == 0 else term
            off = int(k[r0]) + j - 1  # output column c reads input column c + off
            lo = min(max(0, -off), w)
            hi = max(min(w, w - off), lo)
            if lo < hi:
                torch.mul(x[..., r0:r1, lo + off : hi + off], taps[j][r0:r1], out=into[..., lo:hi])
            if lo > 0:  # the taps outside the frame read the fill
                into[..., :lo] = fills[j][r0:r1]
            if hi < w:
                into[..., hi:] = fills[j][r0:r1]
            if j:
                acc.add_(term)
    return out


def _shift_lines_gathered(x: torch.Tensor, k: np.ndarray, weights: torch.Tensor) -> torch.Tensor:
    """``_shift_lines`` along rows off the CPU: each tap of every row gathered at once (a few kernels instead of a few
    per band), with the same products and sums, so the same pixels (tested on the CPU)."""
    h, w = x.shape[-2:]
    cols = torch.arange(w, device=x.device).view(1, w) + torch.as_tensor(k, device=x.device).view(h, 1)
    out = None
    for j in range(4):
        src = cols + (j - 1)
        inside = (src >= 0) & (src < w)
        v = torch.gather(x, -1, src.clamp(0, w - 1).expand(*x.shape))
        term = torch.where(inside, v, torch.full_like(v, _FILL)) * weights[:, j : j + 1]
        out = term if out is None else out + term
    assert out is not None
    return out


def _histograms(x: torch.Tensor) -> torch.Tensor:
    """The 256-level histogram of each frame and channel of ``(..., H, W)`` in [0, 255] -> int64 ``(prod(...), 256)``:
    counts, so any way of counting gives the same table (a uint8 clip on the CPU: ``numpy.bincount`` plane by plane)."""
    if x.dtype == torch.uint8 and x.device.type == "cpu":
        planes = x.reshape(-1, x.shape[-2] * x.shape[-1]).numpy()
        return torch.from_numpy(np.stack([np.bincount(p, minlength=256) for p in planes]).astype(np.int64))
    flat = x.round().clamp(0, 255).to(torch.int64).reshape(-1, x.shape[-2] * x.shape[-1])
    return torch.zeros(flat.shape[0], 256, dtype=torch.int64, device=x.device).scatter_add_(
        1, flat, torch.ones_like(flat)
    )


def _equalize_lut(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.equalize`` table per frame and channel of ``(..., H, W)`` in [0, 255] (float, or uint8) ->
    int64 ``(prod(...), 256)``, on the tensor's device: each channel's histogram, ``step = (pixels - count of the last
    used level) // 255``, the level ``i`` mapped to ``(pixels below i + step // 2) // step`` (unchanged when ``step``
    is 0)."""
    hist = _histograms(x)
    levels = torch.arange(256, device=x.device)
    last = hist.gather(1, (levels * (hist > 0)).amax(1, keepdim=True))
    step = (hist.sum(1, keepdim=True) - last) // 255
    lut = ((hist.cumsum(1) - hist) + step // 2) // step.clamp(min=1)
    return torch.where(step > 0, lut.clamp(max=255), levels)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.equalize`` per frame and channel of float ``(..., H, W)`` in [0, 255] (``_equalize_lut``)."""
    flat = x.round().clamp(0, 255).to(torch.int64).reshape(-1, x.shape[-2] * x.shape[-1])
    return _equalize_lut(x).gather(1, flat).reshape(x.shape).to(x.dtype)


#: The ops whose output pixel depends only on the same pixel's value (and on statistics of the frame): on a uint8
#: clip each is a table of 256 levels per frame and channel (``RandAugment.apply_params`` on the CPU).
POINTWISE = frozenset(
    {
        "AutoContrast",
        "Equalize",
        "Invert",
        "Posterize",
        "PosterizeIncreasing",
        "Solarize",
        "SolarizeIncreasing",
        "SolarizeAdd",
        "Brightness",
        "BrightnessIncreasing",
        "Contrast",
        "ContrastIncreasing",
    }
)


#: The pointwise ops that read statistics of the frame (its range, histogram or mean grey level).
_NEEDS_STATS = frozenset({"AutoContrast", "Equalize", "Contrast", "ContrastIncreasing"})
#: The 256 levels of a uint8 channel as float, shaped to broadcast against clips ``(n, T, 3, H, W)``.
_LEVELS = torch.arange(256, dtype=torch.float32).view(1, 1, 1, 1, 256)


def _enhance_factor(op: str, lvl: list[float], signs: list[float], like: torch.Tensor) -> torch.Tensor:
    """timm's enhance factor per clip: ``1 + sign 0.9 l`` (``...Increasing``) or ``1.8 l + 0.1``."""
    inc = op.endswith("Increasing")
    return _per_clip([1.0 + s * 0.9 * v if inc else v * 1.8 + 0.1 for v, s in zip(lvl, signs)], like)


def _pointwise(op: str, v: torch.Tensor, x: torch.Tensor, lvl: list[float], signs: list[float]) -> torch.Tensor:
    """A ``POINTWISE`` op on the float values ``v`` with the statistics (per frame and channel) of the float clips
    ``x`` ``(n, T, 3, H, W)`` in [0, 255], clip ``i`` at level ``lvl[i]`` with sign ``signs[i]``: ``v`` is ``x``
    itself (the op on the clips) or the 256 levels broadcasting against it (the op's tables). Elementwise on ``v``,
    so each level gets exactly the value a pixel of that level gets."""
    if op == "AutoContrast":
        lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
        return torch.where(hi > lo, (v - lo) * 255.0 / (hi - lo).clamp(min=1e-6), v)
    if op == "Equalize":  # the clips only: apply_params builds its table from the uint8 histograms
        return _equalize(x)
    if op == "Invert":
        return 255.0 - v
    if op in ("Posterize", "PosterizeIncreasing"):
        bits = [4 - int(u * 4) if op == "PosterizeIncreasing" else int(u * 4) for u in lvl]
        shift = torch.tensor([max(0, 8 - b) for b in bits], dtype=torch.int32, device=x.device).view(-1, 1, 1, 1, 1)
        return ((v.round().clamp(0, 255).to(torch.int32) >> shift) << shift).to(x.dtype)
    if op in ("Solarize", "SolarizeIncreasing"):
        thresh = _per_clip([256 - int(u * 256) if op == "SolarizeIncreasing" else int(u * 256) for u in lvl], x)
        return torch.where(v >= thresh, 255.0 - v, v)
    if op == "SolarizeAdd":
        return torch.where(v < 128, (v + _per_clip([int(u * 110) for u in lvl], x)).clamp(max=255), v)
    f = _enhance_factor(op, lvl, signs, x)
    if op.startswith("Brightness"):
        base = torch.zeros_like(v)
    elif op.startswith("Contrast"):
        base = torch.floor(_frame_mean(_gray(x)) + 0.5)
        base = base.expand_as(v) if v is x else base
    else:
        raise ConfigError(f"{op!r} is not a pointwise RandAugment op")
    return base + f * (v - base)


def _smooth_sum(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1) summed over the inner pixels of ``(..., H, W)``, before its division
    by 13, term by term in a fixed order (a convolution's algorithm, and so its rounding, depends on the batch's
    shape). On 8-bit levels every partial sum is an integer below 2^24, so the sum is exact in float32 whatever its
    order (``_sharpen_uint8`` sums in integers)."""
    h, w = x.shape[-2:]
    acc = x[..., 1:-1, 1:-1] * 5.0
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) != (1, 1):
                acc = acc + x[..., dy : dy + h - 2, dx : dx + w - 2]
    return acc


def _sharpen_uint8(clip: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The Sharpness op on uint8 frames ``(T, 3, H, W)`` on the CPU with factor ``f``, as ``apply_group`` computes it
    on their float levels: the kernel's sum by OpenCV in 16-bit integers (exact: at most 13 x 255), then the same
    float division by 13 and blend, rounded to 8 bits; borders unchanged."""
    import cv2

    t, c, h, w = clip.shape
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32)
    planes = clip.reshape(t * c, h, w).numpy()
    acc = np.stack([cv2.filter2D(p, cv2.CV_16S, kernel, borderType=cv2.BORDER_ISOLATED) for p in planes])
    x = clip.float()
    base = x.clone()
    base[..., 1:-1, 1:-1] = torch.from_numpy(acc[:, 1:-1, 1:-1].astype(np.float32)).view(t, c, h - 2, w - 2) / 13.0
    return (base + f * (x - base)).clamp_(0, 255).round_().to(torch.uint8)


def _apply_tables(clip: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """uint8 frames ``(T, 3, H, W)`` (contiguous, on the CPU) through uint8 tables ``(1 or T, 1 or 3, 256)``, one
    per frame and channel (broadcast): OpenCV's ``LUT``, one call for a single table, else one per plane."""
    import cv2

    out = torch.empty_like(clip)
    src, dst, lut = clip.numpy(), out.numpy(), tables.numpy()
    t, c = lut.shape[:2]
    if t == 1 and c == 1:
        cv2.LUT(src.reshape(-1, src.shape[-1]), lut[0, 0], dst=dst.reshape(-1, dst.shape[-1]))
        return out
    for i in range(src.shape[0]):
        for k in range(src.shape[1]):
            cv2.LUT(src[i, k], lut[i if t > 1 else 0, k if c > 1 else 0], dst=dst[i, k])
    return out


class RandAugment(ClipStep):
    """RandAugment with timm's semantics for clips, as MAE-DFER applies it (``--aa rand-m7-n4-mstd0.5-inc1``).

    Official pipeline: sunlicai/MAE-DFER ``kinetics.py``, ``VideoClsDatasetFrame._aug_frame`` ->
    ``video_transforms.create_random_augment`` (VideoMAE's copy of timm's ``rand_augment_transform``;
    ``translate_const`` only, so the fill is timm's default grey 128, interpolation ``bicubic``):

    - ``n`` ops drawn *with replacement* from timm's 15 ops (the ``inc1`` "increasing" set: AutoContrast,
      Equalize, Invert, Rotate, PosterizeIncreasing, SolarizeIncreasing, SolarizeAdd, Color/Contrast/
      Brightness/SharpnessIncreasing, ShearX, ShearY, TranslateXRel, TranslateYRel);
    - each op applied with probability ``p`` = 0.5, at a magnitude drawn from N(m, mstd) clipped to [0, 10];
    - timm's magnitude mapping (level l = magnitude / 10, sign +-1 at random): rotate 30 l degrees, shear
      0.3 l, translate 0.45 l of the size, enhance factor 1 + 0.9 l (sign), posterize to ``4 - int(4 l)``
      bits (2 bits at m7), solarize above ``256 - int(256 l)``, solarize-add ``int(110 l)`` below 128;
    - one draw for the clip, applied to every frame (VideoMAE's video ``AugmentOp``); AutoContrast,
      Equalize and Contrast use each frame's own statistics, as PIL does per image;
    - the geometric ops resample bicubically with torch's kernel (A = -0.75; PIL's bicubic kernel differs, so pixels
      differ from timm's by rounding: under one level on average, tested against PIL), every tap outside the frame
      reading the fill 128; the shears and translations along one axis (``_shift_lines``), Rotate by grid sampling.

    Pixels are rounded to 8 bits after each op, as PIL's are. On the CPU a uint8 clip is processed as uint8
    (``apply_params``: tables for the pointwise ops), with the pixels of the float path that runs on the training
    device (``apply_batch``), bit for bit (tested).
    """

    per_pixel_random = True

    OPS_INCREASING = (
        "AutoContrast",
        "Equalize",
        "Invert",
        "Rotate",
        "PosterizeIncreasing",
        "SolarizeIncreasing",
        "SolarizeAdd",
        "ColorIncreasing",
        "ContrastIncreasing",
        "BrightnessIncreasing",
        "SharpnessIncreasing",
        "ShearX",
        "ShearY",
        "TranslateXRel",
        "TranslateYRel",
    )
    OPS = (
        "AutoContrast",
        "Equalize",
        "Invert",
        "Rotate",
        "Posterize",
        "Solarize",
        "SolarizeAdd",
        "Color",
        "Contrast",
        "Brightness",
        "Sharpness",
        "ShearX",
        "ShearY",
        "TranslateXRel",
        "TranslateYRel",
    )

    def __init__(self, m: float = 7, n: int = 4, mstd: float = 0.0, p: float = 0.5, increasing: bool = True) -> None:
        self.m, self.n, self.mstd, self.p = float(m), int(n), float(mstd), float(p)
        self.ops = self.OPS_INCREASING if increasing else self.OPS

    @classmethod
    def from_spec(cls, spec: str | Sequence[float]) -> RandAugment:
        """From timm's config string or ``[m, n]`` (``parse_randaugment``)."""
        return cls(**parse_randaugment(spec))

    def draw(self, rng: np.random.Generator) -> list[tuple[str, float, float]]:
        """The clip's ops: ``(name, magnitude, sign)`` for each op that fires."""
        chosen = rng.choice(len(self.ops), size=self.n, replace=True)
        out = []
        for k in chosen:
            if self.p < 1.0 and rng.random() > self.p:
                continue
            mag = rng.normal(self.m, self.mstd) if self.mstd > 0 else self.m
            mag = min(10.0, max(0.0, float(mag)))
            sign = -1.0 if rng.random() > 0.5 else 1.0
            out.append((self.ops[int(k)], mag, sign))
        return out

    @staticmethod
    def apply(x: torch.Tensor, op: str, mag: float, sign: float) -> torch.Tensor:
        """One op on float frames ``(T, 3, H, W)`` in [0, 255] (``apply_group`` for one clip)."""
        return RandAugment.apply_group(x[None], op, [mag], [sign])[0]

    @staticmethod
    def apply_group(x: torch.Tensor, op: str, mags: list[float], signs: list[float]) -> torch.Tensor:
        """One op on a batch of float clips ``(n, T, 3, H, W)`` in [0, 255], clip ``i`` at magnitude ``mags[i]`` with
        sign ``signs[i]``; every constant on the batch's device."""
        lvl = [m / 10.0 for m in mags]
        h, w = x.shape[-2:]
        if op in POINTWISE:
            return _pointwise(op, x, x, lvl, signs)
        if op.startswith(("Color", "Sharpness")):
            f = _enhance_factor(op, lvl, signs, x)
            if op.startswith("Color"):
                base = _gray(x).expand_as(x)
            else:  # PIL's SMOOTH kernel / 13, borders unchanged
                base = x.clone()
                base[..., 1:-1, 1:-1] = _smooth_sum(x) / 13.0
            return base + f * (x - base)
        if op == "Rotate":  # about the centre: x_in = R (x_out - centre) + centre
            coefs = []
            for v, s in zip(lvl, signs):
                a = math.radians(s * 30.0 * v)
                cx, cy = w / 2.0, h / 2.0
                ca, sa = math.cos(a), math.sin(a)
                coefs.append((ca, -sa, cx - ca * cx + sa * cy, sa, ca, cy - sa * cx - ca * cy))
            return _warp(x, torch.tensor(coefs, dtype=torch.float32, device=x.device))
        if op not in ("ShearX", "ShearY", "TranslateXRel", "TranslateYRel"):
            raise ConfigError(f"unknown RandAugment op {op!r}")
        axis = -2 if op in ("ShearY", "TranslateYRel") else -1  # the y ops resample columns
        size = x.shape[axis]
        centres = np.arange(x.shape[-1 if axis == -2 else -2], dtype=np.float64) + 0.5  # the lines' other coordinate
        out = []
        for i, (v, s) in enumerate(zip(lvl, signs)):
            if op.startswith("Shear"):  # x_in = x_out + factor * y_out (ShearY: the same with x and y swapped)
                shifts = s * 0.3 * v * centres
            else:  # x_in = x_out + pct * width (TranslateYRel: y and height)
                shifts = np.full_like(centres, s * 0.45 * v * size)
            out.append(_shift_lines(x[i], shifts, axis))
        return torch.stack(out) if len(out) > 1 else out[0][None]

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        if rng is None:
            return clip
        return self.apply_params(clip, self.draw(rng))

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[str, float, float]]:
        """``draw``."""
        return self.draw(rng)

    def apply_params(self, clip: torch.Tensor, params: list[tuple[str, float, float]]) -> torch.Tensor:
        """The ops ``draw`` gave, each on every frame, rounded to 8 bits between ops (as PIL does): ``apply_batch`` on
        a batch of one. On the CPU a uint8 clip stays uint8 between ops and each ``POINTWISE`` op is a table of its
        256 levels per frame and channel, computed by the float formula itself (``_pointwise``) and looked up
        (``_apply_tables``): the same pixels, bit for bit (tested against ``apply_batch`` for every op), for a
        fraction of the float path's passes over the clip (``benchmarks/bench_pipeline.py``)."""
        if clip.device.type != "cpu" or clip.dtype != torch.uint8:
            return self.apply_batch(clip[None], [params])[0]
        x = clip.contiguous()
        for op, mag, sign in params:
            if op == "Equalize":  # the table from the uint8 planes' histograms (the same counts)
                x = _apply_tables(x, _equalize_lut(x).to(torch.uint8).view(*x.shape[:2], 256))
            elif op in POINTWISE:
                stats = x[None].float() if op in _NEEDS_STATS else _LEVELS
                table = _pointwise(op, _LEVELS, stats, [mag / 10.0], [sign]).clamp(0, 255).round().to(torch.uint8)
                x = _apply_tables(x, table.view(*table.shape[1:3], 256))
            elif op.startswith("Sharpness"):
                x = _sharpen_uint8(x, _enhance_factor(op, [mag / 10.0], [sign], _LEVELS)[0])
            else:  # clamped and rounded in place: a fresh tensor, the same values as apply_batch's
                x = self.apply_group(x[None].float(), op, [mag], [sign]).clamp_(0, 255).round_().to(torch.uint8)[0]
        return x

    def apply_batch(self, clips: torch.Tensor, params: list[list[tuple[str, float, float]]]) -> torch.Tensor:
        """Each clip's drawn ops on a uint8 batch ``(B, T, 3, H, W)``: the ``k``-th ops of all clips that drew the same
        op run together (``apply_group``), each clip at its own magnitude and sign, rounded to 8 bits after each."""
        x = clips.float()
        for k in range(max((len(p) for p in params), default=0)):
            groups: dict[str, list[int]] = {}
            for i, p in enumerate(params):
                if k < len(p):
                    groups.setdefault(p[k][0], []).append(i)
            for op, rows in groups.items():
                mags, signs = [params[i][k][1] for i in rows], [params[i][k][2] for i in rows]
                if len(rows) == len(params):
                    x = self.apply_group(x, op, mags, signs).clamp(0, 255).round()
                else:
                    x[rows] = self.apply_group(x[rows], op, mags, signs).clamp(0, 255).round()
        return x.to(torch.uint8)
