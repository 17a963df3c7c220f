"""``ClipDataModule`` and what it is built from: the model's sampling and transforms as the config sets them, the
datasets, the loaders (``EpochShuffle`` yields ``(epoch, index)`` and shards itself under DDP, ``ShardInOrder`` for
evaluation without padded duplicates)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import torch

from audfer.config.load import with_values
from audfer.config.schema import Config, TrainOptions
from audfer.data.cache import ClipCache
from audfer.data.datasets import (
    ClipDataset,
    ClipIndex,
    ClipOptions,
)
from audfer.data.sampling import sampler_options
from audfer.data.transforms import ClipStep, Compose, DeferredClips, RandomResizedCrop, batch_clips, build_transform
from audfer.engine.resolve import Prepared, au_labels_for, prepare, split_index
from audfer.models import model_entry
from audfer.models.base import InputSpec


def sampling_of(cfg: Config) -> str:
    """The temporal sampler a run uses: ``data.sampling``, or the model's own recipe; under
    ``data.reproduce_bugs=[unsorted-frames]`` every listed frame once (``listed``, the Former-DFER AU copy's get)."""
    if "unsorted-frames" in cfg.data.reproduce_bugs:
        return "listed"
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
        crop_aspect=d.crop_aspect,
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
    options = ClipOptions(
        num_frames=spec.frames,
        sampling=sampling,
        train=train,
        seed=cfg.train.seed,
        sampling_kwargs=kwargs,
        cache=cache,
        decode_size=spec.size if reduced else None,
        on_bad_frame=d.on_bad_frame,
        frame_order="listing" if listing else "numeric",
        batch_normalize=train,
        augment_on=d.augment_on,
    )
    return ClipDataset(index, transform, options, au_labels=au_labels)


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process under DDP; ``(0, 1)`` otherwise."""
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
        rank, world = rank_world()
        order = np.random.default_rng([self.seed, 11, self.epoch]).permutation(self.n)
        if world > 1:
            total = -(-self.n // world) * world
            order = np.concatenate([order, order[: total - self.n]])[rank::world]
        return iter([(self.epoch, int(i)) for i in order])

    def __len__(self) -> int:
        _, world = rank_world()
        return -(-self.n // world)


class ShardInOrder(torch.utils.data.Sampler):
    """Evaluation order: clips in index order, each process of a DDP run taking every ``world``-th clip
    and no clip twice (no padding: a padded duplicate would be counted twice in WAR/UAR)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        rank, world = rank_world()
        return iter(range(rank, self.n, world))

    def __len__(self) -> int:
        rank, world = rank_world()
        return len(range(rank, self.n, world))


def collate(
    batch: list[tuple], tail: ClipStep | None = None, *, normalize: ClipStep | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Items (``ClipSample``) -> ``(clips, labels, au_targets, au_mask, ids)``; the clips through ``batch_clips``, the
    one place a deferred tail meets its batch: ``tail`` (the dataset's tail deferred to the loader, a final
    ``Normalize``; ``normalize``: its former name) runs once on the stacked uint8 clips, the same values as per clip
    with one float batch allocated instead of one per clip (the demo's pipeline: 12 % -> see
    benchmarks/bench_train_throughput.py); items drawn for the device give a ``DeferredClips``."""
    clips, labels, au, mask, ids = zip(*batch)
    stacked = batch_clips(clips, tail if tail is not None else normalize)
    return stacked, torch.tensor(labels), torch.stack(au), torch.stack(mask), list(ids)  # type: ignore[return-value]


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
        collate_fn=functools.partial(collate, tail=ds.tail if ds.tail_on == "loader" else None),
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
        self.device_steps: Compose | None = None

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
        self.device_steps = ds.tail if ds.tail_on == "device" else None
        return loader(ds, self._batch(), train=True, workers=self.cfg.data.num_workers, seed=self.cfg.train.seed)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``data.augment_on=device``: the deferred augmentation, where the batch now is (the training device)."""
        if isinstance(batch[0], DeferredClips):
            assert self.device_steps is not None
            return (batch[0].apply(self.device_steps), *batch[1:])
        return batch

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


def steps_per_epoch(n_train: int, t: TrainOptions) -> int:
    """Optimiser steps per epoch: full batches per process (``devices`` on each of ``num_nodes`` machines) (the last partial batch is dropped), as many as
    ``train.limit_train_batches`` lets Lightning run (an integer: batches; a float up to 1.0: a share of them, rounded
    down; 0 when that leaves none: ``engine.learning.check_learning`` refuses it)."""
    per_process = -(-n_train // (t.devices * t.num_nodes))
    steps = max(1, per_process // t.batch_size) if per_process > t.batch_size else 1
    limit = t.limit_train_batches
    if isinstance(limit, float) and limit <= 1.0:
        return int(steps * limit)
    return min(steps, int(limit)) if limit else steps
