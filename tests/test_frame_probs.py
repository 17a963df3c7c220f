"""``audfer frame-probs`` (§3.1 Eq. 3 pseudo-labels): each frame's window, the stride fill, OpenFace's frame numbering
(a clip whose frames encode their own number, joined on ``frame``), resuming, provenance and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
import torch

from audfer import AudferError
from audfer.cli import main
from audfer.config import load_config
from audfer.engine.frame_probs import computed_frames, frame_probabilities, frame_windows
from audfer.method.knowledge import paper_knowledge

from conftest import TINY


def test_each_frame_has_its_window_centred_and_clamped_at_the_borders():
    assert frame_windows(8, 4) == [(0, 4), (0, 4), (0, 4), (1, 5), (2, 6), (3, 7), (4, 8), (4, 8)]
    assert frame_windows(3, 4) == [(0, 3)] * 3  # a short clip is one window
    assert frame_windows(5, 1) == [(t, t + 1) for t in range(5)]
    for n, w in ((17, 5), (16, 16), (40, 7)):
        for t, (s, e) in enumerate(frame_windows(n, w)):
            assert e - s == min(w, n) and 0 <= s and e <= n and s <= t < e
            if w // 2 <= t < n - (w - w // 2) + 1:
                assert s == t - w // 2  # centred wherever the clip allows it


def test_strided_frames_copy_the_nearest_computed_frame():
    computed, source = computed_frames(8, 3)
    assert computed == [0, 3, 6, 7]
    assert source == [0, 0, 3, 3, 3, 6, 6, 7]  # frame 1 is nearer 0, 2 nearer 3, 5 nearer 6
    computed, source = computed_frames(7, 2)
    assert computed == [0, 2, 4, 6] and source == [0, 0, 2, 2, 4, 4, 6]  # ties: the earlier frame
    for n, s in ((1, 4), (9, 1), (23, 5)):
        computed, source = computed_frames(n, s)
        for t, src in enumerate(source):  # brute force: the nearest computed frame, earlier on a tie
            best = min(computed, key=lambda c: (abs(c - t), c))
            assert src == best
    with pytest.raises(AudferError, match="--stride"):
        computed_frames(5, 0)


def _checkpoint(tmp_path: Path, cfg) -> Path:
    """A checkpoint in the format ``audfer train`` writes, of an untrained model (its outputs differ per input)."""
    from audfer.engine.module import AUDFERModule

    torch.manual_seed(0)
    module = AUDFERModule.from_config(cfg, paper_knowledge().tolist(), None, 1)
    path = tmp_path / "model.ckpt"
    hp = {"cfg": cfg.to_dict(), "knowledge": paper_knowledge().tolist(), "pos_weight": None, "steps_per_epoch": 1}
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hp}, path)
    return path


def _numbered_clips(root: Path) -> Path:
    """A frame folder ``1.jpg .. 12.jpg`` (text order 1, 10, 11, 12, 2, ...) and a 12-frame video, each frame's
    brightness encoding its own temporal number; a list file naming both."""
    folder = root / "numbered"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
    for t in range(1, 13):
        cv2.imwrite(str(folder / f"{t}.png"), (pattern + 15 * t).astype(np.uint8))
    video = root / "movie.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for t in range(1, 13):
        writer.write((pattern + 15 * t).astype(np.uint8))
    writer.release()
    (root / "test.txt").write_text("numbered 12 0\nmovie 12 1\n")
    return root / "test.txt"


def _independent(model, spec, frames: list[np.ndarray]) -> np.ndarray:
    """The model's softmax on a clip of these RGB frames, sampled as the uniform test sampler samples ``len(frames)``
    frames, prepared by the test transform."""
    from audfer.data.sampling import uniform_indices
    from audfer.data.transforms import build_transform

    idx = uniform_indices(len(frames), spec.frames, None)
    clip = torch.from_numpy(np.stack([frames[i] for i in idx])).permute(0, 3, 1, 2)
    with torch.no_grad():
        return model(build_transform(spec, False)(clip, None)[None]).logits.softmax(1)[0].numpy()


def test_frame_numbers_join_openface_and_each_row_is_that_frames_own_probability(tmp_path):
    lst = _numbered_clips(tmp_path / "data")
    cfg = load_config(
        "synthetic_small",
        [
            *TINY,
            "data.dataset=list",
            f"data.root={tmp_path / 'data'}",
            f"data.train_list={lst}",
            f"data.test_list={lst}",
            "data.class_order=dfew7",
            "data.cache=null",
            "au.strategy=none",
        ],
    )
    ck = _checkpoint(tmp_path, cfg)
    out = tmp_path / "probs.csv"
    frame_probabilities(ck, out=out, split="test", window=1, log=lambda m: None)
    probs = pl.read_csv(out, schema_overrides={"clip_id": pl.String})
    assert probs.columns == ["clip_id", "frame", *[f"p{i}" for i in range(7)]] and probs.height == 24
    # OpenFace's table for the folder: frame k is the k-th file in text order; it reads each frame's own number
    names = sorted((tmp_path / "data" / "numbered").iterdir(), key=lambda p: p.name)
    openface = pl.DataFrame({"clip_id": "numbered", "frame": range(1, 13), "number": [int(p.stem) for p in names]})
    assert openface["number"].to_list()[:5] == [1, 10, 11, 12, 2]
    joined = openface.join(probs, on=["clip_id", "frame"], how="inner")
    assert joined.height == 12
    from audfer.weights.package import read_stored_run

    model = read_stored_run(ck).build_model()
    for row in joined.iter_rows(named=True):
        image = cv2.cvtColor(cv2.imread(str(names[row["frame"] - 1])), cv2.COLOR_BGR2RGB)
        assert int(names[row["frame"] - 1].stem) == row["number"]
        want = _independent(model, model.input_spec, [image])
        np.testing.assert_allclose([row[f"p{i}"] for i in range(7)], want, atol=1e-5)
    # the frames' probabilities differ (the check above would be empty otherwise)
    assert probs.filter(pl.col("clip_id") == "numbered")["p0"].n_unique() == 12
    # a video: frame k is the k-th decoded frame
    cap = cv2.VideoCapture(str(tmp_path / "data" / "movie.avi"))
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    video = probs.filter(pl.col("clip_id") == "movie").sort("frame")
    assert video["frame"].to_list() == list(range(1, 13))
    for k in (1, 6, 12):
        got = video.filter(pl.col("frame") == k).select(f"p{i}" for i in range(7)).to_numpy()[0]
        np.testing.assert_allclose(got, _independent(model, model.input_spec, [decoded[k - 1]]), atol=1e-5)


def test_windows_stride_resume_and_provenance(synth, tmp_path):
    cfg = load_config("synthetic_small", [f"data.root={synth}", *TINY, "data.cache=null", "data.decode=full"])
    ck = _checkpoint(tmp_path, cfg)
    out = tmp_path / "p.csv"
    whole = frame_probabilities(ck, out=tmp_path / "whole.csv", split="test", stride=3, log=lambda m: None)
    table = pl.read_csv(tmp_path / "whole.csv", schema_overrides={"clip_id": pl.String})
    from audfer.engine.resolve import split_index
    from audfer.weights.package import read_stored_run

    test = split_index(cfg, "test").table
    assert whole["clips"] == test.height and table.height == 8 * test.height
    # one clip by hand: window of 4 centred on the computed frame, the others copied from the nearest computed frame
    model = read_stored_run(ck).build_model()
    cid, path = test["clip_id"][0], Path(test["path"][0])
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(path.iterdir())]
    rows = table.filter(pl.col("clip_id") == str(cid)).sort("frame").select(f"p{i}" for i in range(7)).to_numpy()
    starts = {0: 0, 3: 1, 6: 4, 7: 4}  # frames 0, 3, 6 and the last; windows [t - 2, t + 2) clamped into [0, 8)
    source = [0, 0, 3, 3, 3, 6, 6, 7]
    for t in range(8):
        s = starts[source[t]]
        np.testing.assert_allclose(rows[t], _independent(model, model.input_spec, frames[s : s + 4]), atol=1e-5)
    # interrupted after 3 clips: nothing final yet; the next call computes only the rest, and the result is the same
    logs: list[str] = []
    first = frame_probabilities(ck, out=out, split="test", stride=3, max_clips=3, chunk_clips=2, log=logs.append)
    assert first["remaining"] == test.height - 3 and not out.exists()
    assert len(list((tmp_path / "p.csv.parts").glob("chunk_*.csv"))) == 2
    with pytest.raises(AudferError, match="other settings \\(stride\\)"):
        frame_probabilities(ck, out=out, split="test", stride=2, log=lambda m: None)
    second = frame_probabilities(ck, out=out, split="test", stride=3, log=logs.append)
    assert second["clips_this_call"] == test.height - 3 and any("resuming, 3 of" in m for m in logs)
    assert pl.read_csv(out, schema_overrides={"clip_id": pl.String}).equals(table)
    assert not (tmp_path / "p.csv.parts").exists()
    side = json.loads((tmp_path / "p.csv.provenance.json").read_text())
    train_ids = set(map(str, split_index(cfg, "train").table["clip_id"].to_list()))
    assert set(side["clip_ids"]) == train_ids and side["frame_probs"]["trained_on_known"] is True
    assert side["source"] == str(ck) and side["frame_probs"]["stride"] == 3


def test_the_cli_writes_the_table_and_refuses_bad_input(synth, tmp_path, capsys):
    cfg = load_config("synthetic_small", [f"data.root={synth}", *TINY, "data.cache=null"])
    ck = _checkpoint(tmp_path, cfg)
    out = tmp_path / "cli.csv"
    assert main(["frame-probs", str(ck), "data.fold=2", "--split", "test", "--stride", "8", "--out", str(out)]) == 0
    table = pl.read_csv(out)
    assert table.height % 8 == 0 and np.allclose(table.select(f"p{i}" for i in range(7)).sum_horizontal(), 1, atol=1e-4)
    assert json.loads((tmp_path / "cli.csv.provenance.json").read_text())["fold"] == 2
    assert main(["frame-probs", str(tmp_path / "missing.ckpt"), "--out", str(out)]) == 2
    assert "missing.ckpt" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["frame-probs", str(ck), "--device", "cuda", "--out", str(tmp_path / "x.csv")]) == 2
        assert "no CUDA device" in capsys.readouterr().err
