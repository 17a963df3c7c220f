"""The final step of every recipe: uint8 -> float, per-channel mean and std."""

from __future__ import annotations

import numpy as np
import torch

from audfer.data.transforms.base import ClipStep


class Normalize(ClipStep):
    """uint8 -> float in [0, 1], then (x - mean) / std per channel."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> None:
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.identity = tuple(mean) == (0.0, 0.0, 0.0) and tuple(std) == (1.0, 1.0, 1.0)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        # in place on one fresh float tensor; the [0, 1]-only models (M3DFEL, Former-DFER) skip the no-op mean/std
        x = clip.to(torch.float32, copy=True).div_(255.0)
        return x if self.identity else x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        """Nothing to draw."""
        return None

    def apply_params(self, clip: torch.Tensor, params: None) -> torch.Tensor:
        """As ``__call__``."""
        return self(clip)

    def apply_batch(self, clips: torch.Tensor, params: list[None]) -> torch.Tensor:
        """As ``__call__``, on a batch ``(B, T, 3, H, W)`` at once."""
        return self(clips)
