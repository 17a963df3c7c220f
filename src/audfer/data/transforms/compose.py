"""``Compose``: a chain of steps, itself a step, and where its tail is split off to be deferred past batching."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audfer.data.transforms.base import ClipStep
from audfer.data.transforms.normalize import Normalize
from audfer.errors import ConfigError

#: Where a deferred tail runs (``Compose.split_tail``): in the loader's collate, or on the training device.
TAIL_ON = ("loader", "device")


class Compose(ClipStep):
    """Apply ``steps`` (each a ``ClipStep``) in order, passing each the clip's random generator; itself a step."""

    def __init__(self, *steps: ClipStep) -> None:
        self.steps = steps

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        for step in self.steps:
            clip = step(clip, rng)
        return clip

    def split_tail(self, on: str) -> tuple[Compose, Compose]:
        """``(head, tail)``: the steps the dataset runs on each clip, and the tail whose running is deferred past
        batching (``audfer.data.transforms.deferral``, the one deferral mechanism). ``on``:

        - ``"device"`` (``data.augment_on=device``): the tail starts at the first per-pixel random step
          (``ClipStep.per_pixel_random``: colour jitter, RandAugment, erasing) and runs on the training device. The
          dataset only draws its parameters (``draw_params``, consuming the clip's random generator exactly as the
          steps would), and ``apply_params`` / ``apply_batch`` later give the same pixels (``DeferredClips``);
        - ``"loader"``: no step moves for being random; the tail runs in the loader's collate, on the stacked batch.

        Either way, without such a step (Former-DFER's crop and flip; every recipe under ``"loader"``) a final
        ``Normalize`` is the tail: it is elementwise per channel and draws nothing, so it gives the same values on the
        stacked uint8 batch as per clip, and the loader ships uint8 clips, a quarter of the float batch's bytes through
        the workers' shared memory (and, on the device, to it). The tail is empty when there is nothing to defer."""
        if on not in TAIL_ON:
            raise ConfigError(f"a deferred tail runs on one of {', '.join(TAIL_ON)}, got {on!r}")
        random = on == "device"
        first = next(
            (i for i, s in enumerate(self.steps) if random and getattr(s, "per_pixel_random", False)), len(self.steps)
        )
        if first == len(self.steps) and self.steps and isinstance(self.steps[-1], Normalize):
            first -= 1
        return Compose(*self.steps[:first]), Compose(*self.steps[first:])

    def split_device(self) -> tuple[Compose, Compose]:
        """``split_tail("device")``: ``(what the loader runs, what runs on the training device)``."""
        return self.split_tail("device")

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> list[Any]:
        """Every step's parameters for a clip of ``shape`` (the deferred path)."""
        params = []
        for step in self.steps:
            params.append(step.draw_params(shape, rng))
            shape = step.out_shape(shape)
        return params

    def apply_params(self, clip: torch.Tensor, params: list[Any]) -> torch.Tensor:
        """Every step with its drawn parameters."""
        for step, p in zip(self.steps, params):
            clip = step.apply_params(clip, p)
        return clip

    def apply_batch(self, clips: torch.Tensor, params: list[list[Any]]) -> torch.Tensor:
        """Every step on a batch ``(B, T, C, H, W)``, clip ``i`` with its own parameters ``params[i]``: each step's
        ``apply_batch`` (jitter, RandAugment, flip, normalisation and erasing on the whole batch at once; the random
        resized crop, whose boxes differ in size, clip by clip)."""
        for k, step in enumerate(self.steps):
            clips = step.apply_batch(clips, [p[k] for p in params])
        return clips

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The clip's shape after every step."""
        for step in self.steps:
            shape = step.out_shape(shape)
        return shape
