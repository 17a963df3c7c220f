"""Colour steps: torchvision's colour jitter with one draw per clip, and the pixel helpers RandAugment shares."""

from __future__ import annotations

import numpy as np
import torch

from audfer.data.transforms.base import ClipStep
from audfer.errors import ConfigError

_GRAY = (0.299, 0.587, 0.114)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma of float RGB ``(..., 3, H, W)`` -> ``(..., 1, H, W)`` (PIL's ``convert("L")`` weights), on
    the tensor's device."""
    return (x * torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(3, 1, 1)).sum(-3, keepdim=True)


_HUE_PHASE = (5.0, 3.0, 1.0)  #: where each of R, G, B sits on the hue circle, in sixths (HSV -> RGB below)


def adjust_hue(x: torch.Tensor, shift: float | torch.Tensor) -> torch.Tensor:
    """Rotate the hue of float RGB ``(..., 3, H, W)`` in [0, 255] by ``shift`` turns (torchvision's ``adjust_hue``
    factor; a tensor broadcasting against ``(..., 1, H, W)`` gives each clip its own shift), keeping each pixel's
    value (max) and chroma (max - min): RGB -> hue in sixths of a turn (the max channel's sector), shifted, then back
    with the closed form of HSV -> RGB, ``c_n = max - chroma * clamp(min(k, 4 - k), 0, 1)``, ``k = (n + 6 hue) mod 6``
    for n = 5, 3, 1 (R, G, B). Grey pixels (chroma 0) are unchanged."""
    maxc = x.amax(-3, keepdim=True)
    chroma = maxc - x.amin(-3, keepdim=True)
    r, g, b = x.split(1, dim=-3)
    inv = 1.0 / chroma.clamp(min=1e-12)
    sixths = torch.where(
        maxc == r, (g - b) * inv, torch.where(maxc == g, 2.0 + (b - r) * inv, 4.0 + (r - g) * inv)
    )  # in [-1, 5): the hue in sixths of a turn
    k = (sixths + 6.0 * shift + torch.tensor(_HUE_PHASE, dtype=x.dtype, device=x.device).view(3, 1, 1)) % 6.0
    return maxc - chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def _frame_mean(x: torch.Tensor) -> torch.Tensor:
    """Each frame's mean over ``(H, W)``, accumulated in float64: a float32 sum's rounding depends on how torch splits
    the reduction (batch shape, thread count), a float64 one's stays far below float32's last digit, so a clip's
    pixels do not depend on the batch it is augmented in or on the process's threads (tested)."""
    return x.double().mean(dim=(-2, -1), keepdim=True).to(x.dtype)


def _per_clip(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """One value per clip as a float tensor ``(n, 1, 1, 1, 1)`` on ``like``'s device, broadcasting over a batch of
    clips ``(n, T, C, H, W)``."""
    return torch.tensor(values, dtype=torch.float32, device=like.device).view(-1, 1, 1, 1, 1)


class ColorJitter(ClipStep):
    """torchvision's ``ColorJitter(b, c, s, h)`` with one draw per clip, applied to every frame.

    As M3DFEL's ``GroupColorJitter`` (Tencent/TFace ``attribute/M3DFEL/datasets/video_transform.py``;
    ``bcsh=0.4`` sets brightness, contrast, saturation *and* hue): the four operations in a random
    order, factors uniform in ``[max(0, 1 - v), 1 + v]`` and the hue shift in ``[-h, h]``, drawn once and
    applied to all frames; contrast blends towards each frame's mean grey level."""

    per_pixel_random = True

    def __init__(
        self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.0
    ) -> None:
        if not 0 <= hue <= 0.5:
            raise ConfigError(f"hue jitter must be in [0, 0.5], got {hue}")
        self.b, self.c, self.s, self.h = brightness, contrast, saturation, hue

    def draw(self, rng: np.random.Generator) -> tuple[list[int], list[float]]:
        """One clip's jitter: the order of the four adjustments and their factors (hue: a shift in turns)."""
        order = [int(k) for k in rng.permutation(4)]
        factors = [rng.uniform(max(0.0, 1 - v), 1 + v) for v in (self.b, self.c, self.s)] + [
            rng.uniform(-self.h, self.h)
        ]
        return order, factors

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        if rng is None:
            return clip
        return self.apply_params(clip, self.draw(rng))

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[list[int], list[float]]:
        """``draw``."""
        return self.draw(rng)

    def apply_params(self, clip: torch.Tensor, params: tuple[list[int], list[float]]) -> torch.Tensor:
        """The jitter ``draw`` gave, on every frame (uint8 in, uint8 out): ``apply_batch`` on a batch of one."""
        return self.apply_batch(clip[None], [params])[0]

    def apply_batch(self, clips: torch.Tensor, params: list[tuple[list[int], list[float]]]) -> torch.Tensor:
        """Each clip's drawn jitter on a uint8 batch ``(B, T, 3, H, W)``, on whatever device it is: at each of the
        four positions of the drawn orders, the clips whose adjustment there is the same kind are adjusted together,
        each with its own factor (so a clip's pixels do not depend on the batch it is in; tested)."""
        x = clips.to(torch.float32, copy=True)  # a fresh tensor: the operations below work in place
        enabled = (self.b, self.c, self.s, self.h)
        for pos in range(4):
            for kind in range(4):
                rows = [i for i, (order, _) in enumerate(params) if order[pos] == kind]
                if not rows or not enabled[kind]:
                    continue
                whole = len(rows) == len(params)
                sub = x if whole else x[rows]
                f = _per_clip([params[i][1][kind] for i in rows], x)
                if kind == 0:
                    sub.mul_(f)
                elif kind == 1:  # torchvision's _blend(img, mean grey, f) = f * img + (1 - f) * mean
                    base = _frame_mean(_gray(sub))
                    sub.mul_(f).add_(base * (1.0 - f))
                elif kind == 2:  # _blend(img, grey, f)
                    base = _gray(sub)
                    sub.mul_(f).add_(base * (1.0 - f))
                else:
                    sub = adjust_hue(sub, f)
                sub.clamp_(0, 255)
                if whole:
                    x = sub
                else:
                    x[rows] = sub
        return x.round_().to(torch.uint8)
