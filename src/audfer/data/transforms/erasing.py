"""Random erasing (MAE-DFER's, cube mode): one box per clip, filled with noise after normalisation."""

from __future__ import annotations

import math

import numpy as np
import torch

from audfer.data.transforms.base import ClipStep


class RandomErasing(ClipStep):
    """Random erasing as MAE-DFER applies it: its own ``random_erasing.py`` (VideoMAE's) in cube mode, called with
    ``--reprob 0.25 --remode pixel --recount 1`` on the clip (sunlicai/MAE-DFER ``kinetics.py``,
    ``VideoClsDatasetFrame._aug_frame``; ``RandomErasing._erase_cube``). One draw per clip: with probability ``p``
    one box (area 2-33 % of the frame, aspect 0.3-3.3 log-uniform, up to 100 tries) at the same place on every
    frame, filled with per-pixel N(0, 1) noise drawn afresh for each frame, after normalisation."""

    per_pixel_random = True

    def __init__(self, p: float = 0.25) -> None:
        self.p = p

    def box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
        """``(top, left, height, width)`` of the clip's box, or None (no erasing this time)."""
        if rng.random() > self.p:
            return None
        for _ in range(100):
            area = h * w * rng.uniform(0.02, 1 / 3)
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if eh < h and ew < w:
                return int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1)), eh, ew
        return None

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        if rng is None:
            return clip
        return self.apply_params(clip, self.draw_params(tuple(clip.shape), rng))

    def draw_params(
        self, shape: tuple[int, ...], rng: np.random.Generator
    ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """The box and its noise for a clip of ``shape`` ``(T, 3, H, W)``, or None."""
        found = self.box(int(shape[-2]), int(shape[-1]), rng)
        if found is None:
            return None
        top, left, eh, ew = found
        return found, rng.standard_normal((int(shape[0]), int(shape[1]), eh, ew)).astype(np.float32)

    def apply_params(
        self, clip: torch.Tensor, params: tuple[tuple[int, int, int, int], np.ndarray] | None
    ) -> torch.Tensor:
        """The drawn box filled with its noise (after normalisation)."""
        if params is None:
            return clip
        return self.apply_batch(clip[None], [params])[0]

    def apply_batch(
        self, clips: torch.Tensor, params: list[tuple[tuple[int, int, int, int], np.ndarray] | None]
    ) -> torch.Tensor:
        """Each clip's box filled with its noise, on a batch ``(B, T, 3, H, W)``."""
        if all(p is None for p in params):
            return clips
        out = clips.clone()
        for i, p in enumerate(params):
            if p is not None:
                (top, left, eh, ew), noise = p
                out[i, ..., top : top + eh, left : left + ew] = torch.from_numpy(noise).to(out.device)
        return out
