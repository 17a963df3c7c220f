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
    d xo + e yo + f)`` (PIL's ``Image.transform`` convention); bicubic, out-of-image areas filled with 128."""
    n, t, ch, h, w = x.shape
    yo, xo = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=x.device) + 0.5,
        torch.arange(w, dtype=torch.float32, device=x.device) + 0.5,
        indexing="ij",
    )
    a, b, c, d, e, f = (coef[:, k].view(n, 1, 1) for k in range(6))
    xi, yi = a * xo + b * yo + c, d * xo + e * yo + f
    grid = torch.stack([2 * xi / w - 1, 2 * yi / h - 1], -1).repeat_interleave(t, dim=0)  # (n T, H, W, 2)
    frames = x.reshape(n * t, ch, h, w)
    out = F.grid_sample(frames, grid, mode="bicubic", padding_mode="zeros", align_corners=False).view(n, t, ch, h, w)
    # how much of each output pixel's bilinear footprint lies inside the frame (what sampling a frame of ones with zero
    # padding gives), once per clip: along each axis min(u + 1, size - u) clamped to [0, 1], u the pixel-index position
    u, v = xi - 0.5, yi - 0.5
    inside = torch.minimum(u + 1, w - u).clamp(0, 1) * torch.minimum(v + 1, h - v).clamp(0, 1)
    return out + (1 - inside.view(n, 1, 1, h, w)) * _FILL


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.equalize`` per frame and channel of float ``(..., H, W)`` in [0, 255], on the tensor's device:
    each channel's histogram, ``step = (pixels - count of the last used level) // 255``, the level ``i`` mapped to
    ``(pixels below i + step // 2) // step`` (unchanged when ``step`` is 0)."""
    v = x.round().clamp(0, 255).to(torch.int64)
    flat = v.reshape(-1, v.shape[-2] * v.shape[-1])
    hist = torch.zeros(flat.shape[0], 256, dtype=torch.int64, device=x.device).scatter_add_(
        1, flat, torch.ones_like(flat)
    )
    levels = torch.arange(256, device=x.device)
    last = hist.gather(1, (levels * (hist > 0)).amax(1, keepdim=True))
    step = (hist.sum(1, keepdim=True) - last) // 255
    lut = ((hist.cumsum(1) - hist) + step // 2) // step.clamp(min=1)
    lut = torch.where(step > 0, lut.clamp(max=255), levels)
    return lut.gather(1, flat).reshape(v.shape).to(x.dtype)


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
      Equalize and Contrast use each frame's own statistics, as PIL does per image.
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
        if op == "AutoContrast":
            lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
            return torch.where(hi > lo, (x - lo) * 255.0 / (hi - lo).clamp(min=1e-6), x)
        if op == "Equalize":
            return _equalize(x)
        if op == "Invert":
            return 255.0 - x
        if op in ("Posterize", "PosterizeIncreasing"):
            bits = [4 - int(v * 4) if op == "PosterizeIncreasing" else int(v * 4) for v in lvl]
            shift = torch.tensor([max(0, 8 - b) for b in bits], dtype=torch.int32, device=x.device)
            shift = shift.view(-1, 1, 1, 1, 1)
            return ((x.round().clamp(0, 255).to(torch.int32) >> shift) << shift).to(x.dtype)
        if op in ("Solarize", "SolarizeIncreasing"):
            thresh = _per_clip([256 - int(v * 256) if op == "SolarizeIncreasing" else int(v * 256) for v in lvl], x)
            return torch.where(x >= thresh, 255.0 - x, x)
        if op == "SolarizeAdd":
            return torch.where(x < 128, (x + _per_clip([int(v * 110) for v in lvl], x)).clamp(max=255), x)
        if op.startswith(("Color", "Contrast", "Brightness", "Sharpness")):
            inc = op.endswith("Increasing")
            f = _per_clip([1.0 + s * 0.9 * v if inc else v * 1.8 + 0.1 for v, s in zip(lvl, signs)], x)
            if op.startswith("Brightness"):
                base = torch.zeros_like(x)
            elif op.startswith("Color"):
                base = _gray(x).expand_as(x)
            elif op.startswith("Contrast"):
                base = torch.floor(_frame_mean(_gray(x)) + 0.5).expand_as(x)
            else:  # PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1) / 13, borders unchanged; summed term by term in a fixed
                # order rather than by a convolution, whose algorithm (and rounding) depends on the batch's shape
                acc = x[..., 1:-1, 1:-1] * 5.0
                for dy in (0, 1, 2):
                    for dx in (0, 1, 2):
                        if (dy, dx) != (1, 1):
                            acc = acc + x[..., dy : dy + h - 2, dx : dx + w - 2]
                base = x.clone()
                base[..., 1:-1, 1:-1] = acc / 13.0
            return base + f * (x - base)
        coefs = []
        for v, s in zip(lvl, signs):
            if op == "Rotate":  # about the centre: x_in = R (x_out - centre) + centre
                a = math.radians(s * 30.0 * v)
                cx, cy = w / 2.0, h / 2.0
                ca, sa = math.cos(a), math.sin(a)
                coefs.append((ca, -sa, cx - ca * cx + sa * cy, sa, ca, cy - sa * cx - ca * cy))
            elif op == "ShearX":
                coefs.append((1.0, s * 0.3 * v, 0.0, 0.0, 1.0, 0.0))
            elif op == "ShearY":
                coefs.append((1.0, 0.0, 0.0, s * 0.3 * v, 1.0, 0.0))
            elif op == "TranslateXRel":
                coefs.append((1.0, 0.0, s * 0.45 * v * w, 0.0, 1.0, 0.0))
            elif op == "TranslateYRel":
                coefs.append((1.0, 0.0, 0.0, 0.0, 1.0, s * 0.45 * v * h))
            else:
                raise ConfigError(f"unknown RandAugment op {op!r}")
        return _warp(x, torch.tensor(coefs, dtype=torch.float32, device=x.device))

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        if rng is None:
            return clip
        return self.apply_params(clip, self.draw(rng))

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[str, float, float]]:
        """``draw``."""
        return self.draw(rng)

    def apply_params(self, clip: torch.Tensor, params: list[tuple[str, float, float]]) -> torch.Tensor:
        """The ops ``draw`` gave, each on every frame, rounded to 8 bits between ops (as PIL does): ``apply_batch`` on
        a batch of one."""
        return self.apply_batch(clip[None], [params])[0]

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
