"""Clip transforms on uint8 tensors ``(T, C, H, W)``, identical for every frame of a clip.

Each step declares ``ClipStep`` (``base.py``: ``__call__``, ``draw_params``, ``apply_params``, ``apply_batch``,
``out_shape``) and takes ``(clip, rng)`` with a ``numpy.random.Generator`` (None = deterministic), so a seeded loader
reproduces its augmentations exactly. One module per family: ``geometry`` (resize, random resized crop, flip),
``colour`` (colour jitter), ``randaugment``, ``erasing``, ``normalize``; ``compose`` chains them and splits off the
tail that ``deferral`` runs after batching (in the loader, or on the training device under
``data.augment_on=device``); ``mixup`` mixes a training batch. ``build_transform(spec, train)`` (``recipes``) gives
the base models' recipes: training = random resized crop (area 0.08-1, ratio 3/4-4/3) + horizontal flip + colour
jitter 0.4; test = resize; then [0, 1] floats normalised with the model's mean/std.
"""

from audfer.data.transforms.base import ClipStep
from audfer.data.transforms.colour import _GRAY as _GRAY
from audfer.data.transforms.colour import _HUE_PHASE as _HUE_PHASE
from audfer.data.transforms.colour import ColorJitter, adjust_hue
from audfer.data.transforms.colour import _frame_mean as _frame_mean
from audfer.data.transforms.colour import _gray as _gray
from audfer.data.transforms.colour import _per_clip as _per_clip
from audfer.data.transforms.compose import TAIL_ON, Compose
from audfer.data.transforms.deferral import DEVICE_STEPS, DeferredClips, Drawn, batch_clips
from audfer.data.transforms.erasing import RandomErasing
from audfer.data.transforms.geometry import CROP_ASPECTS, HorizontalFlip, RandomResizedCrop, Resize, Squash
from audfer.data.transforms.geometry import _resize as _resize
from audfer.data.transforms.geometry import _resize_float as _resize_float
from audfer.data.transforms.mixup import MixedClips, Mixup
from audfer.data.transforms.normalize import Normalize
from audfer.data.transforms.randaugment import _FILL as _FILL
from audfer.data.transforms.randaugment import RandAugment, parse_randaugment
from audfer.data.transforms.randaugment import _equalize as _equalize
from audfer.data.transforms.randaugment import _warp as _warp
from audfer.data.transforms.recipes import build_transform

__all__ = [
    "CROP_ASPECTS",
    "DEVICE_STEPS",
    "TAIL_ON",
    "ClipStep",
    "ColorJitter",
    "Compose",
    "DeferredClips",
    "Drawn",
    "HorizontalFlip",
    "MixedClips",
    "Mixup",
    "Normalize",
    "RandAugment",
    "RandomErasing",
    "RandomResizedCrop",
    "Resize",
    "Squash",
    "adjust_hue",
    "batch_clips",
    "build_transform",
    "parse_randaugment",
]
