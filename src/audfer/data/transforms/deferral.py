"""The one deferral mechanism: the tail of a transform (``Compose.split_tail``) run after batching.

The dataset runs the head of its transform on each clip; the tail runs on the stacked batch, in one of two places
(``TAIL_ON``):

- ``"loader"``: in the loader's collate (``batch_clips``), right after stacking: a final ``Normalize``, which draws
  nothing, so the items are the bare uint8 clips;
- ``"device"`` (``data.augment_on=device``): on the training device. Each item is a ``Drawn`` (the uint8 clip and the
  tail's drawn parameters, ``Compose.draw_params``), the collate stacks them into a ``DeferredClips``, which travels to
  the device and is applied there (``ClipDataModule.on_after_batch_transfer``).

Both apply the tail through ``DeferredClips.apply``; the pixels are those of the whole transform run on each clip,
bit for bit (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import torch

from audfer.data.transforms.base import ClipStep
from audfer.data.transforms.colour import ColorJitter
from audfer.data.transforms.compose import TAIL_ON, Compose
from audfer.data.transforms.erasing import RandomErasing
from audfer.data.transforms.randaugment import RandAugment

__all__ = ["DEVICE_STEPS", "TAIL_ON", "DeferredClips", "Drawn", "batch_clips"]

#: The per-pixel random steps that ``data.augment_on=device`` runs on the training device (those declaring
#: ``ClipStep.per_pixel_random``).
DEVICE_STEPS = (ColorJitter, RandAugment, RandomErasing)


class Drawn(NamedTuple):
    """A dataset item's clip when its tail runs on the device: the uint8 clip as the head left it, and the tail's
    parameters drawn for it (``Compose.draw_params``)."""

    clip: torch.Tensor
    params: list[Any]


class DeferredClips:
    """A batch whose tail is still to run: the uint8 clips as the head left them and each clip's drawn parameters
    (None: the tail draws nothing, a lone ``Normalize``). ``to`` moves the clips (Lightning's batch transfer calls it);
    ``apply`` runs the deferred steps where the clips are: on an accelerator on the whole batch at once
    (``Compose.apply_batch``: a few kernels per step instead of a few per clip), on the CPU clip by clip (a clip's
    float frames stay in the core's cache: ``benchmarks/bench_pipeline.py`` measured the whole batch 0.54-0.97x as
    fast there). Both give the same pixels, bit for bit (tested)."""

    def __init__(self, clips: torch.Tensor, params: list[list[Any]] | None) -> None:
        self.clips, self.params = clips, params

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DeferredClips:
        """The same batch with its clips on ``device``."""
        return DeferredClips(self.clips.to(device, non_blocking=non_blocking), self.params)

    def pin_memory(self) -> DeferredClips:
        """The same batch with its clips in page-locked memory (what the DataLoader's ``pin_memory`` asks a batch for,
        so that the copy to a GPU is asynchronous and fast)."""
        return DeferredClips(self.clips.pin_memory(), self.params)

    def apply(self, steps: ClipStep) -> torch.Tensor:
        """The batch after ``steps`` (the tail), float ``(B, T, 3, H, W)``, contiguous, as the CPU path's batches are
        wherever a crop or resize ran (the model's kernels, and so its rounding, can depend on the input's memory
        layout; frames decoded at the model's size and used as they are keep their channels-last layout on the CPU
        path, ``batch_clips``, so there the two paths round differently). Clips with draws on the CPU: clip by clip
        (``apply_params``); otherwise the whole batch at once (``apply_batch``; for a tail that draws nothing, one
        float batch allocated instead of one per clip)."""
        clips = self.clips.contiguous()
        if self.params is None:
            nothing = [None] * len(steps.steps) if isinstance(steps, Compose) else None
            return steps.apply_batch(clips, [nothing] * len(clips)).contiguous()
        if clips.device.type == "cpu":
            return torch.stack([steps.apply_params(c, p) for c, p in zip(clips, self.params)])
        return steps.apply_batch(clips, self.params).contiguous()


def batch_clips(clips: Sequence[torch.Tensor | Drawn], tail: ClipStep | None = None) -> torch.Tensor | DeferredClips:
    """A batch's clips stacked, with their deferred tail: ``Drawn`` items (a tail that runs on the device) -> a
    ``DeferredClips`` for the device to apply; bare clips -> the stacked batch, with ``tail`` (one that runs in the
    loader) applied to it now."""
    if isinstance(clips[0], tuple):  # Drawn (or any (clip, params) pair)
        drawn = cast("Sequence[Drawn]", clips)
        return DeferredClips(torch.stack([c[0] for c in drawn]), [c[1] for c in drawn])
    stacked = torch.stack(clips)  # type: ignore[arg-type]
    if tail is None:
        return stacked
    # the loader's tail (a final Normalize, which draws nothing) on the frames of the whole batch, keeping their memory
    # layout (the decoder's channels-last frames stay so): the model's kernels, and so its rounding, can depend on the
    # layout, and every run before the transforms became a package was trained on these batches (tested)
    b, t = stacked.shape[:2]
    return tail(stacked.flatten(0, 1)).unflatten(0, (b, t))
