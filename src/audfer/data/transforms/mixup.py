"""Mixup and cutmix on a training batch, as MAE-DFER applies timm's ``Mixup`` in its ``batch`` mode.

The clips are mixed here, after batching; the targets are mixed with the same weight and pairing by
``audfer.method.losses.mix_batch_targets`` (the soft expression labels and the AU targets and mask).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch


class MixedClips(NamedTuple):
    """A mixed batch: the clips, the weight ``lam`` of each clip's own content and ``partner``, the clip each is mixed
    with (``lam * x + (1 - lam) * x[partner]``; cutmix: ``lam`` the kept area)."""

    clips: torch.Tensor
    lam: float
    partner: torch.Tensor


class Mixup:
    """``mixup`` and ``cutmix``: the Beta(alpha, alpha) parameters (0: off; both on: one of the two at random, each
    half of the time), as the config's ``optim.mixup`` / ``optim.cutmix``.

    Each call draws from torch's global generator (whose state a checkpoint carries, so a resumed run mixes as an
    uninterrupted one): the mixup-or-cutmix choice, a seed for numpy's Beta draw of ``lam`` and, for cutmix, the box
    centre. The batch is paired by flipping it, clip ``i`` with clip ``B - 1 - i`` (sunlicai/MAE-DFER ``mixup.py``,
    ``Mixup._mix_batch``: ``x.flip(0)``; ``mixup_target``: ``target.flip(0)``); the cutmix box is timm's
    (huggingface/pytorch-image-models ``timm/data/mixup.py``, ``rand_bbox``: side ``sqrt(1 - lam)`` of the frame,
    centred uniformly, clipped), and ``lam`` becomes the kept area."""

    def __init__(self, mixup: float = 0.0, cutmix: float = 0.0) -> None:
        self.mixup, self.cutmix = float(mixup), float(cutmix)

    @property
    def enabled(self) -> bool:
        """Whether either is on."""
        return bool(self.mixup or self.cutmix)

    def __call__(self, clips: torch.Tensor) -> MixedClips | None:
        """The mixed batch of ``clips`` ``(B, T, C, H, W)``, or None when both are off (nothing drawn)."""
        if not self.enabled:
            return None
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or torch.rand(()) < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()))).beta(alpha, alpha))
        index = torch.arange(clips.shape[0] - 1, -1, -1, device=clips.device)
        if use_cutmix:
            h, w = clips.shape[-2:]
            ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
            cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            clips = clips.clone()
            clips[..., y0:y1, x0:x1] = clips[index][..., y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            clips = lam * clips + (1 - lam) * clips[index]
        return MixedClips(clips, lam, index)
