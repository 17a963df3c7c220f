"""Reproducing what was published: base-repository and paper recipes side by side, training crops at the frames' full
resolution, MAE-DFER's squash and batch-scaled floor, the selection rules of the sources, and a dry run that says
which source a recipe follows, what it reproduces and how large the AU loss's weights are."""

from __future__ import annotations

import json

import cv2
import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from audfer.config import load_config, shipped_configs
from audfer.data.datasets import ClipIndex
from audfer.data.transforms import RandomResizedCrop
from audfer.engine.datamodule import crop_upsampling, make_dataset
from audfer.models.base import InputSpec

from conftest import TINY


def _dfew_like_clip(folder, n=6, size=256):
    """A clip folder of ``size``-px JPEGs with fine detail (what reduced decoding loses)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(1, n + 1):
        img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (3, 3), 0)
        cv2.imwrite(str(folder / f"{t:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def _index(folder):
    return ClipIndex(
        pl.DataFrame({"clip_id": ["00001"], "label": pl.Series([0], dtype=pl.Int8), "path": [str(folder)]}),
        skipped=[],
    )


@pytest.mark.parametrize("decode, decoded", [("full", 256), ("reduced", 128)])
def test_training_crops_are_drawn_from_the_frames_as_stored(tmp_path, monkeypatch, decode, decoded):
    folder = _dfew_like_clip(tmp_path / "clip")
    cfg = load_config("m3dfel_dfew", [f"data.decode={decode}", "data.jitter=0", "data.hue=0"])
    spec = InputSpec(16, 112)
    seen = []
    original = RandomResizedCrop.box

    def recording(self, h, w, rng):
        box = original(self, h, w, rng)
        seen.append(((h, w), box))
        return box

    monkeypatch.setattr(RandomResizedCrop, "box", recording)
    ds = make_dataset(cfg, _index(folder), spec, None, train=True)
    ds.normalize = None  # compare pixels, not normalised values
    clip, *_ = ds[0]
    (hw, (top, left, ch, cw)), *_ = seen
    assert hw == (decoded, decoded)
    if decode == "reduced":
        return
    # an independent reference: PIL decodes the stored 256-px JPEG, crops the same box and resizes to 112 (bilinear)
    frames = sorted(folder.glob("*.jpg"))
    refs = [
        np.asarray(
            Image.open(f).convert("RGB").crop((left, top, left + cw, top + ch)).resize((112, 112), Image.BILINEAR)
        )
        for f in frames
    ]
    ours = clip.permute(0, 2, 3, 1).numpy().astype(np.float64)
    if ours.max() <= 1.0:
        ours = ours * 255
    flipped = ours[..., ::-1, :]
    best = []
    for t in range(ours.shape[0]):  # each sampled frame is one of the clip's frames (flipped or not)
        errs = [min(np.abs(ours[t] - r).mean(), np.abs(flipped[t] - r).mean()) for r in refs]
        best.append(min(errs))
    assert max(best) < 2.0, best  # libjpeg builds and PIL's fixed-point resampler differ by a level or two at most


@pytest.mark.slow
def test_the_share_of_enlarged_crops_is_stated_and_matches_an_independent_draw():
    spec = InputSpec(16, 112)
    full = crop_upsampling(load_config("m3dfel_dfew"), spec, (256, 256))
    reduced = crop_upsampling(load_config("m3dfel_dfew", ["data.decode=reduced"]), spec, (256, 256))
    cached = crop_upsampling(load_config("m3dfel_dfew", ["data.decode=reduced", "data.cache=auto"]), spec, (256, 256))
    assert full["decoded"] == [256, 256] and reduced["decoded"] == [128, 128] and cached == reduced

    # independent: torchvision's rule written out (area 8-100 %, log-uniform ratio 3/4-4/3, first of 10 that fits)
    def share(side, n=20000, seed=1):
        rng = np.random.default_rng(seed)
        small = 0
        for _ in range(n):
            for _ in range(10):
                area = side * side * rng.uniform(0.08, 1.0)
                ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
                w, h = round(np.sqrt(area * ratio)), round(np.sqrt(area / ratio))
                if 0 < w <= side and 0 < h <= side:
                    small += min(w, h) < 112
                    break
            else:
                small += side < 112
        return small / n

    for res, side in ((full, 256), (reduced, 128)):
        assert res["share_upsampled"] == pytest.approx(share(side), abs=0.015)
    assert 0.12 < full["share_upsampled"] < 0.22 and reduced["share_upsampled"] > 0.7  # 17 % and 92 % here


def test_mae_dfer_squashes_to_160_first_and_scales_its_lr_floor_with_the_batch():
    from audfer.engine.datamodule import train_transform
    from audfer.engine.module import AUDFERModule

    cfg = load_config("mae_dfer_dfew", ["model.name=mae_dfer_small"])
    spec = InputSpec(16, 160, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    steps = [type(s).__name__ for s in train_transform(cfg, spec).steps]
    assert steps == ["Squash", "RandAugment", "RandomResizedCrop", "HorizontalFlip", "Normalize", "RandomErasing"]
    clip = torch.randint(0, 256, (2, 3, 120, 200), dtype=torch.uint8)
    assert train_transform(cfg, spec).steps[0](clip).shape[-2:] == (160, 160)  # squashed, aspect ignored
    # run_class_finetuning.py: lr, min_lr and warmup_lr all x total batch / 256 (3 devices x 32, the logged layout)
    m = AUDFERModule.from_config(cfg, np.full((7, 18), 0.5).tolist(), None, steps_per_epoch=10)
    scale = cfg.train.batch_size * cfg.train.devices / 256
    assert m.base_lr() == pytest.approx(1e-3 * scale)
    assert m.lr_at(cfg.train.epochs * 10 - 1) == pytest.approx(1e-6 * scale, rel=0.05)
    assert load_config("mae_dfer_ferv39k").train.batch_size == 40


def test_recipes_come_in_base_and_paper_variants_that_say_what_they_follow():
    names = shipped_configs()
    for model in ("m3dfel", "former_dfer", "mae_dfer"):
        for ds in ("dfew", "ferv39k", "mafw"):
            base, paper = load_config(f"{model}_{ds}"), load_config(f"{model}_{ds}_paper")
            assert f"{model}_{ds}_paper" in names
            assert base.follows and paper.follows and base.follows != paper.follows
            assert "AU-DFER" in paper.follows and "AU-DFER" not in base.follows
            assert base.data.reproduce_bugs == ()  # a bug is never reproduced by a base recipe
    assert load_config("m3dfel_dfew").au.strategy == "global"  # the paper's M3DFEL headline row
    paper = load_config("m3dfel_dfew_paper")
    assert paper.data.frames == "clip_224x224_16f" and paper.data.reproduce_bugs == ("m3dfel-16f",)
    assert (paper.train.selection, paper.train.monitor, paper.au.pos_weights) == ("best-test", "war+uar", "dfew")
    assert (paper.train.epochs, paper.train.batch_size) == (100, 64)
    assert (load_config("m3dfel_dfew").train.epochs, load_config("m3dfel_dfew").train.batch_size) == (300, 256)
    assert load_config("former_dfer_dfew_paper").data.reproduce_bugs == ("unsorted-frames",)


def test_unsorted_frames_are_only_a_named_bug(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in (3, 1, 2, 10):
        cv2.imwrite(str(folder / f"{t}.jpg"), np.full((8, 8, 3), 20 * t, np.uint8))
    base = make_dataset(load_config("former_dfer_dfew"), _index(folder), InputSpec(4, 8), None, train=False)
    bug = make_dataset(
        load_config("former_dfer_dfew", ["data.reproduce_bugs=[unsorted-frames]"]),
        _index(folder),
        InputSpec(4, 8),
        None,
        train=False,
    )
    base.normalize = bug.normalize = None
    assert base.frame_order == "numeric" and bug.frame_order == "listing"
    from audfer.data.datasets import frame_paths

    assert [p.name for p in frame_paths(folder)] == ["1.jpg", "2.jpg", "3.jpg", "10.jpg"]
    assert [p.name for p in frame_paths(folder, "listing")] == [p.name for p in folder.iterdir()]


@pytest.mark.slow
def test_best_test_selection_on_war_plus_uar_reports_the_best_war_and_uar_separately(synth, tmp_path):
    from audfer.engine import train

    cfg = load_config(
        "synthetic_small",
        [f"data.root={synth}", f"out={tmp_path / 'run'}", *TINY, "train.epochs=3"]
        + ["train.selection=best-test", "train.monitor=war+uar"],
    )
    out = train(cfg, log=lambda m: None)
    sel = json.loads((out / "selection.json").read_text())
    rows = pl.read_csv(out / "epochs.csv")
    score = (rows["val/war"] + rows["val/uar"]).to_list()
    assert sel["monitor"] == "val/war+uar" and sel["epoch"] == int(np.argmax(score)) + 1
    assert sel["score"] == pytest.approx(max(score), abs=1e-6)
    assert sel["best_war"]["epoch"] == int(np.argmax(rows["val/war"].to_list())) + 1
    assert sel["best_uar"]["uar"] == pytest.approx(rows["val/uar"].max())
    assert sel["follows"] == cfg.follows and sel["reproduced_bugs"] == []


@pytest.mark.slow
def test_a_dry_run_says_what_it_follows_reproduces_enlarges_and_weighs(synth, tmp_path):
    from audfer.engine.plan import plan

    cfg = load_config(
        "synthetic_small",
        [f"data.root={synth}", f"out={tmp_path / 'run'}", *TINY, "data.decode=full", "data.crop_scale=[0.08, 1.0]"],
    )
    logs = []
    result = plan(cfg, log=logs.append)
    assert result["follows"] == cfg.follows and result["reproduced_bugs"] == []
    crops = result["training_crops"]
    assert crops["stored"] == [32, 32] and crops["decoded"] == [32, 32] and crops["share_upsampled"] > 0.5
    scale = result["pos_weight_scale"]
    assert len(scale["largest"]) == 5 and scale["authors_dfew_max"] > 1
    assert scale["largest"][0][1] == pytest.approx(max(v for _, v in scale["largest"]))
    assert any("largest pos-weights" in m and "authors' dfew table" in m for m in logs)
    assert any("enlarged to 32 px" in m for m in logs)


@pytest.mark.slow
def test_the_recipe_smoke_benchmark_feeds_each_recipe_its_own_input(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_recipes.py"
    spec = importlib.util.spec_from_file_location("bench_recipes", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    lines = []
    rows = bench.run(steps=2, device="cpu", small=True, workers=0, clips=20, log=lines.append)
    assert [r["recipe"] for r in rows] == list(bench.RECIPES) and len(lines) == 1 + len(rows)
    for r in rows:
        assert r["input"] == r["spec"]  # the batches are the recipe's real input shape (frames, 3, size, size)
        assert r["clips"] == 2 * r["batch"] and r["amp"] == "off"  # no AMP on a CPU, said so
        assert all(r[k] > 0 for k in ("pipeline", "model_step", "together"))
    assert {r["model"] for r in rows} == {"m3dfel_small", "former_dfer_small", "mae_dfer_small"}
