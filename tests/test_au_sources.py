"""AU labels and knowledge from py-feat, LibreFace and generic tables beside OpenFace: every source read into
the canonical frames table, AUs a tool lacks kept unknown (never absent) through Eq. 4, the pos-weights,
the AU loss, the AU metrics and K."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F

from audfer import AudferError
from audfer.au.folder import read_au_dir
from audfer.au.sources import (
    MAPPINGS,
    AUAvailability,
    detect_source,
    mapping_markdown,
    read_au_file,
    read_mapping_file,
)
from audfer.cli import main
from audfer.method.knowledge import combine_knowledge, extract_knowledge, interpolate_zeros
from audfer.method.labels import pos_weights, video_au_labels
from audfer.method.losses import AULoss
from audfer.synth.openface_writer import write_openface_csv
from audfer.vocab import AUS

from conftest import make_frames, tiny_config

REPO = Path(__file__).resolve().parents[1]
PYFEAT = "pyfeat/pyfeat_2.1.5_detector_001.csv"
PYFEAT_AUS = [
    "AU01",
    "AU02",
    "AU04",
    "AU05",
    "AU06",
    "AU07",
    "AU09",
    "AU10",
    "AU11",
    "AU12",
    "AU14",
    "AU15",
    "AU17",
    "AU20",
    "AU23",
    "AU24",
    "AU25",
    "AU26",
    "AU28",
    "AU43",
]
LF_DETECT = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
LF_INTENSITY = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]


def _dicts(path):
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------------------------- writers
def write_pyfeat(path: Path, probs: np.ndarray, *, frames=None, score=None, boxes=None, bom=False) -> Path:
    """A py-feat 2.x Detector CSV (the real file's column layout): probs (n, 20) in PYFEAT_AUS order."""
    n = len(probs)
    frames = np.arange(n) if frames is None else np.asarray(frames)
    header = ["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore"]
    header += [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)] + ["Pitch", "Roll", "Yaw"] + PYFEAT_AUS
    header += ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral", "input", "frame"]
    lines = [",".join(header)]
    for i in range(n):
        w = 100.0 if boxes is None else boxes[i]
        row = (
            ["10", "20", f"{w}", f"{w}", f"{0.99 if score is None else score[i]}"]
            + ["1.5"] * 136
            + ["0.1", "0.2", "0.3"]
        )
        row += ["" if np.isnan(v) else f"{v:.6f}" for v in probs[i]] + ["0.14"] * 7 + ["clip.mp4", str(int(frames[i]))]
        lines.append(",".join(row))
    text = "\n".join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def write_libreface(path: Path, det: np.ndarray, inten: np.ndarray, *, frames=None) -> Path:
    """LibreFace's video CSV layout: frame_idx, frame_time_in_ms, head pose, mediapipe landmarks, au_<n> (0/1),
    au_<n>_intensity (0-5), facial_expression (libreface/__init__.py, AU_Recognition/inference.py)."""
    n = len(det)
    frames = np.arange(n) if frames is None else np.asarray(frames)
    header = ["frame_idx", "frame_time_in_ms", "pitch", "yaw", "roll"]
    header += [f"lm_mp_{i}_{a}" for i in range(3) for a in "xyz"]
    header += [f"au_{k}" for k in LF_DETECT] + [f"au_{k}_intensity" for k in LF_INTENSITY] + ["facial_expression"]
    lines = [",".join(header)]
    for i in range(n):
        row = [str(int(frames[i])), f"{33.333 * frames[i]:.3f}", "1.0", "2.0", "3.0"] + ["0.5"] * 9
        row += ["" if np.isnan(v) else str(int(v)) for v in det[i]] + [
            "" if np.isnan(v) else f"{v:.3f}" for v in inten[i]
        ]
        lines.append(",".join(row + ["Happiness"]))
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------- py-feat
def test_real_pyfeat_file_reads_into_the_canonical_table(fixtures):
    path = fixtures / PYFEAT
    rows = _dicts(path)
    df, source = read_au_file(path)  # auto: recognised from the header
    assert source == "pyfeat" and detect_source(path) == "pyfeat"
    assert df.height == len(rows) == 40
    assert df["frame"].to_list() == [int(r["frame"]) + 1 for r in rows]  # 0-based -> OpenFace's 1-based
    np.testing.assert_allclose(df["confidence"].to_numpy(), [float(r["FaceScore"]) for r in rows])
    assert df["success"].to_list() == [1] * 40
    for au in MAPPINGS["pyfeat"].availability().presence:
        p = np.array([float(r[au]) for r in rows])
        assert df[f"{au}_c"].to_list() == (p >= 0.5).astype(int).tolist(), au
        if au != "AU28":
            np.testing.assert_allclose(df[f"{au}_r"].to_numpy(), 5 * p, rtol=1e-6)
    # AU45 is not measured by py-feat: unknown (null), not absent (0)
    assert df["AU45_c"].null_count() == 40 and df["AU45_r"].null_count() == 40
    assert df["AU28_c"].null_count() == 0  # py-feat has AU28 presence
    avail = MAPPINGS["pyfeat"].availability()
    assert avail.missing_presence == ("AU45",) and set(avail.missing_intensity) == {"AU28", "AU45"}


def test_pyfeat_eq4_leaves_au45_unknown_and_votes_the_rest(fixtures, tmp_path):
    folder = tmp_path / "pyfeat"
    folder.mkdir()
    shutil.copy(fixtures / PYFEAT, folder / "00001.csv")
    rows = _dicts(fixtures / PYFEAT)
    read = read_au_dir(folder)  # auto
    assert read.sources == {"00001": "pyfeat"}
    labels = video_au_labels(read.frames, read.clips)
    for au in AUS:
        if au == "AU45":
            assert labels[au][0] is None
        else:
            votes = [float(r[au]) >= 0.5 for r in rows]
            assert labels[au][0] == int(2 * sum(votes) >= len(votes)), au


def test_pyfeat_several_faces_per_frame_keep_the_largest_and_failed_frames_are_unknown(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, (5, 20))
    probs[3] = np.nan  # no face found in this frame
    # frame 1 has two faces: the small one (first row) must lose against the big one
    path = write_pyfeat(tmp_path / "a.csv", probs, frames=[0, 1, 1, 2, 3], boxes=[100, 20, 200, 100, 100])
    df, _ = read_au_file(path, "pyfeat")
    assert df["frame"].to_list() == [1, 2, 3, 4]
    np.testing.assert_allclose(df.filter(pl.col("frame") == 2)["AU01_r"][0], 5 * probs[2, 0], rtol=1e-5)
    assert df.filter(pl.col("frame") == 4)["success"][0] == 1
    failed = df.filter(pl.col("frame") == 3)  # the NaN row: a failed frame, values unknown
    assert failed["success"][0] == 0 and failed["AU01_c"][0] is None and failed["AU01_r"][0] is None


def test_pyfeat_bom_is_read_and_bad_values_name_file_row_and_column(tmp_path):
    probs = np.full((3, 20), 0.7)
    df, source = read_au_file(write_pyfeat(tmp_path / "bom.csv", probs, bom=True))
    assert source == "pyfeat" and df["frame"].to_list() == [1, 2, 3]
    bad = probs.copy()
    bad[1, 2] = 1.3
    with pytest.raises(AudferError, match=r"bad\.csv: row 3, column AU04: 1\.3; expected a probability in \[0, 1\]"):
        read_au_file(write_pyfeat(tmp_path / "bad.csv", bad))
    part = probs.copy()
    part[2, 5] = np.nan
    with pytest.raises(
        AudferError, match=r"part\.csv: row 4, column AU07: empty or NaN while the row's other AU cells"
    ):
        read_au_file(write_pyfeat(tmp_path / "part.csv", part))
    text = (tmp_path / "bom.csv").read_text(encoding="utf-8-sig").replace("0.700000", "high", 1)
    (tmp_path / "text.csv").write_text(text)
    with pytest.raises(AudferError, match=r"text\.csv: row 2, column AU01: 'high' is not a number"):
        read_au_file(tmp_path / "text.csv")


# ----------------------------------------------------------------------------------------------- LibreFace
def test_libreface_columns_map_as_documented(tmp_path):
    rng = np.random.default_rng(1)
    n = 6
    det = rng.integers(0, 2, (n, 12)).astype(float)
    inten = np.round(rng.uniform(0, 5, (n, 12)), 3)
    det[4], inten[4] = np.nan, np.nan  # mediapipe found no face
    df, source = read_au_file(write_libreface(tmp_path / "lf.csv", det, inten))
    assert source == "libreface"
    assert df["frame"].to_list() == list(range(1, n + 1))
    np.testing.assert_allclose(df["timestamp"].to_numpy(), 0.033333 * np.arange(n), atol=1e-6)
    ok = np.arange(n) != 4
    assert df["success"].to_list() == ok.astype(int).tolist()
    for j, k in enumerate(LF_DETECT):
        if k == 24:
            continue  # not an OpenFace AU: not read
        assert df[f"AU{k:02d}_c"].to_list()[:4] == det[:4, j].astype(int).tolist()
    for j, k in enumerate(LF_INTENSITY):
        np.testing.assert_allclose(df[f"AU{k:02d}_r"].to_numpy()[ok], inten[ok, j], rtol=1e-6)
        if k not in LF_DETECT:  # presence derived from intensity >= 2 (DISFA's occurrence convention)
            assert df[f"AU{k:02d}_c"].to_numpy()[ok].tolist() == (inten[ok, j] >= 2).astype(int).tolist()
    for au in ("AU07", "AU10", "AU14", "AU23"):  # detected, no intensity model
        assert df[f"AU{au[2:]}_r"].null_count() == n and df[f"{au}_c"].null_count() == 1
    for au in ("AU28", "AU45"):
        assert df[f"{au}_c"].null_count() == n
    assert df.filter(pl.col("success") == 0)["AU01_c"][0] is None


def test_libreface_duplicate_frame_is_an_error(tmp_path):
    det, inten = np.ones((3, 12)), np.ones((3, 12))
    with pytest.raises(AudferError, match=r"dup\.csv: row 4: frame 1 appears twice"):
        read_au_file(write_libreface(tmp_path / "dup.csv", det, inten, frames=[0, 1, 1]))


def test_min_confidence_with_a_source_without_confidence_is_an_error(tmp_path):
    folder = tmp_path / "lf"
    folder.mkdir()
    write_libreface(folder / "c1.csv", np.ones((3, 12)), np.ones((3, 12)))
    frames = read_au_dir(folder).frames
    with pytest.raises(AudferError, match="no face confidence"):
        video_au_labels(frames, min_confidence=0.5)


# ----------------------------------------------------------------------------------------------- generic table
def _mapping(tmp_path, body: str) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(body)
    return path


MAPPING = """
frame: f
frame_base: 0
confidence: conf
aus:
  - {column: brow, au: AU01, kind: intensity, scale: 1}
  - {column: smile, au: AU12, kind: probability}
  - {column: blink, au: AU45, kind: presence}
  - {column: jaw, au: AU26, kind: intensity, threshold: 1.5}
"""


def test_generic_table_with_a_mapping_file(tmp_path):
    mapping = read_mapping_file(_mapping(tmp_path, MAPPING))
    (tmp_path / "t.csv").write_text("f,conf,brow,smile,blink,jaw,extra\n0,0.9,0.5,0.7,1,1.2,x\n1,0.8,0.1,0.2,0,1.6,y\n")
    df, source = read_au_file(tmp_path / "t.csv", mapping=mapping)  # auto + mapping -> table
    assert source == "table" and df["frame"].to_list() == [1, 2]
    np.testing.assert_allclose(df["AU01_r"].to_numpy(), [2.5, 0.5])  # 0-1 intensity -> 0-5
    assert df["AU01_c"].to_list() == [1, 0]  # 2.5 >= 2, 0.5 < 2
    np.testing.assert_allclose(df["AU12_r"].to_numpy(), [3.5, 1.0])  # probability x 5
    assert df["AU12_c"].to_list() == [1, 0] and df["AU45_c"].to_list() == [1, 0]
    assert df["AU45_r"].null_count() == 2  # presence only: no intensity
    assert df["AU26_c"].to_list() == [0, 1]  # own threshold 1.5
    assert df["AU04_c"].null_count() == 2 and df["AU04_r"].null_count() == 2
    np.testing.assert_allclose(df["confidence"].to_numpy(), [0.9, 0.8])
    avail = mapping.availability()
    assert avail.presence == ("AU01", "AU12", "AU26", "AU45") and avail.intensity == ("AU01", "AU12", "AU26")


@pytest.mark.parametrize(
    "body, message",
    [
        ("aus:\n  - {column: a, au: AU11, kind: presence}\n", "AU11' is not one of OpenFace's 18 AUs"),
        (
            "aus:\n  - {column: a, au: AU01, kind: score}\n",
            "kind 'score'; expected one of presence, probability, intensity",
        ),
        ("aus:\n  - {column: a, au: AU01, kind: intensity, scale: 0}\n", "scale 0; expected a positive number"),
        ("frames: f\naus:\n  - {column: a, au: AU01, kind: presence}\n", "unknown key\\(s\\) frames"),
        ("aus: []\n", "non-empty 'aus' list"),
        (
            "aus:\n  - {column: a, au: AU01, kind: presence}\n  - {column: b, au: AU01, kind: presence}\n",
            "AU01 is mapped twice as presence",
        ),
    ],
)
def test_bad_mapping_files_are_errors(tmp_path, body, message):
    with pytest.raises(AudferError, match=message):
        read_mapping_file(_mapping(tmp_path, body))


def test_table_missing_column_and_unknown_headers_are_errors(tmp_path):
    mapping = read_mapping_file(_mapping(tmp_path, MAPPING))
    (tmp_path / "t.csv").write_text("f,conf,brow,smile\n0,0.9,0.5,0.7\n")
    with pytest.raises(AudferError, match=r"t\.csv: missing AU column\(s\) blink, jaw"):
        read_au_file(tmp_path / "t.csv", mapping=mapping)
    with pytest.raises(
        AudferError,
        match=r"unrecognised AU file header \(f, conf, brow, smile\); expected OpenFace.*"
        r"py-feat.*LibreFace.*--source table with --mapping",
    ):
        read_au_file(tmp_path / "t.csv")
    with pytest.raises(AudferError, match="--source table needs --mapping"):
        read_au_file(tmp_path / "t.csv", "table")


# ----------------------------------------------------------------------------------------------- folders
def test_a_mixed_folder_is_an_error_unless_allowed(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_openface_csv(folder / "00001.csv", make_frames(6, 1, success=[1] * 6))
    write_openface_csv(folder / "00002.csv", make_frames(6, 2, success=[1] * 6))
    write_pyfeat(folder / "00003.csv", np.full((4, 20), 0.8))
    with pytest.raises(
        AudferError,
        match=r"AU files from 2 different tools \(openface: 2 file\(s\), e\.g\. 00001, 00002; "
        r"pyfeat: 1 file\(s\), e\.g\. 00003\)",
    ):
        read_au_dir(folder)
    read = read_au_dir(folder, allow_mixed=True)
    assert read.sources == {"00001": "openface", "00002": "openface", "00003": "pyfeat"}
    assert read.availability.missing_presence == ("AU45",)  # an AU counts as given only if every tool gives it
    labels = video_au_labels(read.frames, read.clips)
    assert labels.filter(pl.col("clip_id") == "00003")["AU45"][0] is None
    assert labels.filter(pl.col("clip_id") != "00003")["AU45"].null_count() == 0
    again = read_au_dir(folder, allow_mixed=True)  # from the cache: same sources, same table
    assert again.from_cache == 3 and again.sources == read.sources and again.frames.equals(read.frames)
    with pytest.raises(AudferError, match="2 different tools"):
        read_au_dir(folder, cache=True)  # the cache does not hide the mix


# ----------------------------------------------------------------------------------------------- Eq. 6-8
def test_pos_weights_count_each_au_over_the_clips_that_know_it():
    # 4 Happy clips: two from OpenFace (AU45 known), two from py-feat (AU45 unknown)
    au = pl.DataFrame(
        {"clip_id": ["a", "b", "c", "d", "e"], **{x: pl.Series([1, 0, 1, 0, 1], dtype=pl.Int8) for x in AUS}}
    )
    au = au.with_columns(
        pl.Series("AU45", [1, 0, None, None, None], dtype=pl.Int8), pl.Series("AU28", [None] * 5, dtype=pl.Int8)
    )
    clips = pl.DataFrame({"clip_id": ["a", "b", "c", "d", "e"], "label": [0, 0, 0, 0, 1]})
    pw = pos_weights(au, clips, "distinct")
    i45, i28, i01 = AUS.index("AU45"), AUS.index("AU28"), AUS.index("AU01")
    assert pw.values[0, i01] == pytest.approx((4 - 2) / 2)  # c = 4, p = 2
    assert pw.values[0, i45] == pytest.approx((2 - 1) / 1)  # c = 2 (a, b), p = 1: unknowns are not negatives
    assert pw.values[0, i28] == 1.0 and pw.unknown_aus == ["AU28"]  # nobody knows AU28
    g = pos_weights(au, clips, "global")
    assert g.values[0, i45] == pytest.approx(1.0)  # c = 2, p = 1
    assert g.values[0, i01] == pytest.approx((5 - 3) / 3)


# ----------------------------------------------------------------------------------------------- the AU loss
def test_element_mask_matches_the_per_sample_reference_in_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    b = 9
    logits = torch.randn(b, 18, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 7, (b,), generator=g)
    targets = torch.randint(0, 2, (b, 18), generator=g).double()
    mask = torch.rand(b, 18, generator=g) > 0.3
    mask[:, AUS.index("AU45")] = False  # a py-feat-labelled batch: AU45 unknown everywhere
    mask[4] = False  # one clip without any AU label
    k = torch.rand(7, 18, generator=g, dtype=torch.float64)
    pw = torch.rand(7, 18, generator=g, dtype=torch.float64) * 3
    x = logits.clone().requires_grad_(True)
    ours = AULoss(k, pw)(x, labels, targets, mask)
    ours.backward()
    # reference: one BCE-with-logits call per known element, weighted by 5 * K[y, a]
    y = logits.clone().requires_grad_(True)
    terms = [
        F.binary_cross_entropy_with_logits(
            y[i, a], targets[i, a], weight=5 * k[labels[i], a], pos_weight=pw[labels[i], a]
        )
        for i in range(b)
        for a in range(18)
        if mask[i, a]
    ]
    ref = torch.stack(terms).mean()
    ref.backward()
    torch.testing.assert_close(ours, ref.to(ours.dtype))
    torch.testing.assert_close(x.grad, y.grad)
    assert (x.grad[:, AUS.index("AU45")] == 0).all()  # never learns "AU45 absent"
    # sum_aus: summed over the known AUs, averaged over clips with any known AU
    s = AULoss(k, pw, reduction="sum_aus")(logits, labels, targets, mask)
    rows = [i for i in range(b) if mask[i].any()]
    torch.testing.assert_close(s, torch.stack(terms).sum() / len(rows))


def test_nan_targets_are_unknown_elements():
    logits = torch.zeros(2, 18)
    targets = torch.ones(2, 18)
    targets[0, 3] = float("nan")
    full = AULoss(torch.ones(7, 18))(logits, torch.tensor([0, 1]), targets)
    assert torch.isfinite(full)
    torch.testing.assert_close(full, torch.tensor(5 * math.log(2)))


# ----------------------------------------------------------------------------------------------- §3.1
def _pyfeat_like_frames(seed: int) -> pl.DataFrame:
    frames = pl.concat(
        [make_frames(30, seed + c, success=[1] * 30).with_columns(pl.lit(f"c{c}").alias("clip_id")) for c in range(14)]
    )
    return frames.with_columns(
        pl.lit(None, dtype=pl.Float32).alias("AU45_r"), pl.lit(None, dtype=pl.Int8).alias("AU45_c")
    )


def test_k_marks_columns_no_frame_measured_and_fills_them_like_au28():
    frames = _pyfeat_like_frames(0)
    labels = pl.DataFrame({"clip_id": [f"c{c}" for c in range(14)], "label": [c % 7 for c in range(14)]})
    res = extract_knowledge(frames, labels)
    assert res.unmeasured == ["AU28", "AU45"]
    measured = [AUS.index(a) for a in AUS if a not in ("AU28", "AU45")]
    # independent: medians per class of the 16 measured AUs, sigmoid around their mid-range
    med = np.array(
        [
            [frames.join(labels, on="clip_id").filter(pl.col("label") == e)[f"{AUS[j]}_r"].median() for j in measured]
            for e in range(7)
        ]
    )
    k16 = 1 / (1 + np.exp(-(med - (med.max() + med.min()) / 2)))
    np.testing.assert_allclose(res.matrix[:, measured], k16, rtol=1e-6)
    np.testing.assert_allclose(res.matrix[:, AUS.index("AU45")], k16.mean())
    np.testing.assert_allclose(res.matrix[:, AUS.index("AU28")], k16.mean())
    inter = interpolate_zeros(frames)
    assert inter["AU45_r"].null_count() == inter.height  # unknown stays unknown, not 0


def test_combine_averages_each_au_over_the_sources_that_measured_it():
    rng = np.random.default_rng(3)
    k1, k2, k3 = (rng.uniform(0.05, 0.95, (7, 18)) for _ in range(3))
    all_m = np.ones(18, bool)
    no45 = all_m.copy()
    no45[AUS.index("AU45")] = False
    # every column measured: exactly the paper's sigmoid(sum K - S)
    np.testing.assert_allclose(
        combine_knowledge([k1, k2, k3], 2.5, [all_m, all_m, None]), 1 / (1 + np.exp(-(k1 + k2 + k3 - 2.5)))
    )
    c = combine_knowledge([k1, k2, k3], 2.5, [all_m, no45, no45])
    j = AUS.index("AU45")
    np.testing.assert_allclose(c[:, j], 1 / (1 + np.exp(-(k1[:, j] - 2.5 / 3))))  # one source, shift S * 1/3
    np.testing.assert_allclose(c[:, 0], 1 / (1 + np.exp(-(k1[:, 0] + k2[:, 0] + k3[:, 0] - 2.5))))
    # measured by none: sigmoid of the mean of the other pre-sigmoid entries (the paper's AU28 rule)
    c = combine_knowledge([k1, k2], "auto", [no45, no45])
    others = np.delete(k1 + k2 - 1.0, j, axis=1)
    np.testing.assert_allclose(c[:, j], 1 / (1 + np.exp(-others.mean())))


# ----------------------------------------------------------------------------------------------- docs
def test_docs_carry_the_mapping_table_the_code_uses():
    doc = (REPO / "docs" / "au-sources.md").read_text()
    assert mapping_markdown() in doc


def test_availability_combine_keeps_only_what_every_source_gives():
    a = MAPPINGS["openface"].availability()
    b = MAPPINGS["libreface"].availability()
    both = AUAvailability.combine([a, b])
    assert both.sources == ("libreface", "openface") and both.presence == b.presence


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_au_labels_and_knowledge_from_pyfeat_with_provenance(fixtures, tmp_path):
    folder = tmp_path / "pf"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for c in range(14):
        write_pyfeat(folder / f"{c:05d}.csv", rng.uniform(0, 1, (8, 20)))
    shutil.copy(fixtures / PYFEAT, folder / "00014.csv")
    (tmp_path / "labels.csv").write_text("clip_id,label\n" + "".join(f"{c:05d},{c % 7}\n" for c in range(15)))
    out = tmp_path / "au.csv"
    assert main(["au-labels", str(folder), "--source", "pyfeat", "--out", str(out)]) == 0
    table = pl.read_csv(out, schema_overrides={"clip_id": pl.String})
    assert table["AU45"].null_count() == 15 and table["AU01"].null_count() == 0
    side = json.loads((tmp_path / "au.csv.provenance.json").read_text())
    assert side["au_source"]["sources"] == ["pyfeat"] and side["au_source"]["masked_aus"] == ["AU45"]
    assert side["known_labels_per_au"]["AU45"] == 0
    pw = tmp_path / "pw.csv"
    assert (
        main(
            [
                "pos-weights",
                "--au-labels",
                str(out),
                "--labels",
                str(tmp_path / "labels.csv"),
                "--strategy",
                "distinct",
                "--out",
                str(pw),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "pw.csv.provenance.json").read_text())["unknown_aus"] == ["AU45"]
    k = tmp_path / "K.csv"
    assert main(["knowledge", "--au-dir", str(folder), "--labels", str(tmp_path / "labels.csv"), "--out", str(k)]) == 0
    side = json.loads((tmp_path / "K.csv.provenance.json").read_text())
    assert side["unmeasured_aus"] == ["AU28", "AU45"]
    # --combine reads the sidecars: AU45 comes from the OpenFace K only
    of = tmp_path / "of"
    of.mkdir()
    for c in range(14):
        write_openface_csv(of / f"{c:05d}.csv", make_frames(8, 100 + c, success=[1] * 8))
    k2 = tmp_path / "K2.csv"
    assert main(["knowledge", "--au-dir", str(of), "--labels", str(tmp_path / "labels.csv"), "--out", str(k2)]) == 0
    kc = tmp_path / "KC.csv"
    assert main(["knowledge", "--combine", str(k), str(k2), "--shift", "auto", "--out", str(kc)]) == 0
    mats = [pl.read_csv(p).select(AUS).to_numpy() for p in (k, k2, kc)]
    j = AUS.index("AU45")
    np.testing.assert_allclose(mats[2][:, j], 1 / (1 + np.exp(-(mats[1][:, j] - 0.5))), atol=1e-5)
    np.testing.assert_allclose(mats[2][:, 0], 1 / (1 + np.exp(-(mats[0][:, 0] + mats[1][:, 0] - 1.0))), atol=1e-5)
    # a mixed folder through the CLI: exit 2 unless --allow-mixed
    write_openface_csv(folder / "00099.csv", make_frames(8, 7, success=[1] * 8))
    assert main(["au-labels", str(folder), "--out", str(tmp_path / "mixed.csv")]) == 2
    assert main(["au-labels", str(folder), "--allow-mixed", "--out", str(tmp_path / "mixed.csv")]) == 0


def test_pos_weights_cli_with_ids_that_match_nothing_is_an_error(tmp_path, capsys):
    (tmp_path / "au.csv").write_text(
        "clip_id," + ",".join(AUS) + "\n" + "".join(f"{c:05d}," + ",".join("1" for _ in AUS) + "\n" for c in range(3))
    )
    (tmp_path / "labels.csv").write_text("clip_id,label\nx1,0\nx2,1\n")
    assert (
        main(
            [
                "pos-weights",
                "--au-labels",
                str(tmp_path / "au.csv"),
                "--labels",
                str(tmp_path / "labels.csv"),
                "--strategy",
                "global",
                "--out",
                str(tmp_path / "pw.csv"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no clip id has known AU labels" in err and "x1" in err and "00000" in err
    assert not (tmp_path / "pw.csv").exists()


# ----------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_on_pyfeat_labels_masks_au45_and_says_so(synth, tmp_path):
    from audfer.au.openface import read_openface
    from audfer.engine import train

    pf = tmp_path / "pyfeat"
    pf.mkdir()
    cols = [a for a in PYFEAT_AUS]
    for csv_path in sorted((synth / "OpenFace").glob("*.csv")):
        of = read_openface(csv_path)
        probs = np.column_stack(
            [of[f"{a}_c"].to_numpy() * 0.8 + 0.1 if f"{a}_c" in of.columns else np.full(of.height, 0.2) for a in cols]
        )
        write_pyfeat(pf / csv_path.name, probs, frames=of["frame"].to_numpy() - 1)
    labels = tmp_path / "au.csv"
    assert main(["au-labels", str(pf), "--out", str(labels)]) == 0
    cfg = tiny_config(synth, tmp_path / "run", f"data.au_labels={labels}", "au.strategy=distinct", "train.epochs=1")
    logs = []
    run = train(cfg, log=logs.append)
    sel = json.loads((run / "selection.json").read_text())
    assert sel["au_labels"]["sources"] == ["pyfeat"] and sel["au_labels"]["masked_aus"] == ["AU45"]
    assert sel["au_labels"]["coverage"] == 1.0 and sel["au_labels"]["per_au_coverage"]["AU45"] == 0.0
    assert any("AU labels from pyfeat" in m and "masked (unknown, not absent): AU45" in m for m in logs)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["au_f1"]["AU45"] is None and metrics["au_unknown"] == ["AU45"]
    assert metrics["selection"]["au_labels"]["masked_aus"] == ["AU45"]
