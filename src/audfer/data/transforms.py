"""Clip transforms on uint8 tensors ``(T, C, H, W)``, identical for every frame of a clip.

Each transform takes ``(clip, rng)`` with a ``numpy.random.Generator`` (None = deterministic),
so a seeded loader reproduces its augmentations exactly. ``build_transform(spec, train)`` gives the
base models' recipes (reference README §4): training = random resized crop (area 0.08-1, ratio
3/4-4/3) + horizontal flip + colour jitter 0.4; test = resize; then [0, 1] floats normalised with
the model's mean/std.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..models.base import InputSpec


def _resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    out = F.interpolate(clip.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class Resize:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        return clip if clip.shape[-2:] == (self.size, self.size) else _resize(clip, self.size)


class RandomResizedCrop:
    """One crop box for the whole clip (torchvision's sampling rule), resized to ``size``."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> None:
        self.size, self.scale, self.ratio = size, scale, ratio

    def box(self, h: int, w: int, rng) -> tuple[int, int, int, int]:
        area = h * w
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_r))
            cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
        side = min(h, w)  # fallback: centre crop
        return (h - side) // 2, (w - side) // 2, side, side

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        if rng is None:
            return _resize(clip, self.size)
        top, left, ch, cw = self.box(clip.shape[-2], clip.shape[-1], rng)
        return _resize(clip[..., top:top + ch, left:left + cw], self.size)


class HorizontalFlip:
    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        return clip.flip(-1) if rng is not None and rng.random() < self.p else clip


class ColorJitter:
    """Brightness, contrast and saturation factors drawn once per clip from [1 - s, 1 + s]."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4) -> None:
        self.b, self.c, self.s = brightness, contrast, saturation

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        if rng is None:
            return clip
        x = clip.float()
        gray_w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        for kind in rng.permutation(3):
            f = rng.uniform(1 - (self.b, self.c, self.s)[kind], 1 + (self.b, self.c, self.s)[kind])
            if kind == 0:
                x = x * f
            elif kind == 1:
                mean = (x * gray_w).sum(1, keepdim=True).mean(dim=(-2, -1), keepdim=True)
                x = (x - mean) * f + mean
            else:
                gray = (x * gray_w).sum(1, keepdim=True)
                x = (x - gray) * f + gray
            x = x.clamp(0, 255)
        return x.round().to(torch.uint8)


class Normalize:
    """uint8 -> float in [0, 1], then (x - mean) / std per channel."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> None:
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        return (clip.float() / 255.0 - self.mean) / self.std


class Compose:
    def __init__(self, *steps) -> None:
        self.steps = steps

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        for step in self.steps:
            clip = step(clip, rng)
        return clip


def build_transform(spec: InputSpec, train: bool, *, jitter: float = 0.4, scale=(0.08, 1.0), randaugment=None,
                    erasing: float = 0.0) -> Compose:
    """The base models' train/test transforms for a model's ``input_spec`` (``scale``: crop area range;
    ``randaugment``: ``(m, n)`` or None; ``erasing``: random-erasing probability)."""
    if train:
        steps = [RandomResizedCrop(spec.size, scale=tuple(scale)), HorizontalFlip()]
        if jitter:
            steps.append(ColorJitter(jitter, jitter, jitter))
        if randaugment:
            steps.append(RandAugment(*randaugment))
        steps.append(Normalize(spec.mean, spec.std))
        if erasing:
            steps.append(RandomErasing(erasing))
        return Compose(*steps)
    return Compose(Resize(spec.size), Normalize(spec.mean, spec.std))


class RandAugment:
    """RandAugment (Cubuk et al. 2020) for clips: ``n`` ops drawn per clip at magnitude ``m`` (of 10),
    applied identically to every frame (MAE-DFER recipe: m7 n4). Ops on uint8 tensors: identity,
    auto-contrast, brightness, contrast, colour, sharpness, posterize, solarize, rotate, shear x/y,
    translate x/y (signed magnitudes, as timm's ``rand-m7-n4``)."""

    OPS = ("identity", "autocontrast", "brightness", "contrast", "color", "sharpness", "posterize", "solarize", "rotate",
           "shear_x", "shear_y", "translate_x", "translate_y")

    def __init__(self, m: float = 7, n: int = 4) -> None:
        self.m, self.n = m, n

    def _affine(self, x: torch.Tensor, theta: list[list[float]]) -> torch.Tensor:
        t = torch.tensor(theta, dtype=torch.float32).unsqueeze(0).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(t, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        if rng is None:
            return clip
        x = clip.float()
        gray_w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        mag = self.m / 10.0
        for op in rng.choice(self.OPS, size=self.n):
            sign = 1.0 if rng.random() < 0.5 else -1.0
            if op == "autocontrast":
                lo = x.amin(dim=(0, 2, 3), keepdim=True)
                hi = x.amax(dim=(0, 2, 3), keepdim=True)
                x = (x - lo) * 255.0 / (hi - lo).clamp(min=1)
            elif op in ("brightness", "contrast", "color", "sharpness"):
                f = 1.0 + sign * 0.9 * mag
                if op == "brightness":
                    x = x * f
                elif op == "contrast":
                    mean = (x * gray_w).sum(1, keepdim=True).mean(dim=(0, 2, 3), keepdim=True)
                    x = (x - mean) * f + mean
                elif op == "color":
                    g = (x * gray_w).sum(1, keepdim=True)
                    x = (x - g) * f + g
                else:
                    k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=torch.float32) / 13
                    blur = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3), groups=3)
                    x = blur + (x - blur) * f
            elif op == "posterize":
                bits = int(8 - round(4 * mag))
                x = (x.clamp(0, 255).to(torch.uint8) >> (8 - bits) << (8 - bits)).float()
            elif op == "solarize":
                thr = 256 - 256 * mag
                x = torch.where(x >= thr, 255 - x, x)
            elif op == "rotate":
                a = math.radians(sign * 30 * mag)
                x = self._affine(x, [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0]])
            elif op == "shear_x":
                x = self._affine(x, [[1, sign * 0.3 * mag, 0], [0, 1, 0]])
            elif op == "shear_y":
                x = self._affine(x, [[1, 0, 0], [sign * 0.3 * mag, 1, 0]])
            elif op == "translate_x":
                x = self._affine(x, [[1, 0, sign * 0.9 * mag], [0, 1, 0]])
            elif op == "translate_y":
                x = self._affine(x, [[1, 0, 0], [0, 1, sign * 0.9 * mag]])
            x = x.clamp(0, 255)
        return x.round().to(torch.uint8)


class RandomErasing:
    """Random erasing (Zhong et al. 2020) with probability ``p``: one box of area 2-33 % and aspect 0.3-3.3,
    the same box on every frame, filled with per-pixel noise (timm's ``mode='pixel'``); after normalisation."""

    def __init__(self, p: float = 0.25) -> None:
        self.p = p

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        if rng is None or rng.random() >= self.p:
            return clip
        h, w = clip.shape[-2:]
        for _ in range(10):
            area = h * w * rng.uniform(0.02, 1 / 3)
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < eh < h and 0 < ew < w:
                top, left = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
                noise = torch.from_numpy(rng.standard_normal((1, clip.shape[1], eh, ew)).astype(np.float32))
                clip = clip.clone()
                clip[..., top:top + eh, left:left + ew] = noise
                return clip
        return clip
