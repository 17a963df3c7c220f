"""The built-in synthetic dataset: determinism, DFEW layout, AU-driven rendering, CLI behaviour."""

import hashlib

import numpy as np
import polars as pl
import pytest

from audfer import AUS, EXPRESSIONS
from audfer.au.folder import read_openface_dir
from audfer.cli import main
from audfer.data.datasets import dfew_index, read_frames
from audfer.method.labels import video_au_labels
from audfer.synth.aus import DFEW_CLASS_COUNTS
from audfer.synth.dataset import SynthConfig, _plan, generate
from audfer.synth.renderer import random_identity, render_frame

SMALL = SynthConfig(clips=21, size=48, frames=8, seed=3)


def _digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("syn") / "a", SMALL, workers=1)


@pytest.mark.slow
def test_same_seed_is_byte_identical_whatever_the_workers(small, tmp_path):
    other = generate(tmp_path / "b", SMALL, workers=2)
    assert _digest(small) == _digest(other)
    changed = generate(tmp_path / "c", SynthConfig(clips=21, size=48, frames=8, seed=4), workers=1)
    a, c = _digest(small), _digest(changed)
    assert a.keys() == c.keys() and a != c


def test_written_in_dfew_layout_with_identity_disjoint_folds(small):
    meta = pl.read_csv(small / "synth_meta.csv", schema_overrides={"clip_id": pl.String})
    assert meta.height == 21 and meta.columns[:5] == ["clip_id", "identity", "fold", "true_label", "label"]
    seen = []
    for fold in range(1, 6):
        test = dfew_index(small, fold, "test", frames="clip_48x48")
        train = dfew_index(small, fold, "train", frames="clip_48x48")
        assert len(test) + len(train) == 21
        rows = meta.filter(pl.col("fold") == fold)
        assert sorted(test.table["clip_id"]) == sorted(rows["clip_id"])
        assert dict(zip(test.table["clip_id"], test.table["label"])) == dict(zip(rows["clip_id"], rows["label"]))
        assert set(rows["identity"]).isdisjoint(meta.filter(pl.col("fold") != fold)["identity"])
        seen += test.table["clip_id"].to_list()
    assert sorted(seen) == meta["clip_id"].to_list()
    frames = read_frames(small / "Clip" / "clip_48x48" / "00001")
    assert frames.shape == (8, 48, 48, 3) and frames.dtype == np.uint8


def test_openface_csvs_run_through_the_real_reader_and_agree_with_the_exact_labels(small):
    folder = read_openface_dir(small / "OpenFace", cache=False)
    assert folder.clips == sorted(folder.clips) and len(folder.clips) == 21
    head = (small / "OpenFace" / "00001.csv").read_text().splitlines()[0]
    assert head.startswith("frame, face_id, timestamp, confidence, success, AU01_r")  # the 2.2 release's separators
    au = video_au_labels(folder.frames, folder.clips).sort("clip_id")
    meta = pl.read_csv(small / "synth_meta.csv", schema_overrides={"clip_id": pl.String}).sort("clip_id")
    est, exact = au.select(AUS).to_numpy(), meta.select(AUS).to_numpy()
    valid = ~np.isnan(est).any(axis=1)
    assert valid.sum() >= 19
    assert (est[valid] == exact[valid]).mean() > 0.9  # OpenFace-like artefacts change a few labels, not most
    assert (folder.frames["success"] == 0).sum() > 0  # some failed frames, as in real output


def test_plan_follows_dfew_class_shares_and_the_label_noise():
    plan = _plan(SynthConfig(clips=2000, seed=0))
    counts = np.bincount(plan["true_label"].to_numpy(), minlength=7)
    expected = np.array(DFEW_CLASS_COUNTS) / sum(DFEW_CLASS_COUNTS) * 2000
    assert np.abs(counts - expected).max() <= 1
    assert EXPRESSIONS[int(np.argmin(counts))] == "Disgust"
    wrong = (plan["label"] != plan["true_label"]).mean()
    assert 0.08 < wrong < 0.12
    per_fold = plan.group_by("fold").len().sort("fold")["len"].to_numpy()
    assert per_fold.min() > 350  # identities spread evenly over the 5 folds


def _changed_rows(person, au, size=112):
    none = render_frame(person, np.zeros(18), size).astype(int)
    aus = np.zeros(18)
    aus[AUS.index(au)] = 5
    diff = np.abs(render_frame(person, aus, size).astype(int) - none).sum(axis=2)
    rows = np.nonzero(diff > 30)[0]
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_au_moves_its_own_part_of_the_face(seed):
    person = random_identity(np.random.default_rng(seed))
    size = 112
    unit = person.face_w * size
    eye_row = size * 0.56 + person.eye_y * unit
    mouth_row = size * 0.56 + person.mouth_y * unit
    for au in AUS:
        rows = _changed_rows(person, au, size)
        assert rows.size > 10, f"{au} does not change the face"
        centre = rows.mean()
        if au in ("AU01", "AU02", "AU04"):
            assert centre < eye_row, au  # brows and forehead
        elif au in ("AU05", "AU07", "AU45"):
            assert abs(centre - eye_row) < 0.12 * size, au
        elif au in ("AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU28"):
            assert centre > eye_row + 0.15 * size and abs(centre - mouth_row) < 0.2 * size, au


def test_cli_refuses_a_non_empty_folder_and_writes_a_preview(tmp_path, capsys):
    out = tmp_path / "syn"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["synth", "--out", str(out), "--clips", "7", "--size", "40", "--frames", "4"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert main(["synth", "--out", str(out), "--clips", "2", "--size", "40"]) == 2  # fewer clips than folds
    capsys.readouterr()
    # --overwrite deletes only an earlier synth output: the user's file stays
    assert main(["synth", "--out", str(out), "--clips", "7", "--size", "40", "--frames", "4", "--overwrite"]) == 2
    assert "has no synth.json of one" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    assert main(["synth", "--out", str(out), "--clips", "7", "--size", "40", "--frames", "4"]) == 0
    assert (
        main(["synth", "--out", str(out), "--clips", "7", "--size", "40", "--frames", "4", "--overwrite", "--preview"])
        == 0
    )
    import cv2

    grid = cv2.imread(str(out / "preview.png"))
    assert grid.shape[0] == 7 * 40 and grid.shape[1] == 90 + 3 * 4 * 40
    assert not list(tmp_path.glob(".syn.*"))  # no partial folder left behind
