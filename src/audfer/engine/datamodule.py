"""From an experiment config to clip indexes, AU labels, pos-weights, DataLoaders and the ``ClipDataModule``.

Split handling is explicit: ``train``/``test`` come from the dataset's own split files; ``best-val``
selection carves a seeded, stratified validation split out of the training fold (the test split is
never used to choose anything unless ``train.selection = best-test`` says so). Pos-weights are counted
on the clips actually trained on (Eq. 6-8), never on the test split.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import torch

from audfer.au.folder import read_au_dir
from audfer.au.sources import read_mapping_file
from audfer.config.load import with_values
from audfer.config.schema import Config
from audfer.data.annotations import keyed
from audfer.data.cache import ClipCache
from audfer.data.datasets import (
    ClipDataset,
    ClipIndex,
    au_targets_for,
    dfew_index,
    ferv39k_index,
    list_index,
    mafw_index,
)
from audfer.data.sampling import sampler_options
from audfer.data.transforms import Compose, Normalize, RandomResizedCrop, build_transform
from audfer.errors import AudferError, InputError
from audfer.io import read_csv_table, read_expression_table
from audfer.method.knowledge import extract_knowledge, paper_knowledge
from audfer.method.labels import official_pos_weights, pos_weights, read_au_labels, video_au_labels
from audfer.models import model_entry
from audfer.models.base import InputSpec
from audfer.provenance import read_provenance, sidecar
from audfer.vocab import AUS


def _frames_dir(cfg: Config) -> str:
    d = cfg.data
    if d.frames:
        return d.frames
    if d.dataset == "synthetic":
        meta = Path(d.root or ".") / "synth.json"
        if not meta.is_file():
            raise AudferError(f"{meta}: not found; data.root must be a folder written by `audfer synth`")
        return Path(json.loads(meta.read_text())["frames_dir"]).name
    return "clip_224x224"


def split_index(cfg: Config, split: str) -> ClipIndex:
    """The official ``train`` or ``test`` split of the configured dataset; an empty split is an error saying which
    split of which dataset at which root, and how many clips were listed and missing."""
    index = _split_index(cfg, split)
    if len(index) == 0:
        d = cfg.data
        fold = f" fold {d.fold}" if d.dataset in ("dfew", "synthetic", "mafw") else ""
        raise AudferError(
            f"{d.dataset}{fold} {split} split at {d.root}: no clip to use ({len(index.skipped)} listed, "
            f"{len(index.skipped)} missing on disk{', e.g. ' + ', '.join(index.skipped[:3]) if index.skipped else ''}"
            f"); check data.root, data.frames and the split files"
        )
    return index


def _split_index(cfg: Config, split: str) -> ClipIndex:
    d = cfg.data
    if d.root is None:
        raise AudferError("config: data.root is not set")
    root, miss = Path(d.root), d.on_missing
    if not root.is_dir():
        raise AudferError(f"{root}: dataset root not found (data.root)")
    kind = d.dataset
    if kind in ("dfew", "synthetic"):
        return dfew_index(root, d.fold, split, frames=_frames_dir(cfg), on_missing=miss)
    if kind == "ferv39k":
        return ferv39k_index(root, split, on_missing=miss)
    if kind == "mafw":
        return mafw_index(root, d.fold, split, classes=d.classes, on_missing=miss)
    lst = d.train_list if split == "train" else d.test_list
    if lst is None:
        raise AudferError(f"config: data.{split}_list is not set (dataset: list)")
    return list_index(lst, root, num_classes=d.classes, class_order=d.class_order, on_missing=miss)


def identities_for(cfg: Config) -> dict[str, str] | None:
    """``clip_id -> identity`` from ``data.identities`` (a CSV ``clip_id,identity``), or a synthetic set's
    ``synth_meta.csv``; None when the dataset has none (subsets are then drawn clip by clip)."""

    d = cfg.data
    path = Path(d.identities) if d.identities else None
    if path is None and d.dataset == "synthetic" and d.root and (Path(d.root) / "synth_meta.csv").is_file():
        path = Path(d.root) / "synth_meta.csv"
    if path is None:
        return None
    table = keyed(read_csv_table(path, ("clip_id", "identity"), what="identities").select("clip_id", "identity"))
    return dict(zip(table["clip_id"].to_list(), table["identity"].to_list()))


def training_subset(
    index: ClipIndex, fraction: float, seed: int, identities: dict[str, str] | None = None
) -> ClipIndex:
    """A stratified, seeded, nested share of a training split (``data.train_fraction``).

    Each class keeps ``ceil(fraction * n_class)`` clips (at least one). Clips are ranked once per ``seed`` by a
    random key of their identity (then of the clip), independently of ``fraction``, and each class takes its first
    ranks: so the subset at 10 % lies inside the one at 25 %, and an identity's clips enter together (a smaller
    subset has fewer people, not fewer clips of everyone), except where a class's quota cuts an identity."""
    import math

    ids = keyed(index.table.select("clip_id"))["clip_id"].to_list()
    labels = index.table["label"].to_numpy()
    rng = np.random.default_rng([seed, 25])
    clip_key = rng.random(len(ids))
    groups = [identities.get(c, f"clip:{c}") if identities else f"clip:{c}" for c in ids]
    uniq = sorted(set(map(str, groups)))
    group_key = dict(zip(uniq, rng.random(len(uniq))))
    order = sorted(range(len(ids)), key=lambda i: (group_key[str(groups[i])], clip_key[i]))
    keep = np.zeros(len(ids), bool)
    for c in np.unique(labels):
        members = [i for i in order if labels[i] == c]
        keep[members[: max(1, math.ceil(fraction * len(members)))]] = True
    return ClipIndex(index.table.filter(pl.Series(keep)), list(index.skipped))


def carve_validation(index: ClipIndex, share: float, seed: int) -> tuple[ClipIndex, ClipIndex]:
    """Seeded stratified hold-out of ``share`` of each class (at least one clip of any class with >= 2)."""
    rng = np.random.default_rng([seed, 7])
    labels = index.table["label"].to_numpy()
    val = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        k = max(1, int(round(share * len(members))))
        val[rng.choice(members, size=min(k, len(members) - 1), replace=False)] = True
    keep = pl.Series(val)
    return ClipIndex(index.table.filter(~keep), []), ClipIndex(index.table.filter(keep), [])


def au_labels_for(cfg: Config) -> pl.DataFrame | None:
    """Video AU labels (Eq. 4) from ``data.au_labels``, or built from a folder of AU CSVs (cached)."""
    return au_labels_with_source(cfg)[0]


def au_labels_with_source(cfg: Config) -> tuple[pl.DataFrame | None, dict | None]:
    """``au_labels_for`` and where the labels came from: the AU tool(s) and the AUs they lack (masked in the
    loss, ``audfer.au.sources``). A ``data.au_labels`` CSV is described by its provenance sidecar (written by
    ``audfer au-labels``); without one the AUs whose cells are all empty are reported as unknown."""

    d = cfg.data
    if d.au_labels:
        labels = read_au_labels(d.au_labels)
        record = read_provenance(d.au_labels) or {}
        info = dict(record.get("au_source") or {"sources": ["unknown (no provenance sidecar)"]})
        info["masked_aus"] = [
            a for a in AUS if a in info.get("masked_aus", []) or labels[a].null_count() == labels.height
        ]
        return labels, {"file": str(d.au_labels), **info}
    folder = _openface_folder(cfg)
    if folder is None:
        if cfg.au.strategy != "none":
            raise AudferError(
                "config: the AU loss needs video AU labels: set data.au_labels (a CSV from `audfer au-labels`) "
                "or data.openface (a folder of per-clip AU CSVs)"
            )
        return None, None
    mapping = read_mapping_file(d.au_mapping) if d.au_mapping else None
    of = read_au_dir(folder, source=d.au_source, mapping=mapping, allow_mixed=d.au_allow_mixed)
    info = {
        "folder": str(folder),
        **of.availability.as_dict(),
        "clips_per_source": {s: list(of.sources.values()).count(s) for s in sorted(set(of.sources.values()))},
    }
    return video_au_labels(of.frames, of.clips), info


def _openface_folder(cfg: Config) -> Path | None:
    d = cfg.data
    if d.openface is None and d.dataset == "synthetic" and d.root:
        return Path(d.root) / "OpenFace"
    return None if d.openface is None else Path(d.openface)


def knowledge_for(cfg: Config, train: ClipIndex | None = None) -> np.ndarray:
    """K: ``paper`` (the shipped matrix), a K.csv, or ``per-fold``: §3.1 on this fold's training clips only
    (their OpenFace frames from ``data.openface``; labels from the training split)."""

    src = cfg.au.knowledge
    if src == "paper":
        return paper_knowledge()
    if src == "ones":  # plain AU multitask: every AU weighs the same for every expression
        return np.ones((7, len(AUS)))
    if src == "per-fold":
        folder = _openface_folder(cfg)
        if folder is None or train is None:
            raise AudferError(
                "config: au.knowledge=per-fold needs data.openface (the folder of per-clip OpenFace CSVs)"
            )

        d = cfg.data
        mapping = read_mapping_file(d.au_mapping) if d.au_mapping else None
        frames = keyed(read_au_dir(folder, source=d.au_source, mapping=mapping, allow_mixed=d.au_allow_mixed).frames)
        return extract_knowledge(frames, keyed(train.table.select("clip_id", "label"))).matrix
    return read_expression_table(src, what="knowledge matrix")


def au_coverage(index: ClipIndex, au_labels: pl.DataFrame | None) -> dict:
    """Share of ``index``'s clips with AU labels, and a few unmatched ids from both sides (for messages)."""

    if au_labels is None:
        return {"clips": len(index), "with_au": 0, "share": 0.0, "unmatched_split": [], "unmatched_labels": []}
    _, mask, missing = au_targets_for(index, au_labels)
    ours = set(keyed(index.table.select("clip_id"))["clip_id"].to_list())
    theirs = keyed(au_labels.select("clip_id"))["clip_id"].to_list()
    anyk = np.asarray(mask.any(axis=1), bool)
    per_au = mask.mean(axis=0) if len(mask) else np.zeros(len(AUS))
    return {
        "clips": len(index),
        "with_au": int(anyk.sum()),
        "share": float(anyk.mean()) if len(anyk) else 0.0,
        "per_au": {a: round(float(v), 4) for a, v in zip(AUS, per_au)},
        "masked_aus": [a for a, v in zip(AUS, per_au) if v == 0],
        "unmatched_split": missing[:5],
        "unmatched_labels": [c for c in theirs if c not in ours][:5],
    }


def pos_weights_for(cfg: Config, train: ClipIndex, au_labels: pl.DataFrame | None) -> np.ndarray | None:
    """7 x 18 pos-weights: counted on the training clips (Eq. 6-8), an official preset, or a CSV."""

    a = cfg.au
    if a.strategy == "none":
        return None
    src = a.pos_weights
    if src == "none":
        return None
    if src == "computed":
        if au_labels is None:
            raise AudferError("config: au.pos_weights=computed needs video AU labels")

        return pos_weights(
            keyed(au_labels),
            keyed(train.table.select("clip_id", "label")),
            a.strategy,
            minor=None if a.minor is None else list(a.minor),
        ).values
    if src in ("dfew", "ferv39k"):
        return official_pos_weights(src, a.strategy)
    return read_expression_table(src, what="pos-weight table")


def au_label_summary(checks: dict) -> dict | None:
    """What a run's records say about its AU labels: source tool(s), masked AUs, coverage of the training clips."""
    if "au_coverage" not in checks:
        return None
    cov, src = checks["au_coverage"], checks.get("au_source") or {}
    masked = sorted(set(cov.get("masked_aus", [])) | set(src.get("masked_aus", [])), key=AUS.index)
    return {
        "sources": src.get("sources", []),
        "masked_aus": masked,
        "coverage": cov["share"],
        "clips_with_labels": cov["with_au"],
        "clips": cov["clips"],
        "per_au_coverage": cov.get("per_au", {}),
    }


def describe_au_labels(summary: dict | None) -> str:
    """One line for logs and reports."""
    if not summary:
        return "no AU labels"
    return (
        f"AU labels from {'+'.join(summary['sources']) or 'unknown'} on {summary['clips_with_labels']} of "
        f"{summary['clips']} training clips ({100 * summary['coverage']:.1f} %); masked (unknown, not absent): "
        f"{', '.join(summary['masked_aus']) or 'none'}"
    )


@dataclass
class Prepared:
    """Everything a run needs besides the model: indexes per split, AU labels, K and pos-weights, and what
    was checked about them (``checks``: AU-label coverage, provenance of K and pos-weights)."""

    train: ClipIndex
    val: ClipIndex | None
    test: ClipIndex
    au_labels: pl.DataFrame | None
    knowledge: np.ndarray
    pos_weight: np.ndarray | None
    checks: dict


def prepare(cfg: Config) -> Prepared:
    """Split indexes, AU labels, K, pos-weights; refuses what would make the run silently wrong:

    - AU labels matching fewer than ``data.min_au_coverage`` of the training clips (ids are matched by
      ``audfer.data.annotations.clip_key``): an error showing unmatched ids from both sides;
    - a K.csv or pos-weight CSV whose provenance sidecar lists clips of this run's test split
      (``au.allow_test_overlap`` accepts it deliberately); the authors' FERV39k preset warns (its counts
      appear to include the test split)."""
    train = split_index(cfg, "train")
    if cfg.data.train_fraction < 1:
        train = training_subset(train, cfg.data.train_fraction, cfg.data.subset_seed, identities_for(cfg))
    test = split_index(cfg, "test")
    val = None
    if cfg.train.selection == "best-val":
        train, val = carve_validation(train, cfg.train.val_share, cfg.train.seed)
    a, d = cfg.au, cfg.data
    au, au_source = au_labels_with_source(cfg)
    checks: dict = {}
    if a.strategy != "none":
        cov = au_coverage(train, au)
        checks["au_coverage"] = cov
        checks["au_source"] = au_source
        if cov["share"] < d.min_au_coverage:
            raise AudferError(
                f"AU labels cover {cov['with_au']} of {cov['clips']} training clips ({100 * cov['share']:.1f} %, below "
                f"data.min_au_coverage={d.min_au_coverage}): split ids without AU labels e.g. "
                f"{', '.join(cov['unmatched_split']) or '-'}; AU-label ids not in the split e.g. "
                f"{', '.join(cov['unmatched_labels']) or '-'} (set data.min_au_coverage lower to train anyway)"
            )
    where = f"{d.dataset} fold {d.fold}"
    test_ids = test.table["clip_id"].to_list()
    if a.knowledge not in ("paper", "per-fold", "ones"):
        checks["knowledge"] = check_no_test_clips(
            a.knowledge, "the knowledge matrix", test_ids, allow=a.allow_test_overlap, where=where
        )
    if a.strategy != "none" and a.pos_weights not in ("computed", "dfew", "ferv39k", "none"):
        checks["pos_weights"] = check_no_test_clips(
            a.pos_weights, "the pos-weight table", test_ids, allow=a.allow_test_overlap, where=where
        )
    if a.strategy != "none" and a.pos_weights == "ferv39k":
        import warnings

        warnings.warn(
            "au.pos_weights=ferv39k: the authors' FERV39k counts appear to include the test split",
            UserWarning,
            stacklevel=2,
        )
    return Prepared(train, val, test, au, knowledge_for(cfg, train), pos_weights_for(cfg, train, au), checks)


def sampling_of(cfg: Config) -> str:
    """The temporal sampler a run uses: ``data.sampling``, or the model's own recipe."""
    return cfg.data.sampling or default_sampling(cfg.model.name)


def sampling_kwargs(cfg: Config, *, train: bool, view: int = 0) -> dict[str, int]:
    """What the run's sampler takes of ``data.stride`` and, at test, ``data.test_views`` (and which view)."""

    takes = sampler_options(sampling_of(cfg))
    offered = (
        {"stride": cfg.data.stride} if train else {"stride": cfg.data.stride, "view": view, "views": views_at_test(cfg)}
    )
    return {k: v for k, v in offered.items() if k in takes}


def views_at_test(cfg: Config) -> int:
    """Temporal views averaged at test: ``data.test_views`` for a sampler with views (MAE-DFER's), else one."""

    return max(1, cfg.data.test_views) if "views" in sampler_options(sampling_of(cfg)) else 1


def default_sampling(model_name: str) -> str:
    """The model's own temporal sampling recipe (``DFERModel.sampling``, declared in its file; ``uniform`` for a
    user's backbone without one)."""

    return getattr(model_entry(model_name).builder, "sampling", "uniform")


def train_transform(cfg: Config, spec: InputSpec) -> Compose:
    """The training transform the config asks for (``data.jitter``, ``hue``, ``crop_scale``, ``randaugment``,
    ``erasing``, ``pre_resize``) for a model's input spec."""
    d = cfg.data
    return build_transform(
        spec,
        True,
        jitter=d.jitter,
        hue=d.hue,
        scale=d.crop_scale,
        randaugment=d.randaugment,
        erasing=d.erasing,
        pre_resize=d.pre_resize,
    )


def decoded_size(cfg: Config, spec: InputSpec, stored: tuple[int, int]) -> tuple[int, int]:
    """The frame size training crops are drawn from, for frames stored at ``stored`` (h, w): as stored under
    ``data.decode=full``; under ``reduced``, libjpeg's DCT scaling (the largest 1/2, 1/4, 1/8 that keeps the short
    side >= the input size), cached or not. ``data.pre_resize`` squashes first."""
    h, w = stored
    if cfg.data.decode == "reduced":  # the cache stores what this decodes (data/cache.py)
        f = next((f for f in (8, 4, 2) if min(h, w) // f >= spec.size), 1)
        h, w = -(-h // f), -(-w // f)
    if cfg.data.pre_resize:
        h = w = cfg.data.pre_resize
    return h, w


def crop_upsampling(cfg: Config, spec: InputSpec, stored: tuple[int, int], draws: int = 20000) -> dict[str, Any]:
    """What the training crop does to frames stored at ``stored`` (h, w): the size crops are drawn from and the share
    of random resized crops smaller than the input size on a side, i.e. enlarged (``plan.json``; DFEW's 256 px frames
    to 112: 17 % at full resolution, 92 % from 128 px frames). Seeded: the same figure every time."""

    h, w = decoded_size(cfg, spec, stored)
    crop = next((s for s in train_transform(cfg, spec).steps if isinstance(s, RandomResizedCrop)), None)
    if crop is None:  # a plain resize: every frame is scaled as a whole
        share = float(min(h, w) < spec.size)
    else:
        rng = np.random.default_rng(0)
        small = sum(min(crop.box(h, w, rng)[2:]) < spec.size for _ in range(draws))
        share = small / draws
    return {"stored": [stored[0], stored[1]], "decoded": [h, w], "decode": cfg.data.decode, "share_upsampled": share}


def make_dataset(
    cfg: Config, index: ClipIndex, spec: InputSpec, au_labels: pl.DataFrame | None, *, train: bool, view: int = 0
) -> ClipDataset:
    """The dataset of one split as the config asks: the run's sampler and its options, the train or test
    transform for the model's ``spec``, the clip cache, video AU labels (Eq. 4) attached when given."""

    d = cfg.data
    sampling = sampling_of(cfg)
    kwargs = sampling_kwargs(cfg, train=train, view=view)
    reduced = d.decode == "reduced"
    listing = "unsorted-frames" in d.reproduce_bugs
    cache = None
    if d.cache and not listing:  # the cache stores frames in numeric order
        folder = cfg.run_dir.parent / ".clip-cache" if d.cache == "auto" else Path(d.cache)
        cache = ClipCache(folder, spec.size if reduced else None)
    transform = train_transform(cfg, spec) if train else build_transform(spec, False, pre_resize=d.pre_resize)
    return ClipDataset(
        index,
        transform,
        num_frames=spec.frames,
        sampling=sampling,
        train=train,
        au_labels=au_labels,
        seed=cfg.train.seed,
        sampling_kwargs=kwargs,
        cache=cache,
        decode_size=spec.size if reduced else None,
        on_bad_frame=d.on_bad_frame,
        frame_order="listing" if listing else "numeric",
        batch_normalize=train,
    )


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShuffle(torch.utils.data.Sampler):
    """Training order: a permutation drawn from ``(seed, epoch)``, sharded over DDP processes.

    It yields ``(epoch, index)`` pairs, not bare indices: the epoch travels with every request to the
    dataset, so DataLoader worker processes (persistent or not, 0 or 8 of them) draw each clip's
    augmentation and frame offsets from ``(seed, epoch, index)`` exactly as the main process would.
    (A dataset's own ``set_epoch`` never reaches the copies living in persistent workers.) The same
    order on a resumed run as on an uninterrupted one. Under DDP each process takes every
    ``world``-th clip of the permutation, padded by repeating its head to equal shares (as
    ``DistributedSampler``)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: the order is a permutation seeded by (seed, epoch), the same whatever the worker count."""
        self.epoch = epoch

    def __iter__(self):
        rank, world = _rank_world()
        order = np.random.default_rng([self.seed, 11, self.epoch]).permutation(self.n)
        if world > 1:
            total = -(-self.n // world) * world
            order = np.concatenate([order, order[: total - self.n]])[rank::world]
        return iter([(self.epoch, int(i)) for i in order])

    def __len__(self) -> int:
        _, world = _rank_world()
        return -(-self.n // world)


class ShardInOrder(torch.utils.data.Sampler):
    """Evaluation order: clips in index order, each process of a DDP run taking every ``world``-th clip
    and no clip twice (no padding: a padded duplicate would be counted twice in WAR/UAR)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        rank, world = _rank_world()
        return iter(range(rank, self.n, world))

    def __len__(self) -> int:
        rank, world = _rank_world()
        return len(range(rank, self.n, world))


def collate(
    batch: list[tuple], normalize: Normalize | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Items -> ``(clips, labels, au_targets, au_mask, ids)``; ``normalize`` (a dataset's deferred ``Normalize``)
    runs once on the stacked uint8 clips: the same values as per clip, with one float batch allocated instead of
    one per clip (the demo's pipeline: 12 % -> see benchmarks/bench_train_throughput.py)."""
    clips, labels, au, mask, ids = zip(*batch)
    stacked = torch.stack(clips)
    if normalize is not None:
        b, t = stacked.shape[:2]
        stacked = normalize(stacked.flatten(0, 1)).unflatten(0, (b, t))
    return stacked, torch.tensor(labels), torch.stack(au), torch.stack(mask), list(ids)


def loader(
    ds: ClipDataset, batch_size: int, *, train: bool, workers: int, seed: int, shard: bool = True
) -> torch.utils.data.DataLoader:
    """Training: ``EpochShuffle``; validation inside a (DDP) run: ``ShardInOrder``; ``shard=False``: every clip
    in order in this process (evaluation of a finished run, which runs on one process)."""
    sampler = EpochShuffle(len(ds), seed) if train else (ShardInOrder(len(ds)) if shard else None)
    return torch.utils.data.DataLoader(
        ds,  # type: ignore[arg-type]  # a map-style dataset by protocol (__len__, __getitem__), not by subclass
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        collate_fn=functools.partial(collate, normalize=getattr(ds, "normalize", None)),
        drop_last=train and len(ds) > batch_size,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


class ClipDataModule(L.LightningDataModule):
    """The data of one run, as Lightning wants it: ``prepare`` (split indexes, AU labels, K, pos-weights, the checks),
    then the training loader and the loader of the split that ``train.selection`` watches, for a model's input spec;
    ``eval_loaders`` gives evaluation its loaders (one per temporal test view) without training-only checks."""

    def __init__(self, cfg: Config, spec, prepared: Prepared | None = None) -> None:
        super().__init__()
        self.cfg, self.spec = cfg, spec
        self._prep = prepared

    @property
    def prep(self) -> Prepared:
        """The prepared splits, AU labels, K and pos-weights (``prepare``), computed once on first use."""
        if self._prep is None:
            self._prep = prepare(self.cfg)
        return self._prep

    @property
    def watched(self) -> ClipIndex | None:
        """The split whose metrics pick the checkpoint: the carved validation split (best-val), the test split
        (best-test), or none (last)."""
        return {"best-val": self.prep.val, "best-test": self.prep.test}.get(self.cfg.train.selection)

    def _batch(self, eval_: bool = False) -> int:
        t = self.cfg.train
        return (t.eval_batch_size or t.batch_size) if eval_ else t.batch_size

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        ds = make_dataset(self.cfg, self.prep.train, self.spec, self.prep.au_labels, train=True)
        return loader(ds, self._batch(), train=True, workers=self.cfg.data.num_workers, seed=self.cfg.train.seed)

    def val_dataloader(self) -> torch.utils.data.DataLoader | list:
        if self.watched is None:
            return []
        ds = make_dataset(self.cfg, self.watched, self.spec, self.prep.au_labels, train=False)
        return loader(ds, self._batch(True), train=False, workers=self.cfg.data.num_workers, seed=self.cfg.train.seed)

    def eval_loaders(self, split: str) -> tuple[list[torch.utils.data.DataLoader], pl.DataFrame | None, int]:
        """``(loaders, AU labels, views)`` over a whole split in order, in this process: one loader per temporal
        test view (MAE-DFER's ``test_views`` with its sampler, else one)."""
        cfg = self.cfg
        index = split_index(cfg, split)
        au = au_labels_for(
            with_values(cfg, {"au.strategy": "none"}, source="evaluation")
        )  # None when no AU source is named
        views = views_at_test(cfg)
        loaders = [
            loader(
                make_dataset(cfg, index, self.spec, au, train=False, view=v),
                self._batch(True),
                train=False,
                workers=cfg.data.num_workers,
                seed=0,
                shard=False,
            )
            for v in range(views)
        ]
        return loaders, au, views


def check_no_test_clips(path: str | Path, what: str, test_ids: Iterable[object], *, allow: bool, where: str) -> dict:
    """Refuse ``path`` when its sidecar lists clips of the run's test split; returns what was found
    (``{"file", "provenance", "test_clips"}``) for the run's records."""
    record = read_provenance(path)
    info: dict[str, object] = {
        "file": str(path),
        "provenance": None if record is None else {k: v for k, v in record.items() if k != "clip_ids"},
        "test_clips": None,
    }
    if record is None:
        warnings.warn(
            f"{path}: {what} has no provenance sidecar ({sidecar(path).name}); cannot check that it was computed "
            f"without test clips",
            UserWarning,
            stacklevel=3,
        )
        return info
    blind = [i["file"] for i in record.get("inputs") or [] if isinstance(i, dict) and i.get("provenance") is None]
    if blind:
        warnings.warn(
            f"{path}: {what} was combined from file(s) without a provenance sidecar ({', '.join(blind)}); their clips "
            f"are unknown, so the check that it was computed without test clips covers only the other inputs",
            UserWarning,
            stacklevel=3,
        )
    used = set(keyed(pl.DataFrame({"clip_id": record["clip_ids"]}, schema={"clip_id": pl.String}))["clip_id"].to_list())
    test = keyed(pl.DataFrame({"clip_id": list(test_ids)}, schema={"clip_id": pl.String}))["clip_id"].to_list()
    overlap = sorted(used.intersection(test))
    info["test_clips"] = len(overlap)
    if overlap and not allow:
        raise InputError(
            f"{path}: {what} was computed from {len(overlap)} clip(s) of the {where} test split "
            f"(e.g. {', '.join(overlap[:5])}); use one computed on the training clips, or set "
            f"au.allow_test_overlap=true to accept the leak deliberately"
        )
    return info
