"""The training input pipeline at full fidelity, per recipe and per CPU core, against a reference written the way the
official loaders work, measured in one run on the same frame folders.

Data: ``audfer synth`` clips of 16 frames stored as 256 px JPEG folders (DFEW-like). Per recipe (the shipped
``<model>_dfew`` configs at the full models' input sizes):

- reference: our own code doing the official training loaders' operations in their order, with the same library
  calls and dtypes (``reference_clip``; compared pixel for pixel with the official functions, draws aligned, when it
  was written): PIL decode of each sampled frame (``Image.open(f).convert("RGB")``); M3DFEL and Former-DFER
  ``GroupRandomSizedCrop(112)`` (PIL crop + bilinear resize) + flip, M3DFEL ``GroupColorJitter(0.4)`` (torchvision's
  four PIL ops in a random order per clip), ``Stack`` + ``ToTorchFormatTensor`` (float32 / 255, no mean/std);
  MAE-DFER PIL bilinear squash to 160, RandAugment ``rand-m7-n4-mstd0.5-inc1`` on the PIL frames (the 15 ``inc1``
  ops; Rotate/Shear/Translate bicubic with fill (128, 128, 128)), ``ToTensor`` + ImageNet normalisation, a random
  resized crop of the float clip by ``torch.nn.functional.interpolate`` (bilinear) + flip, cube random erasing 0.25
  (per-pixel normal noise);
- audfer: the recipe's ``ClipDataset`` (full-resolution decode, the recipe's transforms, batch normalisation in the
  collate), through a ``DataLoader`` of batch 8, one thread per process;

clips/s of each in one process (per core), cold and from the decoded-clip cache; audfer with 1 and 2 worker processes
(scaling, over one long epoch); decoding the sampled JPEGs alone, by OpenCV (``cv2.imread`` + BGR->RGB, audfer's decoder
until it decoded JPEGs through libjpeg-turbo directly) and by audfer's ``read_frames`` (simplejpeg, the same pixels):
the bound of any full-fidelity loader, and the share of it the full path reaches; both paths:
augmentation on the CPU, and ``data.augment_on=device``, where the loader only decodes, crops, flips and draws the
per-pixel augmentation's parameters and ships uint8 clips (what a GPU run's CPU cores do; the deferred steps then run
on the GPU, not timed here; their whole-batch and clip-by-clip forms are timed on this CPU). Each figure is the median
of ``--rounds`` interleaved measurements, as this machine's speed drifts. Goals: audfer's cold CPU path >= 3x the
reference per core where the decode bound allows it (decoding alone >= 3x), else >= 0.85 of the decode bound; >= 1.8x
from 1 to 2 workers.

    python benchmarks/bench_pipeline.py [--clips 48 --repeat 2 --rounds 3]
    python benchmarks/bench_pipeline.py --randaugment-ops [--rounds 3]   # each RandAugment op, CPU vs float path
    python benchmarks/bench_pipeline.py --steps                          # each step of the CPU paths, ms a clip
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import multiprocessing as mp
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from audfer.config import load_config
from audfer.data.datasets import frame_paths, read_frames
from audfer.data.sampling import sample_indices
from audfer.engine.datamodule import collate, make_dataset
from audfer.engine.resolve import split_index
from audfer.models import create_model
from audfer.synth.dataset import SynthConfig, generate

# ------------------------------------------------------------------------- the reference (official loaders, PIL)
# Our own code doing what the official training loaders do, operation for operation (same library calls, same order,
# same dtypes); the draws come from the bench's ``random.Random`` where the official code draws from Python's,
# NumPy's or torch's global generators (the values drawn do not matter for timing, the operations do).
_FILL = (128, 128, 128)  # MAE-DFER rand_augment.py: _FILL, the fill of Rotate/Shear/Translate (no img_mean given)
_RA_OPS = (  # MAE-DFER rand_augment.py: _RAND_INCREASING_TRANSFORMS ("inc1"), in its order
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
_ENHANCERS = {
    "ColorIncreasing": ImageEnhance.Color,
    "ContrastIncreasing": ImageEnhance.Contrast,
    "BrightnessIncreasing": ImageEnhance.Brightness,
    "SharpnessIncreasing": ImageEnhance.Sharpness,
}


def _group_sized_crop(imgs: list[Image.Image], size: int, rng: random.Random) -> list[Image.Image]:
    """M3DFEL and Former-DFER ``GroupRandomSizedCrop(size)`` (TFace ``attribute/M3DFEL/datasets/video_transform.py``,
    Former-DFER ``dataloader/video_transform.py``): up to 10 tries of an area in [0.08, 1] and an aspect ratio uniform
    (not log-uniform) in [3/4, 4/3], sides rounded, swapped with probability 1/2; each frame ``crop`` then ``resize``
    to ``size`` x ``size`` bilinear. Fallback: ``GroupScale`` (torchvision ``Resize(size)``: shorter side to ``size``,
    PIL bilinear) then ``GroupRandomCrop(size)``."""
    width, height = imgs[0].size
    for _ in range(10):
        area = width * height
        target_area = rng.uniform(0.08, 1.0) * area
        aspect_ratio = rng.uniform(3.0 / 4, 4.0 / 3)
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if rng.random() < 0.5:
            w, h = h, w
        if w <= width and h <= height:
            x1, y1 = rng.randint(0, width - w), rng.randint(0, height - h)
            return [im.crop((x1, y1, x1 + w, y1 + h)).resize((size, size), Image.Resampling.BILINEAR) for im in imgs]
    short, long = min(width, height), max(width, height)
    scaled = (size, int(size * long / short)) if width <= height else (int(size * long / short), size)
    imgs = [im.resize(scaled, Image.Resampling.BILINEAR) for im in imgs]
    x1, y1 = rng.randint(0, scaled[0] - size), rng.randint(0, scaled[1] - size)
    if scaled == (size, size):
        return imgs
    return [im.crop((x1, y1, x1 + size, y1 + size)) for im in imgs]


def _adjust_hue(img: Image.Image, hue: float) -> Image.Image:
    """torchvision ``transforms.functional.adjust_hue`` on a PIL image (``_functional_pil.adjust_hue``): the hue plane
    of ``convert("HSV")`` shifted by ``hue * 255`` truncated to an integer, wrapping in uint8; merged back to RGB."""
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.array(hue * 255).astype(np.int8).astype(np.uint8)  # |hue| <= 0.5: the int8 cast is exact, then wraps
    return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")


def _jitter(imgs: list[Image.Image], rng: random.Random, bcsh: float = 0.4) -> list[Image.Image]:
    """M3DFEL ``GroupColorJitter(0.4)`` (TFace ``attribute/M3DFEL/datasets/video_transform.py``): one random order of
    the four ops (``torch.randperm(4)``) and one factor each per clip (brightness, contrast, saturation uniform in
    [0.6, 1.4], hue in [-0.4, 0.4]), applied frame by frame as torchvision's PIL functions do:
    ``ImageEnhance.Brightness/Contrast/Color(img).enhance(f)`` and ``adjust_hue``."""
    order = rng.sample(range(4), 4)
    b, c, s = (rng.uniform(1 - bcsh, 1 + bcsh) for _ in range(3))
    hue = rng.uniform(-bcsh, bcsh)
    out = []
    for img in imgs:
        for k in order:
            if k == 0:
                img = ImageEnhance.Brightness(img).enhance(b)
            elif k == 1:
                img = ImageEnhance.Contrast(img).enhance(c)
            elif k == 2:
                img = ImageEnhance.Color(img).enhance(s)
            else:
                img = _adjust_hue(img, hue)
        out.append(img)
    return out


def _ra_op(name: str, magnitude: float, rng: random.Random) -> Callable[[Image.Image], Image.Image]:
    """One RandAugment op at ``magnitude`` (0-10) as MAE-DFER's ``AugmentOp`` applies it (``rand_augment.py``: the
    ``LEVEL_TO_ARG`` function's argument, drawn once per clip with its random sign, then the op's PIL call on every
    frame with ``resample=BICUBIC`` (``--train_interpolation bicubic``) and ``fillcolor=(128, 128, 128)``)."""

    def negate(v: float) -> float:  # _randomly_negate
        return -v if rng.random() > 0.5 else v

    bicubic, affine = Image.Resampling.BICUBIC, Image.Transform.AFFINE
    if name == "AutoContrast":
        return ImageOps.autocontrast
    if name == "Equalize":
        return ImageOps.equalize
    if name == "Invert":
        return ImageOps.invert
    if name == "Rotate":
        degrees = negate(magnitude / 10 * 30.0)
        return lambda im: im.rotate(degrees, resample=bicubic, fillcolor=_FILL)
    if name == "PosterizeIncreasing":
        bits = 4 - int(magnitude / 10 * 4)
        return lambda im: im if bits >= 8 else ImageOps.posterize(im, bits)
    if name == "SolarizeIncreasing":
        thresh = 256 - int(magnitude / 10 * 256)
        return lambda im: ImageOps.solarize(im, thresh)
    if name == "SolarizeAdd":
        add = int(magnitude / 10 * 110)
        lut = [min(255, i + add) if i < 128 else i for i in range(256)]
        return lambda im: im.point(lut * 3)
    if name in _ENHANCERS:
        factor = 1.0 + negate(magnitude / 10 * 0.9)
        enhancer = _ENHANCERS[name]
        return lambda im: enhancer(im).enhance(factor)
    if name in ("ShearX", "ShearY"):
        k = negate(magnitude / 10 * 0.3)
        data = (1, k, 0, 0, 1, 0) if name == "ShearX" else (1, 0, 0, k, 1, 0)
        return lambda im: im.transform(im.size, affine, data, resample=bicubic, fillcolor=_FILL)
    pct = negate(magnitude / 10 * 0.45)  # TranslateXRel / TranslateYRel: hparams carry no translate_pct
    if name == "TranslateXRel":
        return lambda im: im.transform(
            im.size, affine, (1, 0, pct * im.size[0], 0, 1, 0), resample=bicubic, fillcolor=_FILL
        )
    return lambda im: im.transform(
        im.size, affine, (1, 0, 0, 0, 1, pct * im.size[1]), resample=bicubic, fillcolor=_FILL
    )


def _randaugment(
    imgs: list[Image.Image], rng: random.Random, n: int = 4, m: float = 7.0, mstd: float = 0.5
) -> list[Image.Image]:
    """MAE-DFER ``rand_augment_transform("rand-m7-n4-mstd0.5-inc1", {"translate_const": 72, "interpolation":
    BICUBIC})`` on a clip's frames (``rand_augment.py``, ``RandAugment.__call__``): ``n`` ops chosen with replacement
    from the 15 ``inc1`` ops, each applied with probability 1/2 at a magnitude drawn from N(m, mstd) clipped to
    [0, 10], the same arguments for every frame."""
    for name in [rng.choice(_RA_OPS) for _ in range(n)]:
        if rng.random() > 0.5:
            continue
        magnitude = min(10.0, max(0.0, rng.gauss(m, mstd)))
        op = _ra_op(name, magnitude, rng)
        imgs = [op(im) for im in imgs]
    return imgs


def _spatial_crop_box(height: int, width: int, rng: random.Random) -> tuple[int, int, int, int]:
    """MAE-DFER ``video_transforms._get_param_spatial_crop`` with ``kinetics.py``'s scale [0.08, 1] and aspect ratio
    [0.75, 1.3333] (log-uniform, no swap; the official code still draws ``np.random.uniform()`` every try), central
    fallback; ``(top, left, h, w)``."""
    scale, ratio = (0.08, 1.0), (0.75, 1.3333)
    for _ in range(10):
        target_area = rng.uniform(*scale) * height * width
        aspect_ratio = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        rng.random()  # the switch_hw draw, made before ``and switch_hw`` (False) is read
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _erase_cube(frames: torch.Tensor, rng: random.Random, probability: float = 0.25) -> None:
    """MAE-DFER ``RandomErasing(0.25, mode="pixel", max_count=1, num_splits=1, device="cpu")`` (``random_erasing.py``,
    ``_erase_cube``; ``cube=True`` by default) on ``(T, C, H, W)`` in place: one box (area 2-33 %, aspect ratio
    log-uniform in [0.3, 1/0.3], up to 100 tries) at the same place on every frame, filled per frame with fresh
    per-pixel normal noise (``torch.empty(...).normal_()``)."""
    if rng.random() > probability:
        return
    t, chan, img_h, img_w = frames.shape
    for _ in range(100):
        target_area = rng.uniform(0.02, 1 / 3) * img_h * img_w
        aspect_ratio = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
        h = int(round(math.sqrt(target_area * aspect_ratio)))
        w = int(round(math.sqrt(target_area / aspect_ratio)))
        if w < img_w and h < img_h:
            top, left = rng.randint(0, img_h - h), rng.randint(0, img_w - w)
            for i in range(t):
                frames[i][:, top : top + h, left : left + w] = torch.empty((chan, h, w), dtype=frames.dtype).normal_()
            break


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """torchvision ``transforms.ToTensor()`` on an RGB PIL image: a uint8 copy, HWC -> CHW contiguous, float32 / 255."""
    x = torch.from_numpy(np.array(img, np.uint8, copy=True))
    return x.permute(2, 0, 1).contiguous().to(torch.float32).div(255)


def reference_clip(recipe: str, files: list[Path], idx: np.ndarray, size: int, rng: random.Random) -> torch.Tensor:
    """One training clip the way the official loaders make it, from the sampled frames ``idx`` of ``files``.

    M3DFEL (TFace ``attribute/M3DFEL/datasets/dataset_DFEW.py``, ``DFEWDataset.get_transform`` and ``__getitem__``)
    and Former-DFER (``dataloader/dataset_DFEW.py``, ``train_data_loader`` and ``VideoDataset.get``): each frame
    ``Image.open(f).convert("RGB")``; ``GroupRandomSizedCrop`` (``_group_sized_crop``); ``GroupRandomHorizontalFlip``;
    M3DFEL only, ``GroupColorJitter(0.4)`` (``_jitter``); ``Stack`` (the frames concatenated on the channel axis) and
    ``ToTorchFormatTensor`` (permuted, float32 / 255, no mean/std); reshaped to ``(T, 3, size, size)``.

    MAE-DFER (``kinetics.py``, ``VideoClsDatasetFrame.__getitem__`` train branch and ``_aug_frame``): each frame opened
    and converted to RGB (``VideoReaderFrame.pil_loader``); ``data_resize`` squashes it to ``size`` x ``size``
    (``video_transforms.Resize((short_side_size,) * 2, "bilinear")`` -> ``functional.resize_clip``: PIL bilinear;
    the DFEW script sets ``--short_side_size`` = ``--input_size``); RandAugment on the PIL frames (``_randaugment``);
    ``ToTensor`` per frame, stacked ``(T, C, H, W)``, permuted to ``(T, H, W, C)``, ``tensor_normalize`` (ImageNet
    mean/std), permuted to ``(C, T, H, W)``; ``spatial_sampling``: ``random_resized_crop`` slices the float tensor
    and resizes it with ``torch.nn.functional.interpolate`` (bilinear, ``align_corners=False``), then
    ``horizontal_flip(0.5)`` (``flip(-1)``); ``RandomErasing`` (``_erase_cube``) on the ``(T, C, H, W)`` view.
    Returns ``(C, T, size, size)`` as the official loader does."""
    imgs = [Image.open(files[i]).convert("RGB") for i in idx]
    if recipe == "mae_dfer":
        imgs = [im.resize((size, size), Image.Resampling.BILINEAR) for im in imgs]
        imgs = _randaugment(imgs, rng)
        buffer = torch.stack([_to_tensor(im) for im in imgs]).permute(0, 2, 3, 1)
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])  # tensor_normalize
        buffer = (buffer - mean) / std
        buffer = buffer.permute(3, 0, 1, 2)
        top, left, h, w = _spatial_crop_box(buffer.shape[2], buffer.shape[3], rng)
        buffer = torch.nn.functional.interpolate(
            buffer[:, :, top : top + h, left : left + w], size=(size, size), mode="bilinear", align_corners=False
        )
        if rng.random() < 0.5:
            buffer = buffer.flip(-1)
        _erase_cube(buffer.permute(1, 0, 2, 3), rng)
        return buffer
    imgs = _group_sized_crop(imgs, size, rng)
    if rng.random() < 0.5:
        imgs = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in imgs]
    if recipe == "m3dfel":
        imgs = _jitter(imgs, rng)
    stacked = np.concatenate([np.asarray(im) for im in imgs], axis=2)  # Stack: (H, W, 3 T)
    x = torch.from_numpy(stacked).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    return torch.reshape(x, (-1, 3, size, size))


# ------------------------------------------------------------------------- timing
def _one_thread(_: int = 0) -> None:
    """One thread per process for torch and OpenCV (whose decoders and resizers are multithreaded by default): the
    per-core figure is one core's."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _long_epoch(n: int, repeat: int) -> list[tuple[int, int]]:
    """``repeat`` epochs' ``(epoch, index)`` requests as one long epoch: no epoch boundary where a worker waits for
    the next iterator (a real DFEW epoch is ~300 batches; a 96-clip one is 12, and its ends would set the scaling)."""
    return [(e, int(i)) for e in range(repeat) for i in np.random.default_rng(e).permutation(n)]


def _audfer_rate(cfg, index, spec, workers: int, repeat: int) -> float:
    """clips/s of the recipe's training loader (batch 8), timed from the first batch (worker start-up excluded)."""
    ds = make_dataset(cfg, index, spec, None, train=True)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=8,
        sampler=_long_epoch(len(ds), repeat),
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=_one_thread,
    )
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = sum(len(batch[4]) for batch in it)
    return n / (time.perf_counter() - t0)


def _reference_run(recipe: str, folders: list[Path], frames: int, size: int, repeat: int) -> int:
    """The official-style reference over ``folders`` for ``repeat`` epochs; returns the clips made."""
    listed = [sorted(glob.glob(str(f / "*.jpg"))) for f in folders]
    for epoch in range(repeat):
        for i, folder in enumerate(folders):
            # Former-DFER (dataloader/dataset_DFEW.py, VideoDataset.get) and MAE-DFER (kinetics.py, load_video ->
            # VideoReaderFrame.__init__) glob and sort a clip's folder for every item; M3DFEL (datasets/dataset_DFEW.py,
            # get_data) lists them once
            files = sorted(glob.glob(str(folder / "*.jpg"))) if recipe in ("former_dfer", "mae_dfer") else listed[i]
            rng = random.Random(epoch * 100003 + i)
            idx = sample_indices("uniform", len(files), frames, np.random.default_rng([epoch, i]))
            reference_clip(recipe, [Path(f) for f in files], idx, size, rng)
    return len(folders) * repeat


def _reference_rate(recipe: str, folders: list[Path], spec, repeat: int) -> float:
    """clips/s of the official-style reference (one process)."""
    t0 = time.perf_counter()
    n = _reference_run(recipe, folders, spec.frames, spec.size, repeat)
    return n / (time.perf_counter() - t0)


def _machine_scaling(recipe: str, folders: list[Path], spec, repeat: int) -> float:
    """The reference's own work in 2 processes (half the clips each) against 1: how far this machine scales at this
    moment, for work with no loader overhead at all (the baseline of the workers' scaling)."""
    ctx = mp.get_context("fork")
    rates = []
    for procs in (1, 2):
        with ProcessPoolExecutor(procs, mp_context=ctx, initializer=_one_thread) as pool:
            list(pool.map(abs, range(procs)))  # the processes are started
            t0 = time.perf_counter()
            parts = [folders[k::procs] for k in range(procs)]
            n = sum(
                pool.map(
                    _reference_run,
                    [recipe] * procs,
                    parts,
                    [spec.frames] * procs,
                    [spec.size] * procs,
                    [repeat] * procs,
                )
            )
            rates.append(n / (time.perf_counter() - t0))
    return rates[1] / rates[0]


def _decode_rates(folders: list[Path], spec, repeat: int) -> tuple[float, float]:
    """clips/s of decoding the sampled frames alone to one RGB clip array, nothing else, by OpenCV (``cv2.imread``,
    BGR->RGB, the frames stacked: what audfer's ``read_frames`` did before) and by audfer's ``read_frames`` (libjpeg-turbo through simplejpeg, OpenCV's pixels), clip by
    clip in alternating order so that both see the same machine: what a loader that decodes every sampled JPEG in full
    (full fidelity) cannot beat on one core."""
    import cv2

    lists = [frame_paths(f) for f in folders]
    spent = {"opencv": 0.0, "audfer": 0.0}
    n = 0
    for epoch in range(repeat):
        for i, files in enumerate(lists):
            idx = sample_indices("uniform", len(files), spec.frames, np.random.default_rng([epoch, i]))
            for decoder in ("opencv", "audfer") if (n % 2 == 0) else ("audfer", "opencv"):
                t0 = time.perf_counter()
                if decoder == "audfer":
                    read_frames(folders[i], idx, files=files)
                else:
                    np.stack(
                        [cv2.cvtColor(cv2.imread(str(files[k]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for k in idx]
                    )
                spent[decoder] += time.perf_counter() - t0
            n += 1
    return n / spent["opencv"], n / spent["audfer"]


def _deferred_rates(cfg, index, spec) -> tuple[float, float] | None:
    """The deferred steps on batches of 8 on this CPU, in clips/s: all clips at once (``Compose.apply_batch``, what an
    accelerator runs) and clip by clip (what ``DeferredClips.apply`` runs on the CPU)."""
    ds = make_dataset(cfg, index, spec, None, train=True)
    steps = ds.device_steps
    if steps is None:
        return None
    batches = [collate([ds[(0, i)] for i in range(k, k + 8)]) for k in range(0, min(len(ds), 32) - 7, 8)]
    t0 = time.perf_counter()
    for b in batches:
        steps.apply_batch(b[0].clips, b[0].params)
    together = 8 * len(batches) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in batches:
        torch.stack([steps.apply_params(c, p) for c, p in zip(b[0].clips, b[0].params)])
    alone = 8 * len(batches) / (time.perf_counter() - t0)
    return together, alone


def _randaugment_ops(clip: torch.Tensor, rounds: int) -> None:
    """Each RandAugment op on one uint8 clip on the CPU: the CPU path (``RandAugment.apply_params``: uint8 tables,
    integer sums, line resampling) against the float path the training device runs (``apply_batch``), the same pixels;
    for the shears and translations also the same map by 16-tap grid sampling (``_warp``, what they cost before line
    resampling). ms per clip, medians of ``rounds`` interleaved measurements."""
    from audfer.data.transforms import RandAugment, _warp

    ra = RandAugment()
    h, w = clip.shape[-2:]
    maps = {  # the op's affine map at magnitude 7, sign +1 (RandAugment.apply_group)
        "ShearX": (1.0, 0.21, 0.0, 0.0, 1.0, 0.0),
        "ShearY": (1.0, 0.0, 0.0, 0.21, 1.0, 0.0),
        "TranslateXRel": (1.0, 0.0, 0.315 * w, 0.0, 1.0, 0.0),
        "TranslateYRel": (1.0, 0.0, 0.0, 0.0, 1.0, 0.315 * h),
    }
    print(f"  RandAugment ops on a {tuple(clip.shape)} uint8 clip, ms: CPU path / float path (the same pixels)")
    for op in ra.ops:
        params = [(op, 7.0, 1.0)]
        times: dict[str, list[float]] = {"cpu": [], "float": [], "grid": []}
        for _ in range(rounds):
            for path in ("cpu", "float", "grid") if op in maps else ("cpu", "float"):
                t0 = time.perf_counter()
                if path == "cpu":
                    ra.apply_params(clip, params)
                elif path == "float":
                    ra.apply_batch(clip[None], [params])
                else:
                    _warp(clip[None].float(), torch.tensor([maps[op]])).clamp(0, 255).round().to(torch.uint8)
                times[path].append(time.perf_counter() - t0)
        cpu, flt = (float(np.median(times[k])) * 1e3 for k in ("cpu", "float"))
        line = f"    {op:22s} {cpu:7.2f} / {flt:7.2f}  ({flt / cpu:5.2f}x)"
        if op in maps:
            grid = float(np.median(times["grid"])) * 1e3
            line += f"; by grid sampling {grid:7.2f} ({grid / cpu:5.2f}x the CPU path)"
        print(line)


def _step_times(cfg, index, spec, epochs: int) -> dict[str, float]:
    """ms a clip of each step of the recipe's CPU path, one process: the decode (``ClipDataset._decode``: sampling,
    listing, reading and decoding the frames), then every transform step and the loader's tail, clip by clip."""
    ds = make_dataset(cfg, index, spec, None, train=True)
    steps = list(ds.transform.steps) + (list(ds.tail.steps) if ds.tail is not None else [])
    spent = {"decode": 0.0}
    for epoch in range(epochs):
        for i in range(len(ds)):
            rng = np.random.default_rng([ds.seed, epoch, i])
            t0 = time.perf_counter()
            x = torch.from_numpy(ds._decode(i, rng)).permute(0, 3, 1, 2)
            spent["decode"] += time.perf_counter() - t0
            for step in steps:
                t0 = time.perf_counter()
                x = step(x, rng)
                name = type(step).__name__
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
    return {k: v / (epochs * len(ds)) * 1e3 for k, v in spent.items()}


def generate_frames(t: int, size: int) -> torch.Tensor:
    """``t`` synthetic face frames at ``size`` px as a uint8 clip ``(t, 3, size, size)`` (``audfer synth``'s
    renderer: the first clip of a small set in a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "synth", SynthConfig(clips=5, size=size, frames=t, seed=0), workers=1)
        folder = next(p.parent for p in sorted(root.rglob("*.jpg")))
        return torch.from_numpy(read_frames(folder, np.arange(t))).permute(0, 3, 1, 2).contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2, help="epochs per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each figure, interleaved; medians shown")
    ap.add_argument("--recipes", default="m3dfel,former_dfer,mae_dfer")
    ap.add_argument(
        "--randaugment-ops", action="store_true", help="only time each RandAugment op, CPU path against float path"
    )
    ap.add_argument("--steps", action="store_true", help="only time each step of the recipes' CPU paths, ms a clip")
    args = ap.parse_args()
    _one_thread()
    if args.randaugment_ops:
        frames = generate_frames(16, 160)
        _randaugment_ops(frames, max(5, 3 * args.rounds))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "synth", SynthConfig(clips=args.clips, size=256, frames=16, seed=0), workers=2)
        frames = json.loads((root / "synth.json").read_text())["frames_dir"].split("/")[-1]
        print(
            f"{args.clips} clips x 16 frames, 256 px JPEG folders; one thread per process; {platform.machine()}, "
            f"{os.cpu_count()} cores; medians of {args.rounds} interleaved measurements (ratios within a round)"
        )

        def cfg_for(recipe: str, **values) -> object:
            base = [f"data.root={root}", "data.dataset=synthetic", f"data.frames={frames}", "data.cache=null"]
            return load_config(f"{recipe}_dfew", base + [f"data.{k}={v}" for k, v in values.items()])

        for recipe in args.recipes.split(","):
            spec = create_model(recipe).input_spec
            index = split_index(cfg_for(recipe), "train")
            if args.steps:
                ms = _step_times(cfg_for(recipe), index, spec, max(2, args.repeat * args.rounds))
                parts = ", ".join(f"{k} {v:.2f}" for k, v in ms.items())
                print(f"  {recipe}: ms a clip, one process: {parts}; total {sum(ms.values()):.2f}")
                continue
            folders = [Path(p) for p in index.table["path"].to_list()]
            paths = {"cpu": {}, "device": {"augment_on": "device"}}
            # one epoch fills the decoded-clip cache: the frames as decoded, keyed by the clip, not by the path
            _audfer_rate(cfg_for(recipe, cache=f"{tmp}/cache-{recipe}"), index, spec, 0, 1)
            runs: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                ref = _reference_rate(recipe, folders, spec, args.repeat)
                runs.setdefault("ref", []).append(ref)
                opencv, new = _decode_rates(folders, spec, args.repeat)
                runs.setdefault("opencv floor", []).append(opencv / ref)
                runs.setdefault("floor", []).append(new / ref)
                runs.setdefault("decoder speed-up", []).append(new / opencv)
                runs.setdefault("machine", []).append(_machine_scaling(recipe, folders, spec, args.repeat))
                for path, extra in paths.items():
                    c = cfg_for(recipe, **extra)
                    runs.setdefault(f"{path} core", []).append(_audfer_rate(c, index, spec, 0, args.repeat) / ref)
                    runs.setdefault(f"{path} share", []).append(runs[f"{path} core"][-1] / runs["floor"][-1])
                    cached = cfg_for(recipe, cache=f"{tmp}/cache-{recipe}", **extra)
                    runs.setdefault(f"{path} cached", []).append(
                        _audfer_rate(cached, index, spec, 0, args.repeat) / ref
                    )
                    w1 = _audfer_rate(c, index, spec, 1, args.repeat)
                    runs.setdefault(f"{path} scaling", []).append(_audfer_rate(c, index, spec, 2, args.repeat) / w1)
            m = {k: float(np.median(v)) for k, v in runs.items()}
            print(
                f"  {recipe}: reference (PIL, official-style) {m['ref']:6.1f} clips/s per core; decoding the sampled "
                f"JPEGs alone: OpenCV {m['opencv floor']:.2f}x the reference, audfer (libjpeg-turbo) {m['floor']:.2f}x "
                f"({min(runs['floor']):.2f}-{max(runs['floor']):.2f}; the most a loader that decodes them in full can "
                f"reach), audfer / OpenCV {m['decoder speed-up']:.2f}x; the reference's work in 1 -> 2 processes {m['machine']:.2f}x (this machine's scaling)"
            )
            for path in paths:
                what = (
                    "augmentation on the CPU"
                    if path == "cpu"
                    else "augment_on=device (the CPU side: decode, crop, flip, draws; uint8 clips out)"
                )
                spread = f"{min(runs[path + ' core']):.2f}-{max(runs[path + ' core']):.2f}"
                goal = "goal 3x" if m["floor"] >= 3 else "3x is past the decode bound"
                print(
                    f"    audfer, {what}: {m[path + ' core']:.2f}x per core ({spread}; {goal}), "
                    f"{m[path + ' share']:.2f} of the decode bound (goal 0.85 where 3x is past it), from the clip cache "
                    f"{m[path + ' cached']:.2f}x; 1 -> 2 workers {m[path + ' scaling']:.2f}x "
                    f"({min(runs[path + ' scaling']):.2f}-{max(runs[path + ' scaling']):.2f}; goal 1.8x)"
                )
            rates = _deferred_rates(cfg_for(recipe, augment_on="device"), index, spec)
            if rates:
                print(
                    f"    the deferred steps on this CPU (clip by clip here; on a GPU the whole batch, not timed): "
                    f"whole batch {rates[0]:6.1f} clips/s, clip by clip {rates[1]:6.1f} ({rates[0] / rates[1]:.2f}x)"
                )


if __name__ == "__main__":
    main()
