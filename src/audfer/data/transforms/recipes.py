"""The base models' training and test recipes as one ``Compose`` (``build_transform``)."""

from __future__ import annotations

from collections.abc import Sequence

from audfer.data.transforms.base import ClipStep
from audfer.data.transforms.colour import ColorJitter
from audfer.data.transforms.compose import Compose
from audfer.data.transforms.erasing import RandomErasing
from audfer.data.transforms.geometry import HorizontalFlip, RandomResizedCrop, Resize, Squash
from audfer.data.transforms.normalize import Normalize
from audfer.data.transforms.randaugment import RandAugment
from audfer.models.base import InputSpec


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
    first: list[ClipStep] = [Squash(pre_resize)] if pre_resize else []
    if train:
        steps: list[ClipStep] = first + ([RandAugment.from_spec(randaugment)] if randaugment else [])
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
