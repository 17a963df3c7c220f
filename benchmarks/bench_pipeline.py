"""The training input pipeline at full fidelity, per recipe and per CPU core, against a reference written the way the
official loaders work, measured in one run on the same frame folders.

Data: ``audfer synth`` clips of 16 frames stored as 256 px JPEG folders (DFEW-like). Per recipe (the shipped
``<model>_dfew`` configs at the full models' input sizes):

- reference: PIL decode of each sampled frame (``Image.open(f).convert("RGB")``), then the official group transforms
  in PIL / numpy with one draw per clip: M3DFEL random resized crop 112 + flip + colour jitter 0.4 (hue 0.4),
  Former-DFER random resized crop 112 + flip, MAE-DFER squash to 160 + RandAugment n=4 m=7 + random resized crop 160
  + flip + cube erasing 0.25 (after the normalisation, MAE-DFER only); frames stacked and divided by 255 as
  ``Stack`` + ``ToTorchFormatTensor`` do (``reference_clip``);
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

MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


# ------------------------------------------------------------------------- the reference (official-style, PIL)
def _rrc_box(w: int, h: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    area = w * h
    for _ in range(10):
        a = area * rng.uniform(*scale)
        r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(a * r)), round(math.sqrt(a / r))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return x, y, x + cw, y + ch
    return 0, 0, w, h


def _jitter(img: Image.Image, b: float, c: float, s: float, hue: float) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(b)
    img = ImageEnhance.Contrast(img).enhance(c)
    img = ImageEnhance.Color(img).enhance(s)
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(hue * 255)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


_RA_OPS = (
    "AutoContrast",
    "Equalize",
    "Rotate",
    "Posterize",
    "Solarize",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
)


def _randaugment(imgs: list[Image.Image], rng: random.Random, n: int = 4, m: float = 7.0) -> list[Image.Image]:
    for _ in range(n):
        op = rng.choice(_RA_OPS)
        mag = max(0.0, min(10.0, rng.gauss(m, 0.5))) / 10
        sign = -1 if rng.random() < 0.5 else 1
        w, h = imgs[0].size
        if op == "AutoContrast":
            f = ImageOps.autocontrast
        elif op == "Equalize":
            f = ImageOps.equalize
        elif op == "Rotate":
            f = lambda im: im.rotate(sign * 30 * mag)  # noqa: E731
        elif op == "Posterize":
            f = lambda im: ImageOps.posterize(im, max(1, 8 - int(4 * mag)))  # noqa: E731
        elif op == "Solarize":
            f = lambda im: ImageOps.solarize(im, 256 - int(256 * mag))  # noqa: E731
        elif op in ("Color", "Contrast", "Brightness", "Sharpness"):
            enh = getattr(ImageEnhance, op)
            f = lambda im, e=enh: e(im).enhance(1 + sign * 0.9 * mag)  # noqa: E731
        elif op in ("ShearX", "ShearY"):
            k = sign * 0.3 * mag
            data = (1, k, 0, 0, 1, 0) if op == "ShearX" else (1, 0, 0, k, 1, 0)
            f = lambda im, d=data: im.transform(im.size, Image.AFFINE, d)  # noqa: E731
        else:
            t = sign * 0.45 * mag * (w if op == "TranslateX" else h)
            data = (1, 0, t, 0, 1, 0) if op == "TranslateX" else (1, 0, 0, 0, 1, t)
            f = lambda im, d=data: im.transform(im.size, Image.AFFINE, d)  # noqa: E731
        if rng.random() < 0.5:
            imgs = [f(im) for im in imgs]
    return imgs


def reference_clip(recipe: str, files: list[Path], idx: np.ndarray, size: int, rng: random.Random) -> torch.Tensor:
    """One training clip the way the official loaders make it. M3DFEL and Former-DFER (TFace
    ``attribute/M3DFEL/datasets/video_transform.py``, Former-DFER ``dataloader/video_transform.py``):
    ``GroupRandomSizedCrop`` crops each image, then resizes it; ``GroupRandomHorizontalFlip``; M3DFEL's
    ``GroupColorJitter`` (torchvision's PIL ops); ``Stack`` concatenates the frames along the channel axis and
    ``ToTorchFormatTensor`` permutes and divides by 255 (no mean/std). MAE-DFER: squash to 160, RandAugment on the PIL
    frames, crop and flip, then float, normalised, cube erasing."""
    imgs = [Image.open(files[i]).convert("RGB") for i in idx]
    if recipe == "mae_dfer":
        imgs = [im.resize((160, 160), Image.BILINEAR) for im in imgs]
        imgs = _randaugment(imgs, rng)
        box = _rrc_box(*imgs[0].size, rng)
        imgs = [im.resize((size, size), Image.BILINEAR, box=box) for im in imgs]
        if rng.random() < 0.5:
            imgs = [im.transpose(Image.FLIP_LEFT_RIGHT) for im in imgs]
        x = (np.stack([np.asarray(im, np.float32) / 255 for im in imgs]) - MEAN) / STD
        out = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        if rng.random() < 0.25:  # cube erasing: one box on every frame, noise per pixel
            eh, ew = int(size * rng.uniform(0.1, 0.4)), int(size * rng.uniform(0.1, 0.4))
            y0, x0 = rng.randint(0, size - eh), rng.randint(0, size - ew)
            out[:, :, y0 : y0 + eh, x0 : x0 + ew] = torch.randn(out.shape[0], 3, eh, ew)
        return out
    box = _rrc_box(*imgs[0].size, rng)
    imgs = [im.crop(box).resize((size, size), Image.BILINEAR) for im in imgs]
    if rng.random() < 0.5:
        imgs = [im.transpose(Image.FLIP_LEFT_RIGHT) for im in imgs]
    if recipe == "m3dfel":
        b, c, s = (rng.uniform(0.6, 1.4) for _ in range(3))
        hue = rng.uniform(-0.4, 0.4)
        imgs = [_jitter(im, b, c, s, hue) for im in imgs]
    stacked = np.concatenate(imgs, axis=2)  # (H, W, 3 T)
    x = torch.from_numpy(stacked).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    return x.reshape(-1, 3, size, size)


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
            # Former-DFER globs and sorts a clip's folder for every item (dataloader/dataset_DFEW.py,
            # VideoDataset.get); M3DFEL (datasets/dataset_DFEW.py, get_data) lists them once, as MAE-DFER's list file
            files = sorted(glob.glob(str(folder / "*.jpg"))) if recipe == "former_dfer" else listed[i]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2, help="epochs per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each figure, interleaved; medians shown")
    ap.add_argument("--recipes", default="m3dfel,former_dfer,mae_dfer")
    args = ap.parse_args()
    _one_thread()
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
