"""Clip transforms on uint8 tensors ``(T, C, H, W)``, identical for every frame of a clip.

Each transform takes ``(clip, rng)`` with a ``numpy.random.Generator`` (None = deterministic),
so a seeded loader reproduces its augmentations exactly. ``build_transform(spec, train)`` gives the
base models' recipes (reference README §4): training = random resized crop (area 0.08-1, ratio
3/4-4/3) + horizontal flip + colour jitter 0.4; test = resize; then [0, 1] floats normalised with
the model's mean/std.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from audfer.errors import ConfigError
from audfer.models.base import InputSpec


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


class Resize:
    """Resize every frame to ``size`` x ``size`` (PIL-equivalent bilinear, ``_resize``); a no-op when it already is."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
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


class RandomResizedCrop:
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

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
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


class HorizontalFlip:
    """Flip the whole clip left-right with probability ``p`` (one draw per clip; never at test, ``rng`` None)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
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

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged."""
        return shape


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


class ColorJitter:
    """torchvision's ``ColorJitter(b, c, s, h)`` with one draw per clip, applied to every frame.

    As M3DFEL's ``GroupColorJitter`` (Tencent/TFace ``attribute/M3DFEL/datasets/video_transform.py``;
    ``bcsh=0.4`` sets brightness, contrast, saturation *and* hue): the four operations in a random
    order, factors uniform in ``[max(0, 1 - v), 1 + v]`` and the hue shift in ``[-h, h]``, drawn once and
    applied to all frames; contrast blends towards each frame's mean grey level."""

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

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        if rng is None:
            return clip
        return self.apply_params(clip, self.draw(rng))

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[list[int], list[float]]:
        """``draw``."""
        return self.draw(rng)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged."""
        return shape

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


class Normalize:
    """uint8 -> float in [0, 1], then (x - mean) / std per channel."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> None:
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.identity = tuple(mean) == (0.0, 0.0, 0.0) and tuple(std) == (1.0, 1.0, 1.0)

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
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

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged."""
        return shape


class Compose:
    """Apply ``steps`` in order, passing each the clip's random generator."""

    def __init__(self, *steps) -> None:
        self.steps = steps

    def split_normalize(self) -> tuple[Compose, Normalize | None]:
        """``(everything before a final Normalize, that Normalize)``, or ``(self, None)``: the normalisation is
        elementwise per channel, so it can run once on a stacked batch instead of once per clip (same values)."""
        if self.steps and isinstance(self.steps[-1], Normalize):
            return Compose(*self.steps[:-1]), self.steps[-1]
        return self, None

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        for step in self.steps:
            clip = step(clip, rng)
        return clip

    def split_device(self) -> tuple[Compose, Compose]:
        """``(what the CPU runs, what runs on the training device)``: everything from the first per-pixel random step
        (``DEVICE_STEPS``: colour jitter, RandAugment, erasing) on is deferred. The CPU part runs as usual; for the
        deferred part the dataset only draws each step's parameters (``draw_params``, consuming the clip's random
        generator exactly as the steps would), and ``apply_params`` later gives the same pixels (``DeferredClips``).
        Without such a step (Former-DFER's crop and flip), a final ``Normalize`` is deferred: the loader then ships uint8
        clips, a quarter of the float batch's bytes through the workers' shared memory and to the device."""
        first = next((i for i, s in enumerate(self.steps) if isinstance(s, DEVICE_STEPS)), len(self.steps))
        if first == len(self.steps) and self.steps and isinstance(self.steps[-1], Normalize):
            first -= 1
        return Compose(*self.steps[:first]), Compose(*self.steps[first:])

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> list[object]:
        """Every step's parameters for a clip of ``shape`` (the deferred path)."""
        params = []
        for step in self.steps:
            params.append(step.draw_params(shape, rng))
            shape = step.out_shape(shape)
        return params

    def apply_params(self, clip: torch.Tensor, params: list[object]) -> torch.Tensor:
        """Every step with its drawn parameters."""
        for step, p in zip(self.steps, params):
            clip = step.apply_params(clip, p)
        return clip

    def apply_batch(self, clips: torch.Tensor, params: list[list[object]]) -> torch.Tensor:
        """Every step on a batch ``(B, T, C, H, W)``, clip ``i`` with its own parameters ``params[i]``: a step with
        ``apply_batch`` (jitter, RandAugment, flip, normalisation, erasing) runs on the whole batch, others (the
        random resized crop, whose boxes differ in size) clip by clip."""
        for k, step in enumerate(self.steps):
            ps = [p[k] for p in params]
            if hasattr(step, "apply_batch"):
                clips = step.apply_batch(clips, ps)
            else:
                clips = torch.stack([step.apply_params(c, p) for c, p in zip(clips, ps)])
        return clips


class DeferredClips:
    """A batch whose augmentation runs on the training device (``data.augment_on=device``): the uint8 clips as the
    CPU left them and each clip's drawn parameters. ``to`` moves the clips (Lightning's batch transfer calls it);
    ``apply`` runs the deferred steps where the clips are: on an accelerator on the whole batch at once
    (``Compose.apply_batch``: a few kernels per step instead of a few per clip), on the CPU clip by clip (a clip's
    float frames stay in the core's cache: ``benchmarks/bench_pipeline.py`` measured the whole batch 0.54-0.97x as
    fast there). Both give the same pixels, bit for bit (tested)."""

    def __init__(self, clips: torch.Tensor, params: list[list[object]]) -> None:
        self.clips, self.params = clips, params

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DeferredClips:
        """The same batch with its clips on ``device``."""
        return DeferredClips(self.clips.to(device, non_blocking=non_blocking), self.params)

    def pin_memory(self) -> DeferredClips:
        """The same batch with its clips in page-locked memory (what the DataLoader's ``pin_memory`` asks a batch for,
        so that the copy to a GPU is asynchronous and fast)."""
        return DeferredClips(self.clips.pin_memory(), self.params)

    def apply(self, steps: Compose) -> torch.Tensor:
        """The augmented float batch ``(B, T, 3, H, W)``, contiguous as the CPU path's batches are (the model's
        kernels, and so its rounding, can depend on the input's memory layout)."""
        clips = self.clips.contiguous()
        if clips.device.type == "cpu":
            return torch.stack([steps.apply_params(c, p) for c, p in zip(clips, self.params)])
        return steps.apply_batch(clips, self.params).contiguous()


def build_transform(
    spec: InputSpec,
    train: bool,
    *,
    jitter: float = 0.4,
    hue: float = 0.0,
    scale: tuple[float, float] = (0.08, 1.0),
    randaugment: str | Sequence[float] | None = None,
    erasing: float = 0.0,
    pre_resize: int | None = None,
    crop_aspect: str = "log-uniform",
) -> Compose:
    """The base models' train/test transforms for a model's ``input_spec``.

    Training: [RandAugment] -> random resized crop (area ``scale``, ratio 3/4-4/3) -> h-flip -> [colour
    jitter ``jitter`` with hue ``hue``] -> normalise -> [random erasing ``erasing``]. RandAugment comes
    first, on the whole frame, as in MAE-DFER's ``_aug_frame`` (RandAugment, then normalise, then
    ``spatial_sampling``'s crop and flip, then erasing). ``randaugment``: a timm string
    (``rand-m7-n4-mstd0.5-inc1``) or ``[m, n]``. Test: resize, normalise. ``pre_resize``: every frame is first
    squashed to that square size (``Squash``), train and test (MAE-DFER: 160). ``crop_aspect``: the crop's aspect rule
    (``RandomResizedCrop``)."""
    first: list[object] = [Squash(pre_resize)] if pre_resize else []
    if train:
        steps: list[object] = first + ([RandAugment.from_spec(randaugment)] if randaugment else [])
        # area 100 %: every box that fits is the whole frame (up to rounding), as is the fallback, so the crop is a resize
        crop = (
            Resize(spec.size)
            if tuple(scale) == (1.0, 1.0)
            else RandomResizedCrop(spec.size, scale=tuple(scale), aspect=crop_aspect)
        )
        steps += [crop, HorizontalFlip()]
        if jitter or hue:
            steps.append(ColorJitter(jitter, jitter, jitter, hue))
        steps.append(Normalize(spec.mean, spec.std))
        if erasing:
            steps.append(RandomErasing(erasing))
        return Compose(*steps)
    return Compose(*first, Resize(spec.size), Normalize(spec.mean, spec.std))


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


class RandAugment:
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

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
        if rng is None:
            return clip
        return self.apply_params(clip, self.draw(rng))

    def draw_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[str, float, float]]:
        """``draw``."""
        return self.draw(rng)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged."""
        return shape

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


class RandomErasing:
    """Random erasing as MAE-DFER applies it: its own ``random_erasing.py`` (VideoMAE's) in cube mode, called with
    ``--reprob 0.25 --remode pixel --recount 1`` on the clip (sunlicai/MAE-DFER ``kinetics.py``,
    ``VideoClsDatasetFrame._aug_frame``; ``RandomErasing._erase_cube``). One draw per clip: with probability ``p``
    one box (area 2-33 % of the frame, aspect 0.3-3.3 log-uniform, up to 100 tries) at the same place on every
    frame, filled with per-pixel N(0, 1) noise drawn afresh for each frame, after normalisation."""

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

    def __call__(self, clip: torch.Tensor, rng=None) -> torch.Tensor:
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

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged."""
        return shape


class Squash(Resize):
    """Resize every frame to ``size`` x ``size`` ignoring the aspect ratio, before any other step (MAE-DFER's
    ``VideoClsDatasetFrame`` ``data_resize``: ``video_transforms.Resize((160, 160))``, train and test)."""


#: The per-pixel random steps that ``data.augment_on=device`` runs on the training device.
DEVICE_STEPS = (ColorJitter, RandAugment, RandomErasing)
