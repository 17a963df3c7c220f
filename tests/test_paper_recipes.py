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
import torch

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
        load_config("former_dfer_dfew_paper", ["data.cache=null"]),
        _index([folder]),
        InputSpec(16, 16),
        None,
        train=False,
    )
    with pytest.raises(InputError, match="exactly 16 frames; got a clip of 12"):
        ds[0]


# --------------------------------------------------------------------------- MAE-DFER's logged batch


def _official_cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """sunlicai/MAE-DFER ``utils.py``, ``cosine_scheduler``, re-implemented from its formula: ``linspace(start, base,
    warmup_epochs * niter)`` then ``final + 0.5 (base - final) (1 + cos(pi i / len))`` over the remaining steps.
    ``run_class_finetuning.py`` calls it with ``start_warmup_value`` left at 0."""
    warm = warmup_epochs * niter_per_ep
    head = np.linspace(start_warmup_value, base_value, warm) if warmup_epochs > 0 else np.array([])
    rest = epochs * niter_per_ep - warm
    tail = np.array(
        [final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * i / rest)) for i in range(rest)]
    )
    return np.concatenate((head, tail))


# logs/dfew.out, ferv39k.out, mafw.out: training examples, "Batch size", "LR", steps per epoch, warm-up steps
LOGGED = {
    "mae_dfer_dfew": (9356, 96, 3.75e-4, 97, 485),
    "mae_dfer_ferv39k": (31088, 120, 4.6875e-4, 259, 1295),
    "mae_dfer_mafw": (7339, 96, 3.75e-4, 76, 380),
}


@pytest.mark.parametrize("recipe", sorted(LOGGED))
def test_mae_dfer_base_recipes_run_the_logged_global_batch_lr_and_schedule(recipe):
    from audfer.engine.datamodule import steps_per_epoch
    from audfer.engine.module import AUDFERModule
    from audfer.engine.plan import global_batch

    clips, batch, lr, steps, warm = LOGGED[recipe]
    cfg = load_config(recipe, ["model.name=mae_dfer_small"])
    assert global_batch(cfg.train) == batch and cfg.train.devices == 3
    assert steps_per_epoch(clips, cfg.train) == steps
    m = AUDFERModule.from_config(cfg, np.full((7, 18), 0.5).tolist(), None, steps_per_epoch=steps)
    assert m.base_lr() == pytest.approx(lr, rel=1e-12)
    ours = np.array([m.lr_at(s) for s in range(cfg.train.epochs * steps)])
    official = _official_cosine_scheduler(1e-3 * batch / 256, 1e-6 * batch / 256, 100, steps, warmup_epochs=5)
    assert len(ours) == len(official) and int(np.argmax(official)) == warm - 1
    np.testing.assert_allclose(ours, official, rtol=1e-12, atol=1e-18)
    # the same global batch on one device: the identical schedule (BatchNorm-free ViT), one mixup draw per step
    one = load_config(recipe, ["model.name=mae_dfer_small", "train.devices=1", f"train.batch_size={batch}"])
    assert steps_per_epoch(clips, one.train) == steps
    m1 = AUDFERModule.from_config(one, np.full((7, 18), 0.5).tolist(), None, steps_per_epoch=steps)
    np.testing.assert_array_equal([m1.lr_at(s) for s in range(len(ours))], ours)


def test_paper_recipes_keep_the_authors_one_process_batch_and_the_layout_differences_are_named():
    from audfer.engine.plan import batch_layout, global_batch

    for ds, b in (("dfew", 32), ("ferv39k", 40), ("mafw", 32)):
        cfg = load_config(f"mae_dfer_{ds}_paper")
        assert (cfg.train.devices, cfg.train.batch_size, global_batch(cfg.train)) == (1, b, b)
        assert batch_layout(cfg, batchnorm=False)["differs"] == []
    base = load_config("mae_dfer_dfew")
    assert batch_layout(base, batchnorm=False) == {
        "global_batch": 96,
        "devices": 3,
        "num_nodes": 1,
        "per_device": 32,
        "lr": pytest.approx(3.75e-4, rel=1e-12),  # logs/dfew.out: lr 0.000375 at batch 96
        "source": {"devices": 3, "per_device": 32, "global_batch": 96},
        "follows": base.follows,
        "differs": [],
    }
    one = batch_layout(load_config("mae_dfer_dfew", ["train.devices=1", "train.batch_size=96"]), batchnorm=False)
    assert (
        len(one["differs"]) == 1 and "1 draw(s) over 96 clips per step, not the source's 3 over 32" in one["differs"][0]
    )
    nodes = batch_layout(load_config("mae_dfer_dfew", ["train.devices=1", "train.num_nodes=3"]), batchnorm=False)
    assert nodes["global_batch"] == 96 and nodes["lr"] == pytest.approx(3.75e-4, rel=1e-12)
    assert nodes["differs"] == []  # 3 nodes x 1 device x 32: the source's 3 processes of 32 clips
    small = batch_layout(load_config("mae_dfer_dfew", ["train.devices=1"]), batchnorm=False)
    assert "global batch 32 (1 x 32) is not the source's 96 (3 x 32)" in small["differs"][0]
    m3 = batch_layout(load_config("m3dfel_dfew"), batchnorm=True)
    assert m3["differs"] == ["BatchNorm statistics over 256 clips per device, not the source's 64"]
    assert (
        batch_layout(load_config("m3dfel_dfew", ["train.devices=4", "train.batch_size=64"]), batchnorm=True)["differs"]
        == []
    )


@pytest.mark.slow
def test_a_dry_run_prints_the_global_batch_and_its_source(synth, tmp_path):
    from audfer.engine.plan import plan

    from conftest import TINY

    cfg = load_config(
        "synthetic_small",
        [f"data.root={synth}", f"out={tmp_path / 'run'}", *TINY, "train.source_batch=[2, 4]"],
    )
    logs: list[str] = []
    result = plan(cfg, log=logs.append)
    assert result["batch"]["global_batch"] == 8 and result["batch"]["source"]["global_batch"] == 8
    assert any("global batch 8 (1 node(s) x 1 device(s) x 8), lr " in line and "; source" in line for line in logs)
    assert any(line.startswith("  WARNING: BatchNorm statistics over 8") or "draw(s)" in line for line in logs) == (
        bool(result["batch"]["differs"])
    )


# --------------------------------------------------------------------------- bounded pos-weights (Eq. 6-8)


def _au_tables(labels, positives_of):
    """Clip labels and video AU labels where AU45 is positive exactly for the clips ``positives_of`` names."""
    from audfer.vocab import AUS

    n = len(labels)
    au = pl.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(n)],
            **{
                a: pl.Series(
                    [(1 if i in positives_of else 0) if a == "AU45" else i % 2 for i in range(n)], dtype=pl.Int8
                )
                for a in AUS
            },
        }
    )
    lab = pl.DataFrame({"clip_id": [f"c{i}" for i in range(n)], "label": pl.Series(labels, dtype=pl.Int8)})
    return au, lab


def test_a_dfew_sized_cell_does_not_jump_when_one_clip_turns_positive():
    from audfer.method.labels import CELL_CAP, pos_weights
    from audfer.vocab import AUS

    # DFEW set 1 train sizes (Neutral 2,135 clips); AU45 positive in 60 clips of the other classes
    sizes = [1957, 1516, 2135, 1740, 1179, 112, 717]
    labels = [c for c, n in enumerate(sizes) for _ in range(n)]
    others = [i for i, y in enumerate(labels) if y != 2][:60]
    neutral = [i for i, y in enumerate(labels) if y == 2]
    j = AUS.index("AU45")
    seen = []
    for p in range(6):
        au, lab = _au_tables(labels, set(others) | set(neutral[:p]))
        pw = pos_weights(au, lab, "distinct")
        c_all, p_all = len(labels), 60 + p
        g = (c_all - p_all) / p_all  # Eq. 6, computed here from the counts
        expected = min((2135 - max(p, 1)) / max(p, 1), CELL_CAP * g)  # the stated rule, p clamped to 1
        assert pw.values[2, j] == pytest.approx(expected, rel=1e-12)
        seen.append(pw.values[2, j])
        capped = [f for f in pw.filled if f.startswith("Neutral/AU45")]
        assert bool(capped) == ((2135 - max(p, 1)) / max(p, 1) > CELL_CAP * g)
        if capped:
            assert f"{p} positive of 2135 clips" in capped[0] and "capped at 5 x the AU's global weight" in capped[0]
    assert seen[0] == pytest.approx(seen[1], rel=0.02)  # p = 0 and p = 1: one rule (only g moves, 60 -> 61 positives)
    ratios = np.array(seen[:-1]) / np.array(seen[1:])
    assert (ratios < 10).all() and (ratios > 0.1).all()
    assert max(seen) < 1000  # 2,134 uncapped


def test_the_cap_leaves_the_authors_own_tables_untouched():
    from audfer.method.labels import CELL_CAP, official_pos_weights

    for ds in ("dfew", "ferv39k"):
        ratio = official_pos_weights(ds, "distinct") / official_pos_weights(ds, "global")
        assert ratio.max() < CELL_CAP  # 4.77 on DFEW (Surprise/AU12), 2.33 on FERV39k


# --------------------------------------------------------------------------- the authors' other K matrices


def test_the_authors_other_matrices_are_named_presets_with_their_sources():
    import re

    from audfer.method.knowledge import AUTHOR_KNOWLEDGE, authors_knowledge, paper_knowledge
    from audfer.vocab import AUS, EXPRESSIONS

    k = paper_knowledge()
    a, a_src = authors_knowledge("authors-a")
    ap, ap_src = authors_knowledge("authors-a-permuted")
    d, d_src = authors_knowledge("authors-d")
    happy, h_src = authors_knowledge("paper-happy-row")
    for m, src in ((a, a_src), (ap, ap_src), (d, d_src), (happy, h_src)):
        assert m.shape == (7, 18) and np.isfinite(m).all()
        assert src and all(re.search(r"\.py @ [0-9a-f]{40}", s) for s in src)
    au = AUS.index
    # A: an older version of the shipped matrix, row by row (AU28 a constant)
    for i in range(7):
        assert np.corrcoef(a[i, :16], k[i, :16])[0, 1] > 0.99
    assert np.unique(a[:, au("AU28")]).size == 1 and a[0, au("AU28")] == pytest.approx(0.2908397350173472)
    # A permuted: four rows moved one place (Former-DFER_AU/main_DFEW.py @ 002d390)
    moved = {"Sad": "Neutral", "Neutral": "Surprise", "Surprise": "Fear", "Fear": "Sad"}
    for e in EXPRESSIONS:
        np.testing.assert_array_equal(ap[EXPRESSIONS.index(e)], a[EXPRESSIONS.index(moved.get(e, e))])
    # D runs against the shipped matrix (the figures)
    assert np.corrcoef(d[0, :16], k[0, :16])[0, 1] == pytest.approx(-0.81, abs=0.01)
    assert np.corrcoef(d[5, :16], k[5, :16])[0, 1] == pytest.approx(-0.71, abs=0.01)
    assert d[0, au("AU12")] == pytest.approx(0.0038, abs=1e-4) and k[0, au("AU12")] == pytest.approx(0.93, abs=0.01)
    assert (d[:, au("AU28")] == 1.74694374224107).all() and (d[:, au("AU45")] == 1.74694374224107).all()
    # the argmax bug: every label gets the Happy row of the shipped matrix
    np.testing.assert_array_equal(happy, np.tile(k[0], (7, 1)))
    assert set(AUTHOR_KNOWLEDGE) == {"authors-a", "authors-a-permuted", "authors-d", "paper-happy-row"}


def test_every_paper_recipe_names_its_sources_matrix_and_the_switch():
    from pathlib import Path

    import audfer
    from audfer.engine.resolve import knowledge_for
    from audfer.method.knowledge import authors_knowledge, paper_knowledge

    expected = {"m3dfel": "authors-d", "former_dfer": "authors-d", "mae_dfer": "paper"}
    folder = Path(audfer.__file__).parent / "configs"
    for model, name in expected.items():
        for ds in ("dfew", "ferv39k", "mafw"):
            recipe = f"{model}_{ds}_paper"
            cfg = load_config(recipe)
            assert cfg.au.knowledge == name, recipe
            text = (folder / f"{recipe}.yaml").read_text()
            assert "au.knowledge=" in text and "docs/reproduce.md" in text, recipe
            want = paper_knowledge() if name == "paper" else authors_knowledge(name)[0]
            np.testing.assert_array_equal(knowledge_for(cfg), want)


# --------------------------------------------------------------------------- recipes name their own dataset's files

_DATASET_OF = {"dfew": "dfew", "ferv39k": "ferv39k", "mafw": "mafw"}


def _named_files(text: str) -> list[tuple[str, str]]:
    """(file, dataset) for every file name in ``text`` that belongs to one dataset (DFEW/FERV39K/MAFW in its name,
    DFEW's clip_224x224_16f folder, MAE-DFER's logs/<dataset>.out and scripts/<dataset>/)."""
    import re

    out = []
    for m in re.finditer(r"[\w./*-]*?(dfew|ferv39k|mafw)[\w./*-]*", text, flags=re.IGNORECASE):
        word = m.group(0)
        if re.search(r"\.(py|out|sh|txt)\b|/", word):
            out.append((word, m.group(1).lower()))
    out += [(m, "dfew") for m in ("clip_224x224_16f",) if m in text]
    return out


def test_train_list_and_each_recipe_comment_name_files_of_the_dataset_it_trains_on():
    from pathlib import Path

    import audfer
    from audfer.config import shipped_configs
    from audfer.config.load import describe_shipped

    listing = {line.split()[0]: line for line in describe_shipped().splitlines()}
    folder = Path(audfer.__file__).parent / "configs"
    checked = 0
    for name in shipped_configs():
        cfg = load_config(name)
        ds = cfg.data.dataset
        if ds not in _DATASET_OF or name not in listing:
            continue
        comment = "\n".join(
            line for line in (folder / f"{name}.yaml").read_text().splitlines() if line.lstrip().startswith("#")
        )
        for where, text in (("train --list", listing[name]), ("comment", comment)):
            foreign = [f for f, d in _named_files(text) if d != ds]
            if foreign:  # only where the source has no loader of this dataset, and says so
                assert f"HAS NO {ds.upper()} LOADER" in text.upper(), (name, where, foreign)
            checked += 1
        assert any(d == ds for _, d in _named_files(listing[name])) or "has no" in listing[name], name
    assert checked >= 36


# --------------------------------------------------------------------------- item 5: crop aspect, mixup pairing


class _Replay:
    """An rng that hands out fixed uniforms (what ``RandomResizedCrop._group_box`` asks for, in its order)."""

    def __init__(self, tries, place):
        self.answers = [tries, place]

    def random(self, shape=None):
        return self.answers.pop(0)


def _official_group_crop(h, w, tries, place):
    """zengqunzhao/Former-DFER ``dataloader/video_transform.py``, ``GroupRandomSizedCrop.__call__``, re-implemented with
    its uniforms given: per try ``random.uniform(0.08, 1.0)``, ``random.uniform(3/4, 4/3)``, the swap ``random.random() <
    0.5``; the first fitting box at ``random.randint(0, W - w)``, ``random.randint(0, H - h)``."""
    import math

    for i in range(10):
        target = (0.08 + (1.0 - 0.08) * tries[0, i]) * h * w
        ar = 3 / 4 + (4 / 3 - 3 / 4) * tries[1, i]
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if tries[2, i] < 0.5:
            cw, ch = ch, cw
        if cw <= w and ch <= h:
            return int(place[0] * (h - ch + 1)), int(place[1] * (w - cw + 1)), ch, cw
    return None


def test_the_group_crop_draws_what_former_dfer_and_m3dfel_draw():
    from audfer.data.transforms import RandomResizedCrop

    crop = RandomResizedCrop(112, aspect="group")
    rng = np.random.default_rng(3)
    swapped = 0
    for _ in range(2000):
        h, w = (256, 256) if rng.random() < 0.5 else (180, 320)
        tries, place = rng.random((3, 10)), rng.random(2)
        official = _official_group_crop(h, w, tries, place)
        if official is None:
            continue
        assert crop.box(h, w, _Replay(tries, place)) == official
        swapped += official[3] < official[2]
    assert 800 < swapped < 1200  # width and height swapped about half the time
    assert (
        load_config("former_dfer_dfew").data.crop_aspect == "group"
        and load_config("m3dfel_dfew").data.crop_aspect == "group"
    )
    assert load_config("mae_dfer_dfew").data.crop_aspect == "log-uniform"


def test_mixup_pairs_each_clip_with_its_mirror_in_the_batch():
    from audfer.engine.module import AUDFERModule

    b = 6
    for mode, over in (("mixup", ["optim.cutmix=0"]), ("cutmix", ["optim.mixup=0"])):
        cfg = load_config("mae_dfer_dfew", ["model.name=mae_dfer_small", "train.devices=1", *over])
        m = AUDFERModule.from_config(cfg, np.full((7, 18), 0.5).tolist(), None, steps_per_epoch=1)
        clips = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 2, 3, 8, 8).clone()
        labels = torch.arange(b)
        au = torch.zeros(b, 18)
        mask = torch.ones(b, 18, dtype=torch.bool)
        torch.manual_seed(0)
        mixed, soft, _, _ = m._mix(clips, labels, au, mask)
        lam = float(soft[0, 0])
        for i in range(b):  # clip i's other class is that of clip b - 1 - i
            assert soft[i, b - 1 - i] == pytest.approx(1 - lam, abs=1e-6)
        if mode == "mixup":
            expected = lam * clips + (1 - lam) * clips.flip(0)
            torch.testing.assert_close(mixed, expected)
        else:
            values = {round(float(v), 4) for v in mixed[0].unique()}
            assert values <= {0.0, float(b - 1)}  # clip 0 takes its box from clip b - 1, nothing else
