"""Geometric steps: resize, random resized crop, horizontal flip, the pre-resize squash."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from audfer.data.transforms.base import ClipStep
from audfer.errors import ConfigError


def _resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of uint8 frames ``(T, 3, H, W)`` to ``size`` x ``size``, as PIL's
    ``Image.resize((size, size), Image.BILINEAR)``: the official M3DFEL/Former-DFER transforms crop and
    resize PIL images (Tencent/TFace ``attribute/M3DFEL/datasets/video_transform.py``,
    ``GroupRandomSizedCrop`` and ``GroupResize``). torch's uint8 antialiased bilinear kernel on
    channels-last frames is a port of PIL's resampler (fixed-point, both passes rounded to 8 bits): equal
    to PIL when enlarging, within one level when reducing (tested against PIL), and faster than resizing
    floats (``benchmarks/``). Returns a contiguous uint8 tensor."""
    x = clip if clip.dtype == torch.uint8 else clip.round().clamp(0, 255).to(torch.uint8)
    if x.device.type != "cpu":  # the uint8 kernel is the CPU's; elsewhere (data.augment_on=device) the float one
        return _resize_float(x, size)
    x = x.contiguous(memory_format=torch.channels_last)
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.contiguous()


def _resize_float(x: torch.Tensor, size: int) -> torch.Tensor:
    """``_resize`` for devices without torch's uint8 resampler (CUDA): the same antialiased bilinear filter in float,
    rounded back to uint8, within one level of the uint8 kernel (tested on the CPU)."""
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class Resize(ClipStep):
    """Resize every frame to ``size`` x ``size`` (PIL-equivalent bilinear, ``_resize``); a no-op when it already is."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return clip if clip.shape[-2:] == (self.size, self.size) else _resize(clip, self.size)

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        """Nothing to draw."""
        return None

    def apply_params(self, clip: torch.Tensor, params: None) -> torch.Tensor:
        """As ``__call__``."""
        return self(clip)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The clip's shape after this step."""
        return (*shape[:-2], self.size, self.size)


#: The aspect rules of the training crop (``data.crop_aspect``).
CROP_ASPECTS = ("log-uniform", "group")


class RandomResizedCrop(ClipStep):
    """One crop box for the whole clip, resized to ``size``. ``aspect``: ``log-uniform`` (torchvision's sampling rule)
    or ``group`` (the ``GroupRandomSizedCrop`` of zengqunzhao/Former-DFER ``dataloader/video_transform.py`` and
    Tencent/TFace ``attribute/M3DFEL/datasets/video_transform.py``)."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), aspect: str = "log-uniform") -> None:
        if aspect not in CROP_ASPECTS:
            raise ConfigError(f"data.crop_aspect: expected one of {', '.join(CROP_ASPECTS)}, got {aspect!r}")
        self.size, self.scale, self.ratio, self.aspect = size, scale, ratio, aspect

    def box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` by the ``aspect`` rule (``group``: ``_group_box``); ``log-uniform``: torchvision's ``RandomResizedCrop.get_params`` rule (the first of 10 tries
        whose box fits; else a centre crop). The 10 tries are drawn at once (one draw per clip instead of up to 20
        small ones), then the position uniformly among the fitting places."""
        if self.aspect == "group":
            return self._group_box(h, w, rng)
        area = h * w
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        tries = rng.random((2, 10))
        target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * tries[0])
        aspect = np.exp(log_r[0] + (log_r[1] - log_r[0]) * tries[1])
        cws, chs = np.rint(np.sqrt(target * aspect)), np.rint(np.sqrt(target / aspect))
        fits = np.flatnonzero((cws > 0) & (cws <= w) & (chs > 0) & (chs <= h))
        if len(fits):
            cw, ch = int(cws[fits[0]]), int(chs[fits[0]])
            top, left = rng.random(2)
            return int(top * (h - ch + 1)), int(left * (w - cw + 1)), ch, cw
        # fallback, as torchvision: the whole frame, or its centre cut to the nearest allowed aspect ratio
        if w / h < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif w / h > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            ch, cw = h, w
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def _group_box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``GroupRandomSizedCrop.__call__``: up to 10 tries of an area drawn uniformly from ``scale`` and an aspect
        drawn *uniformly* from ``ratio``, ``w = round(sqrt(area * aspect))``, ``h = round(sqrt(area / aspect))``, width
        and height swapped with probability 1/2; the first box that fits is placed uniformly. Else its fallback: the
        frame scaled to ``size`` on the short side, then a random ``size`` square (here: a random square of the short
        side, the same pixels before the resize)."""
        area = h * w
        tries = rng.random((3, 10))
        target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * tries[0])
        aspect = self.ratio[0] + (self.ratio[1] - self.ratio[0]) * tries[1]
        cws, chs = np.rint(np.sqrt(target * aspect)), np.rint(np.sqrt(target / aspect))
        swap = tries[2] < 0.5
        cws, chs = np.where(swap, chs, cws), np.where(swap, cws, chs)
        fits = np.flatnonzero((cws > 0) & (cws <= w) & (chs > 0) & (chs <= h))
        if len(fits):
            cw, ch = int(cws[fits[0]]), int(chs[fits[0]])
        else:
            cw = ch = min(h, w)
        top, left = rng.random(2)
        return int(top * (h - ch + 1)), int(left * (w - cw + 1)), ch, cw

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        if rng is None:
            return _resize(clip, self.size)
        return self.apply_params(clip, self.draw_params(tuple(clip.shape), rng))

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, int, int, int]:
        """The clip's box for a clip of ``shape`` (what ``__call__`` draws)."""
        return self.box(int(shape[-2]), int(shape[-1]), rng)

    def apply_params(self, clip: torch.Tensor, params: tuple[int, int, int, int]) -> torch.Tensor:
        """Crop the box and resize (``__call__`` with its draw)."""
        h, w = clip.shape[-2:]
        top, left, ch, cw = params
        if (ch, cw) == (h, w) == (self.size, self.size):  # the whole frame at the output size: nothing to do
            return clip
        return _resize(clip[..., top : top + ch, left : left + cw], self.size)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The clip's shape after this step."""
        return (*shape[:-2], self.size, self.size)


class HorizontalFlip(ClipStep):
    """Flip the whole clip left-right with probability ``p`` (one draw per clip; never at test, ``rng`` None)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return clip.flip(-1) if rng is not None and rng.random() < self.p else clip

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> bool:
        """Whether the clip is flipped."""
        return bool(rng.random() < self.p)

    def apply_params(self, clip: torch.Tensor, params: bool) -> torch.Tensor:
        """Flip when drawn."""
        return clip.flip(-1) if params else clip

    def apply_batch(self, clips: torch.Tensor, params: list[bool]) -> torch.Tensor:
        """``apply_params`` on a batch ``(B, T, C, H, W)``: the drawn clips flipped in one indexing step."""
        rows = [i for i, p in enumerate(params) if p]
        if not rows:
            return clips
        out = clips.clone()
        out[rows] = clips[rows].flip(-1)
        return out


class Squash(Resize):
    """Resize every frame to ``size`` x ``size`` ignoring the aspect ratio, before any other step (MAE-DFER's
    ``VideoClsDatasetFrame`` ``data_resize``: ``video_transforms.Resize((160, 160))``, train and test)."""
