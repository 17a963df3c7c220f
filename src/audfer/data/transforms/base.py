"""The step protocol every clip transform declares (``ClipStep``).

A step works on uint8 clips ``(T, C, H, W)`` and is the same for every frame of a clip. Its randomness is split in two
so that the random part can be drawn in one place (the loader) and applied in another (after batching, on the training
device: ``audfer.data.transforms.deferral``):

- ``draw_params(shape, rng)``: the clip's random draw for a clip of ``shape``, consuming ``rng`` (a
  ``numpy.random.Generator``) exactly as ``__call__`` does;
- ``apply_params(clip, params)``: the step with that draw, so ``step(clip, rng)`` equals
  ``step.apply_params(clip, step.draw_params(tuple(clip.shape), rng))`` bit for bit and leaves ``rng`` in the same
  state;
- ``apply_batch(clips, params)``: ``apply_params`` on a batch ``(B, T, C, H, W)``, clip ``i`` with ``params[i]``;
  row ``i`` of the result equals ``apply_params(clips[i], params[i])`` bit for bit whatever the batch (by default
  clip by clip; a step that can do the batch in a few kernels overrides it);
- ``out_shape(shape)``: the clip's shape after the step (by default unchanged), so that the draws of a chain of
  steps can be made before any of them runs;
- ``__call__(clip, rng=None)``: draw and apply; ``rng`` None is test time (the deterministic variant).

``per_pixel_random``: a step whose work is per-pixel and random (colour jitter, RandAugment, erasing), the steps
``data.augment_on=device`` moves to the training device (``Compose.split_tail``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch


class ClipStep(ABC):
    """One step of a clip transform: the five methods of the module docstring's protocol."""

    #: Deferred to the training device under ``data.augment_on=device`` (``Compose.split_tail``).
    per_pixel_random: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """The step on one clip: its draw from ``rng`` applied (``rng`` None: the deterministic, test-time variant)."""

    @abstractmethod
    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """The clip's random draw for a clip of ``shape``, consuming ``rng`` as ``__call__`` does."""

    @abstractmethod
    def apply_params(self, clip: torch.Tensor, params: Any) -> torch.Tensor:
        """The step on one clip with a draw of ``draw_params``."""

    def apply_batch(self, clips: torch.Tensor, params: list[Any]) -> torch.Tensor:
        """``apply_params`` on a batch ``(B, T, C, H, W)``, clip ``i`` with ``params[i]``: clip by clip (steps whose
        clips can differ in size, such as the random resized crop's boxes, keep this)."""
        return torch.stack([self.apply_params(c, p) for c, p in zip(clips, params)])

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The clip's shape after this step: unchanged unless the step resizes."""
        return shape
