"""Per-frame expression probabilities of a base model (paper §3.1, Eq. 3): the pseudo-labels ``E_Si[j]`` that the
θ filter of the knowledge extraction reads (``audfer knowledge --frame-probs``, ``method.knowledge``).

The paper runs the original M3DFEL "to generate the expression pseudo label" of every frame and keeps the frames with
``E_Si[j] > θ``. A clip model sees a clip, not a frame, so audfer declares how a frame gets its probability:

- **window**: frame ``t`` (0-based, in the clip's temporal order: a frame folder's images ordered by the numbers in
  their names, ``io.order_frames``; a video's frames in decoding order) is given the window of ``W`` consecutive
  frames centred on it, ``start = t - W // 2``, shifted to lie inside the clip at its borders
  (``start = clamp(t - W // 2, 0, max(n - W, 0))``; a clip shorter than ``W`` is one window, the whole clip).
  ``W`` defaults to the model's frame count (``InputSpec.frames``; ``--window`` sets it);
- **sampling**: inside the window, the model's own test-time sampling (``data.sampling`` or the model's recipe, with
  ``data.stride`` and view 0, exactly as ``evaluate`` samples a clip) picks the model's frames, and the test transform
  (resize, normalisation, no augmentation) prepares them; the frame's probabilities are the softmax of the model's
  logits on that window (``p0..p6`` in label order, one view);
- **stride**: with ``stride`` s > 1 only frames ``0, s, 2s, ...`` and the clip's last frame are computed; every other
  frame copies the computed frame nearest to it in time (the earlier one on a tie).

``frame`` is numbered as OpenFace numbers the same input, so that the table joins the OpenFace CSV's ``frame``
column: 1-based, in the order OpenFace reads it. A video: decoding order (frame 1 = the first decoded frame). A frame
folder: OpenFace's ``SequenceCapture::OpenImageSequence`` (``lib/local/Utilities/src/SequenceCapture.cpp``) sorts the
file names as text (``std::sort`` of the paths), so for ``1.jpg .. 16.jpg`` (DFEW's ``clip_224x224_16f``) OpenFace's
frame 2 is ``10.jpg``; the probabilities of OpenFace frame ``k`` are those of the image OpenFace read as its ``k``-th,
whatever its temporal position. Zero-padded names (``00001.jpg``) sort the same both ways.

Resuming: finished clips go to ``<out>.parts/`` in chunks, each written atomically with the settings it was made
with (``parts.json``); a later call with the same checkpoint and settings skips the clips already there, and the
final table is written (atomically) only when every clip is done, then the parts are removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from audfer.config.load import apply_overrides, load_config
from audfer.data.datasets import count_frames, frame_paths, read_frames
from audfer.data.sampling import sample_indices
from audfer.data.transforms import build_transform
from audfer.engine.datamodule import sampling_kwargs, sampling_of
from audfer.engine.resolve import identities_for, split_index, training_subset
from audfer.errors import AudferError, ConfigError, InputError
from audfer.files import write_json
from audfer.hints import Log, PathLike
from audfer.io import write_csv
from audfer.models.checkpoint import load_checkpoint
from audfer.models.registry import create_model
from audfer.provenance import write_provenance
from audfer.weights.package import read_stored_run

__all__ = ["frame_probabilities", "frame_windows", "computed_frames", "openface_frame_numbers", "SPLITS"]

SPLITS = ("train", "test", "all")
PCOLS = [f"p{i}" for i in range(7)]


def frame_windows(n: int, window: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the window of each frame ``t`` of an ``n``-frame clip: ``window`` frames centred on ``t``
    (``start = t - window // 2``), shifted inside the clip at its borders; the whole clip when ``n <= window``."""
    if n < 1 or window < 1:
        raise AudferError(f"a clip of {n} frames and a window of {window}: both must be positive")
    if n <= window:
        return [(0, n)] * n
    return [(s, s + window) for s in (min(max(t - window // 2, 0), n - window) for t in range(n))]


def computed_frames(n: int, stride: int) -> tuple[list[int], list[int]]:
    """``(computed, source)``: the frames whose window is run (``0, stride, 2 stride, ...`` and the last), and for
    every frame the computed frame it takes its probabilities from (nearest in time; the earlier one on a tie)."""
    if stride < 1:
        raise AudferError(f"--stride must be a positive integer, got {stride}")
    computed = sorted(set(range(0, n, stride)) | {n - 1})
    arr = np.asarray(computed)
    source = []
    for t in range(n):
        j = int(np.searchsorted(arr, t))  # arr[j] >= t
        if j < len(arr) and arr[j] == t:
            source.append(t)
            continue
        before, after = arr[j - 1], arr[j]
        source.append(int(before if t - before <= after - t else after))
    return computed, source


def openface_frame_numbers(path: Path) -> tuple[int, list[int]]:
    """``(n, numbers)`` of a clip: its frame count and, for each frame in temporal order, the 1-based number OpenFace
    gives it (see the module docstring): the position of the file name in text order for a folder, ``t + 1`` for a
    video."""

    if path.is_dir():
        files = frame_paths(path)  # temporal order (numbers in the names)
        by_text = sorted(files, key=lambda p: p.name)
        rank = {p.name: k + 1 for k, p in enumerate(by_text)}
        return len(files), [rank[p.name] for p in files]
    n = count_frames(path)
    return n, list(range(1, n + 1))


def _digest(path: PathLike) -> str:
    p = Path(path)
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else []
    h = hashlib.sha256(str(path).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _load(checkpoint: PathLike, model_name: str | None, config: str | None, overrides: Sequence[str], **kw: Any):
    """The model and the config it runs with, through the existing loading doors: an audfer checkpoint or package
    (``weights.package.read_stored_run``: its own config, then ``overrides``), or released weights with
    ``model_name`` (``models.checkpoint.load_checkpoint``, as ``predict.load_predictor`` does) run with ``config``
    (an experiment config) + ``overrides``."""
    if model_name:
        if not config:
            raise ConfigError("frame-probs: released weights (--model) need --config (the dataset and sampling config)")
        cfg = load_config(config, list(overrides))
        if cfg.model.name != model_name:
            cfg = apply_overrides(cfg, [f"model.name={model_name}"])
        model = create_model(model_name, **dict(cfg.model.kwargs or {}))
        load_checkpoint(model, checkpoint, **kw)
        return model.eval(), cfg, None
    stored = read_stored_run(checkpoint, **kw)
    model = stored.build_model()
    base = apply_overrides(stored.cfg, [])
    return model, apply_overrides(stored.cfg, list(overrides)), base


#: overrides that say where the data are (applied to the stored config to list the clips it was trained on)
_WHERE = ("data.root=", "data.frames=", "data.train_list=", "data.test_list=", "data.identities=", "data.on_missing=")


def trained_on(stored_cfg: Any, overrides: Sequence[str]) -> list[str] | None:
    """The clip ids a stored run was trained on: its training split (and ``data.train_fraction`` subset; validation
    clips carved from it are included, a conservative superset) at the stored config's data, with only the overrides
    that say where the data are; None when they cannot be listed (the data are not there)."""

    if stored_cfg is None:
        return None
    cfg = apply_overrides(stored_cfg, [o for o in overrides if o.startswith(_WHERE)])
    try:
        train = split_index(cfg, "train")
    except AudferError:
        return None
    if cfg.data.train_fraction < 1:
        train = training_subset(train, cfg.data.train_fraction, cfg.data.subset_seed, identities_for(cfg))
    return [str(c) for c in train.table["clip_id"].to_list()]


def _clips(cfg, split: str) -> pl.DataFrame:

    if split not in SPLITS:
        raise AudferError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    parts = [
        split_index(cfg, s).table.select("clip_id", "path") for s in (("train", "test") if split == "all" else (split,))
    ]
    table = pl.concat(parts).unique("clip_id", keep="first", maintain_order=True)
    return table.with_columns(pl.col("clip_id").cast(pl.String))


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="frame-probs", file=sys.stderr)


class _Parts:
    """``<out>.parts/``: chunks of finished clips (``chunk_<k>.csv``, each atomic) and the settings (``parts.json``)."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.folder = out.with_name(out.name + ".parts")
        self.settings = settings
        meta = self.folder / "parts.json"
        if meta.is_file():
            old = json.loads(meta.read_text())
            if old != settings:
                differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise InputError(
                    f"{self.folder}: unfinished frame probabilities made with other settings ({', '.join(differ)}); "
                    "rerun with the same ones to resume, or remove the folder to start again"
                )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json(settings, meta)
        self.chunks = sorted(self.folder.glob("chunk_*.csv"))

    def done(self) -> pl.DataFrame | None:
        if not self.chunks:
            return None
        return pl.concat([pl.read_csv(c, schema_overrides={"clip_id": pl.String}) for c in self.chunks])

    def add(self, table: pl.DataFrame) -> None:
        path = self.folder / f"chunk_{len(self.chunks):06d}.csv"
        write_csv(table, path)
        self.chunks.append(path)


def _windows_of(frames: np.ndarray, n: int, window: int, computed: list[int], sampler, transform) -> Iterator:
    """Each computed frame's window as the model's input. The test transform works frame by frame (resize,
    normalisation), so it runs once on the whole clip and each window takes its frames from the result."""
    spans = frame_windows(n, window)
    prepared = transform(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), None)
    for t in computed:
        s, e = spans[t]
        yield t, prepared[s + sampler(e - s)]


@torch.no_grad()
def frame_probabilities(
    checkpoint: PathLike,
    overrides: Sequence[str] = (),
    *,
    out: PathLike,
    split: str = "train",
    device: str = "cpu",
    stride: int = 1,
    window: int | None = None,
    batch_size: int = 64,
    chunk_clips: int = 64,
    model_name: str | None = None,
    config: str | None = None,
    trust_pickle: bool = False,
    revision: str | None = None,
    progress: bool | None = None,
    max_clips: int | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Write ``clip_id,frame,p0..p6`` for every frame of every clip of ``split`` (``train``, ``test`` or ``all``) of
    the dataset the checkpoint's config (with ``overrides``) names, and its provenance sidecar (the checkpoint, the
    clips it was trained on, the settings); see the module docstring for how a frame's probability is made and
    numbered. Resumes an interrupted call; ``max_clips`` stops after that many clips of this call (the rest are
    done by the next call). Returns a summary (clips, frames, computed windows, seconds per frame)."""

    out = Path(out)
    if batch_size < 1:
        raise AudferError(f"--batch-size must be a positive integer, got {batch_size}")
    kw: dict[str, Any] = {"trust_pickle": trust_pickle, "revision": revision}
    model, cfg, stored_cfg = _load(checkpoint, model_name, config, overrides, **kw)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AudferError("--device cuda: no CUDA device is available here (use --device cpu)")
    model = model.eval().to(device)
    spec = model.input_spec
    window = window or spec.frames
    if window < 1:
        raise AudferError(f"--window must be a positive integer, got {window}")
    sampling, skw = sampling_of(cfg), sampling_kwargs(cfg, train=False, view=0)
    transform = build_transform(spec, False, pre_resize=cfg.data.pre_resize)
    min_size = spec.size if cfg.data.decode == "reduced" else None

    def sampler(m: int) -> np.ndarray:
        return np.asarray(sample_indices(sampling, m, spec.frames, None, **skw))

    clips = _clips(cfg, split)
    trained = trained_on(stored_cfg, overrides)
    settings = {
        "checkpoint": str(checkpoint),
        "checkpoint_digest": _digest(checkpoint),
        "model": cfg.model.name,
        "dataset": cfg.data.dataset,
        "fold": cfg.data.fold,
        "root": str(cfg.data.root),
        "split": split,
        "window": window,
        "stride": stride,
        "sampling": sampling,
        "sampling_kwargs": skw,
    }
    parts = _Parts(out, settings)
    done = parts.done()
    finished = set() if done is None else set(done["clip_id"].unique().to_list())
    todo = clips.filter(~pl.col("clip_id").is_in(list(finished)))
    if finished:
        log(f"frame-probs: resuming, {len(finished)} of {clips.height} clips already done in {parts.folder}")
    bar = _progress(0, progress)
    t0 = time.perf_counter()
    n_frames = n_windows = 0
    pending: list[pl.DataFrame] = []
    batch: list[torch.Tensor] = []
    owners: list[tuple[int, int]] = []  # (clip slot, frame t) of each window in the batch
    slots: list[dict[str, Any]] = []  # clips being computed: id, numbers, source, probs

    def flush() -> None:
        nonlocal batch, owners
        if not batch:
            return
        logits = model(torch.stack(batch).to(device)).logits.float().softmax(1).cpu().numpy()
        for (slot, t), p in zip(owners, logits):
            slots[slot]["probs"][t] = p
        batch, owners = [], []

    def finish_clips() -> None:
        for s in slots:
            probs = s["probs"]
            rows = np.stack([probs[src] for src in s["source"]])
            pending.append(
                pl.DataFrame(
                    {
                        "clip_id": [s["id"]] * len(rows),
                        "frame": s["numbers"],
                        **{c: rows[:, j] for j, c in enumerate(PCOLS)},
                    },
                    schema_overrides={"frame": pl.Int64},
                )
            )
        slots.clear()

    processed = 0
    for cid, path in todo.iter_rows():
        if max_clips is not None and processed >= max_clips:
            break
        p = Path(path)
        n, numbers = openface_frame_numbers(p)
        frames = read_frames(p, min_size=min_size)
        if len(frames) != n:
            raise InputError(f"{p}: {n} frames listed but {len(frames)} decoded; cannot number its frames")
        computed, source = computed_frames(n, stride)
        slots.append({"id": cid, "numbers": numbers, "source": source, "probs": {}})
        for t, clip in _windows_of(frames, n, window, computed, sampler, transform):
            batch.append(clip)
            owners.append((len(slots) - 1, t))
            if len(batch) >= batch_size:
                flush()
        n_frames += n
        n_windows += len(computed)
        processed += 1
        if bar is not None:
            bar.update(n)
        if len(slots) >= chunk_clips:  # a chunk: compute what is batched, then write its clips atomically
            flush()
            finish_clips()
            parts.add(pl.concat(pending))
            pending.clear()
    flush()
    finish_clips()
    if pending:
        parts.add(pl.concat(pending))
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    remaining = clips.height - len(finished) - processed
    summary = {
        "clips": clips.height,
        "clips_this_call": processed,
        "frames_this_call": n_frames,
        "windows_this_call": n_windows,
        "seconds": seconds,
        "seconds_per_frame": seconds / n_frames if n_frames else None,
        "remaining": remaining,
        "out": str(out),
    }
    if remaining > 0:
        log(f"frame-probs: {processed} clips done this call, {remaining} left in {parts.folder}; rerun to continue")
        return summary
    table = parts.done()
    assert table is not None
    order = {c: i for i, c in enumerate(clips["clip_id"].to_list())}
    table = (
        table.with_columns(pl.col("clip_id").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort("_o", "frame")
        .drop("_o")
    )
    write_csv(table, out)
    write_provenance(
        out,
        what="frame probabilities (Eq. 3 pseudo-labels): clip_ids are the clips the model was trained on",
        clip_ids=trained or [],
        dataset=cfg.data.dataset,
        fold=cfg.data.fold,
        split=split,
        source=str(checkpoint),
        extra={
            "frame_probs": {
                **settings,
                "clips": clips.height,
                "frames": table.height,
                "trained_on_known": trained is not None,
                "numbering": "OpenFace: 1-based, frame folders in text order of the file names, videos in decoding order",
            }
        },
    )
    shutil.rmtree(parts.folder, ignore_errors=True)
    log(
        f"frame probabilities of {clips.height} clips ({table.height} frames, {cfg.data.dataset} {split}, window "
        f"{window}, stride {stride}) -> {out}"
        + ("" if trained is not None else "; the clips the model was trained on are unknown (not recorded)")
    )
    return summary
