"""What the paper recipes feed, next to what the authors' code fed: the Former-DFER AU copy's 16-frame input, read
back from frames that encode their own number (Cross-Innovation-Lab/AU-DFER ``Former-DFER_AU/dataloader/
dataset_DFEW.py``, ``VideoDataset.get``)."""

from __future__ import annotations

import glob
import os

import cv2
import numpy as np
import polars as pl
import pytest

from audfer.config import load_config
from audfer.data.datasets import ClipIndex
from audfer.engine.datamodule import make_dataset, sampling_of
from audfer.errors import InputError
from audfer.models.base import InputSpec


def _numbered_clip(folder, n=16, size=24):
    """Frames ``1.jpg`` .. ``n.jpg`` (the copy's names), each a flat grey of value 12 * k: its own number, written in
    a shuffled order so that the file system's listing is not the numeric one on any common file system."""
    folder.mkdir(parents=True)
    for k in np.random.default_rng(5).permutation(np.arange(1, n + 1)):
        cv2.imwrite(str(folder / f"{k}.jpg"), np.full((size, size, 3), 12 * int(k), np.uint8))
    return folder


def _read_back(clip) -> list[int]:
    """The frame numbers of a (T, 3, H, W) clip of flat frames (values in [0, 1] or [0, 255])."""
    arr = clip.float().numpy()
    scale = 255.0 if arr.max() <= 1.0 + 1e-6 else 1.0
    return [int(round(float(f.mean()) * scale / 12)) for f in arr]


def _authors_feed(folder) -> list[int]:
    """What the copy's ``get`` loads, re-implemented: ``glob.glob(os.path.join(path, '*.jpg'))``, every file once, in
    that order, whatever the segment offsets (train and test alike)."""
    return [int(os.path.basename(p)[:-4]) for p in glob.glob(os.path.join(str(folder), "*.jpg"))]


def _index(folders):
    return ClipIndex(
        pl.DataFrame(
            {
                "clip_id": [f.name for f in folders],
                "label": pl.Series([0] * len(folders), dtype=pl.Int8),
                "path": [str(f) for f in folders],
            }
        ),
        skipped=[],
    )


def test_former_dfer_paper_recipe_feeds_every_listed_frame_once_in_listing_order(tmp_path):
    folders = [_numbered_clip(tmp_path / f"{c:05d}") for c in (1, 2)]
    cfg = load_config("former_dfer_dfew_paper", ["data.cache=null"])
    assert sampling_of(cfg) == "listed"
    spec = InputSpec(16, 16)
    train = make_dataset(cfg, _index(folders), spec, None, train=True)
    test = make_dataset(cfg, _index(folders), spec, None, train=False)
    train.normalize = test.normalize = None
    for i, folder in enumerate(folders):
        expected = _authors_feed(folder)
        assert sorted(expected) == list(range(1, 17)) and expected != sorted(expected)  # a real listing order
        for epoch in range(4):
            clip, *_ = train[(epoch, i)]
            assert _read_back(clip) == expected, f"train epoch {epoch}"
        assert _read_back(test[i][0]) == expected
    # without the bug, training samples 8 segments x 2 in time order: 9 of the 16 frames (offsets 0..7, two each)
    base = make_dataset(load_config("former_dfer_dfew", ["data.cache=null"]), _index(folders), spec, None, train=True)
    base.normalize = None
    fed = _read_back(base[(0, 0)][0])
    assert fed == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9]


def test_the_listed_feed_refuses_a_clip_that_is_not_sixteen_frames(tmp_path):
    folder = _numbered_clip(tmp_path / "00001", n=12)
    ds = make_dataset(
        load_config("former_dfer_dfew_paper", ["data.cache=null"]), _index([folder]), InputSpec(16, 16), None,
        train=False,
    )
    with pytest.raises(InputError, match="exactly 16 frames; got a clip of 12"):
        ds[0]
