"""The demo's runs share one clip cache (same items) and its report says what it shows: oracle rows named for what
each uses, the AU loss drawn only where trained, the watched split's curve named (issue 37 item 6)."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from audfer.config.load import dump_config, load_config, with_values
from audfer.engine.datamodule import make_dataset
from audfer.engine.experiments import epoch_curves
from audfer.engine.resolve import split_index
from audfer.models import create_model
from audfer.tasks.demo import demo_config


def test_the_demos_runs_share_one_clip_cache_with_the_same_items(synth, tmp_path):
    cfg = with_values(
        demo_config(tmp_path, synth), {"model.kwargs": {"img_size": 32, "num_frames": 4, "width": 8}}, source="test"
    )
    assert cfg.data.cache == str(tmp_path / ".clip-cache")
    runs = [with_values(cfg, {"out": str(tmp_path / s / "seed_0")}, source="test") for s in ("none", "minor")]
    spec = create_model(cfg.model.name, **cfg.model.kwargs).input_spec
    index = split_index(cfg, "test")
    plain = make_dataset(with_values(cfg, {"data.cache": None}, source="test"), index, spec, None, train=False)
    for run in runs:
        ds = make_dataset(run, index, spec, None, train=False)
        for i in range(4):
            torch.testing.assert_close(ds[i][0], plain[i][0], rtol=0, atol=0)  # the same clip tensors, cached
    entries = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert entries and all(p.is_relative_to(tmp_path / ".clip-cache") for p in entries)  # one cache, no copies
    assert not (tmp_path / "none" / ".clip-cache").exists() and not (tmp_path / "minor" / ".clip-cache").exists()


def _run(folder, strategy, selection, columns):
    folder.mkdir(parents=True)
    cfg = load_config("synthetic_small", [f"au.strategy={strategy}", f"train.selection={selection}"])
    (folder / "config.yaml").write_text(dump_config(cfg))
    (folder / "logs").mkdir()
    pl.DataFrame({"epoch": [0, 1], "step": [3, 7], **columns}).write_csv(folder / "logs" / "metrics.csv")
    return folder


def test_curves_are_named_for_what_they_show(tmp_path):
    logged = {"train/ce": [1.9, 1.7], "train/au": [0.0, 0.0]}
    base = epoch_curves(_run(tmp_path / "none", "none", "last", logged))
    assert set(base) == {"train CE"}  # the baseline's logged zeros are not drawn as an AU loss
    watched = {"val/war": [0.3, 0.4], "val/uar": [0.2, 0.3]}
    au = epoch_curves(_run(tmp_path / "minor", "minor", "best-val", {**logged, "train/au": [0.5, 0.4], **watched}))
    assert set(au) == {"train CE", "train AU loss", "validation WAR (watched)", "validation UAR (watched)"}
    np.testing.assert_allclose(au["train AU loss"], [0.5, 0.4])
    test = epoch_curves(_run(tmp_path / "t", "global", "best-test", {**logged, **watched}))
    assert "test WAR (watched)" in test and "validation WAR (watched)" not in test
