import json

import numpy as np
import polars as pl
import pytest

from audfer import AUS, AudferError
from audfer.method.knowledge import combine_knowledge, extract_knowledge, interpolate_zeros, paper_knowledge
from audfer.vocab import INTENSITY_COLUMNS

from conftest import make_frames


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _clip(clip, values, success=None):
    """Frames whose every AU_r column equals `values` (per frame) times the AU's column number."""
    n = len(values)
    df = make_frames(n, success=[1] * n if success is None else success)
    return df.with_columns(
        pl.Series(c, np.asarray(values, dtype=float) * (j + 1), dtype=pl.Float32)
        for j, c in enumerate(INTENSITY_COLUMNS)
    ).select(pl.lit(clip).alias("clip_id"), pl.all())


def _dataset():
    # expression e gets clips whose base series has a known median: e + 1 for all AUs x (j + 1)
    parts, labels = [], []
    for e in range(7):
        parts.append(_clip(f"e{e}a", [e + 1, e + 1, 99.0], success=[1, 1, 0]))  # failed frame ignored
        parts.append(_clip(f"e{e}b", [e + 0.5, e + 1.5]))
        labels += [(f"e{e}a", e), (f"e{e}b", e)]
    lab = pl.DataFrame({"clip_id": [c for c, _ in labels], "label": pl.Series([l for _, l in labels], dtype=pl.Int8)})
    return pl.concat(parts), lab


def test_extract_knowledge_hand_worked():
    frames, labels = _dataset()
    res = extract_knowledge(frames, labels)
    # frames kept for e: [e+1, e+1, e+0.5, e+1.5] -> median e+1; column j scales by (j+1)
    med = np.array([[(e + 1) * (j + 1) for j in range(17)] for e in range(7)], dtype=float)
    k17 = _sig(med - (med.max() + med.min()) / 2)
    expected = np.insert(k17, 16, k17.mean(), axis=1)  # AU28: mean of the other entries after the sigmoid
    np.testing.assert_allclose(res.matrix, expected, rtol=1e-6)
    np.testing.assert_allclose(res.medians[:, :16], med[:, :16])
    assert res.frames_per_expression.tolist() == [4] * 7
    assert res.clips_per_expression.tolist() == [2] * 7
    assert res.dropped["not valid (success/confidence)"] == 7
    assert res.table().columns == ["expression", *AUS]


def test_missing_expression_is_a_clear_error():
    frames, labels = _dataset()
    frames = frames.filter(~pl.col("clip_id").str.starts_with("e5"))
    with pytest.raises(AudferError, match="no kept frame for expression\\(s\\) Disgust"):
        extract_knowledge(frames, labels)


def test_frame_level_labels_and_theta_filter():
    frames, labels = _dataset()
    framewise = frames.join(labels, on="clip_id")
    # frame-level path gives the same answer as the clip-level join
    np.testing.assert_allclose(extract_knowledge(framewise).matrix, extract_knowledge(frames, labels).matrix)
    # theta: only frame 1 of each clip has a confident base-model probability for its label
    rows = []
    for rec in framewise.select("clip_id", "frame", "label").iter_rows():
        p = np.full(7, 0.05)
        p[rec[2]] = 0.9 if rec[1] == 1 else 0.3
        rows.append({"clip_id": rec[0], "frame": rec[1], **{f"p{i}": p[i] for i in range(7)}})
    probs = pl.DataFrame(rows)
    res = extract_knowledge(frames, labels, frame_probs=probs, theta=0.5)
    # kept per e: a-frame1 (e+1) and b-frame1 (e+0.5): median e+0.75
    med = np.array([[(e + 0.75) * (j + 1) for j in range(17)] for e in range(7)])
    np.testing.assert_allclose(res.medians[:, :16], med[:, :16], rtol=1e-6)
    assert res.frames_per_expression.tolist() == [2] * 7
    assert res.dropped["p(label) <= 0.5"] == 14
    with pytest.raises(AudferError, match="threshold theta"):
        extract_knowledge(frames, labels, frame_probs=probs)


def test_interpolate_zeros_hand_worked():
    df = pl.DataFrame(
        {
            "clip_id": ["a"] * 6 + ["b"] * 3 + ["c"] * 3,
            "frame": [1, 2, 3, 4, 5, 6, 1, 2, 5, 1, 2, 3],
        }
    ).with_columns(pl.lit(0.0, dtype=pl.Float32).alias(c) for c in INTENSITY_COLUMNS)
    vals = [0, 2, 0, 0, 5, 0, 1, 0, 4, 0, 0, 0]
    df = df.with_columns(pl.Series("AU12_r", vals, dtype=pl.Float32))
    out = interpolate_zeros(df)["AU12_r"].to_list()
    # a: edges take nearest non-zero, interior linear; b: frame gap 2..5 -> 1 + 3 * (1/4); c: all-zero stays 0
    np.testing.assert_allclose(out, [2, 2, 3, 4, 5, 5, 1, 1.75, 4, 0, 0, 0])


def test_zero_policy_changes_medians():
    frames = pl.concat([_clip(f"x{e}", [0, 2, 0, 4, 0]) for e in range(7)])
    labels = pl.DataFrame({"clip_id": [f"x{e}" for e in range(7)], "label": pl.Series(range(7), dtype=pl.Int8)})
    keep = extract_knowledge(frames, labels, zeros="keep")
    interp = extract_knowledge(frames, labels, zeros="interpolate")
    assert keep.medians[0, 0] == 0.0  # [0,2,0,4,0] -> 0
    assert interp.medians[0, 0] == 3.0  # [2,2,3,4,4] -> 3


def test_combine_knowledge():
    rng = np.random.default_rng(0)
    ks = [rng.random((7, 18)) for _ in range(4)]
    np.testing.assert_allclose(combine_knowledge(ks), _sig(sum(ks) - 2.5))
    np.testing.assert_allclose(combine_knowledge(ks[:2], "auto"), _sig(ks[0] + ks[1] - 1.0))
    np.testing.assert_allclose(combine_knowledge(ks[:1], 0.3), _sig(ks[0] - 0.3))
    with pytest.raises(AudferError, match="7x18"):
        combine_knowledge([np.zeros((7, 17))])


def test_paper_knowledge_is_the_published_matrix(reference):
    data = json.loads((reference / "official-constants.json").read_text())["knowledge_matrix_C_final"]
    expected = np.array([data[k] for k in ["hap", "sad", "neu", "ang", "sur", "dis", "fea"]])
    np.testing.assert_array_equal(paper_knowledge(), expected)


def test_paper_knowledge_au28_is_mean_of_others_in_presigmoid_space():
    k = paper_knowledge()
    logit = np.log(k / (1 - k))
    np.testing.assert_allclose(logit[:, 16], np.delete(logit, 16, axis=1).mean(), rtol=1e-9)
    # Fig. 4 check: Happy/AU12 = 0.93, Disgust/AU07 = 0.91
    assert round(k[0, 8], 2) == 0.93 and round(k[5, 5], 2) == 0.91


def test_per_dataset_au28_is_the_mean_of_the_other_entries_after_the_sigmoid():
    from audfer.method.knowledge import knowledge_from_medians

    rng = np.random.default_rng(4)
    i28 = AUS.index("AU28")
    mats = []
    for _ in range(4):
        med = rng.uniform(0, 3, (7, 17))
        m, k = knowledge_from_medians(med)
        others = np.delete(k, i28, axis=1)
        np.testing.assert_allclose(others, _sig(med - (med.max() + med.min()) / 2), atol=1e-12)
        np.testing.assert_allclose(k[:, i28], others.mean(), atol=1e-12)
        np.testing.assert_allclose(_sig(m[:, i28] - (med.max() + med.min()) / 2), k[:, i28], atol=1e-12)
        mats.append(k)
    # combined as §3.1 combines them, AU28 is the mean of the other entries in pre-sigmoid space, as in the
    # shipped matrix (a mean taken before the per-dataset sigmoid breaks this)
    c = combine_knowledge(mats, 2.5)
    pre = np.log(c / (1 - c))
    np.testing.assert_allclose(pre[:, i28], np.delete(pre, i28, axis=1).mean(), atol=1e-9)
