import json

import numpy as np
import polars as pl
import pytest

from audfer import AUS, AudferError
from audfer.method.labels import default_minor_classes, official_pos_weights, pos_weights, video_au_labels
from audfer.vocab import PRESENCE_COLUMNS

from conftest import make_frames


def _frames(clip, success, au01, confidence=None):
    n = len(success)
    df = make_frames(n).with_columns(
        pl.Series("success", success, dtype=pl.Int8),
        pl.Series("AU01_c", au01, dtype=pl.Int8),
        *[pl.lit(0, dtype=pl.Int8).alias(c) for c in PRESENCE_COLUMNS[1:]],
    )
    if confidence is not None:
        df = df.with_columns(pl.Series("confidence", confidence))
    return df.select(pl.lit(clip).alias("clip_id"), pl.all())


def test_eq4_hand_worked():
    frames = pl.concat(
        [
            # 4 valid frames, AU01 on 2 of them -> exactly half -> 1; the failed frame's 1 does not count
            _frames("a", [1, 1, 1, 1, 0], [1, 1, 0, 0, 1]),
            # 4 valid frames, AU01 on 1 -> 0 (the two failed frames would have made it 3/6)
            _frames("b", [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 1, 1]),
            # no valid frame -> missing, never "all present"
            _frames("c", [0, 0], [1, 1]),
        ]
    )
    out = video_au_labels(frames, clips=["a", "b", "c", "d"])
    assert out["clip_id"].to_list() == ["a", "b", "c", "d"]
    assert out.columns == ["clip_id", "n_frames", "n_valid", *AUS]
    assert out["n_frames"].to_list() == [5, 6, 2, 0]
    assert out["n_valid"].to_list() == [4, 4, 0, 0]
    assert out["AU01"].to_list() == [1, 0, None, None]
    assert out["AU02"].to_list() == [0, 0, None, None]


def test_min_confidence_narrows_valid_frames():
    frames = _frames("a", [1, 1, 1], [1, 0, 0], confidence=[0.9, 0.2, 0.2])
    assert video_au_labels(frames)["AU01"].to_list() == [0]
    out = video_au_labels(frames, min_confidence=0.5)
    assert out["n_valid"].to_list() == [1] and out["AU01"].to_list() == [1]


def test_eq4_matches_pandas_on_random_clips():
    rng = np.random.default_rng(0)
    parts = [
        make_frames(int(rng.integers(1, 30)), seed=i).select(pl.lit(f"{i:04d}").alias("clip_id"), pl.all())
        for i in range(60)
    ]
    frames = pl.concat(parts)
    ours = video_au_labels(frames).to_pandas().set_index("clip_id")
    pdf = frames.to_pandas()
    valid = pdf[pdf["success"] == 1]
    ref = valid.groupby("clip_id")[list(PRESENCE_COLUMNS)].mean() >= 0.5
    for clip, row in ref.iterrows():
        np.testing.assert_array_equal(ours.loc[clip, list(AUS)].to_numpy().astype(int), row.to_numpy().astype(int))
    no_valid = set(pdf["clip_id"]) - set(valid["clip_id"])
    for clip in no_valid:
        assert ours.loc[clip, list(AUS)].isna().all()


def _tables(labels, au_rows):
    au = pl.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(len(au_rows))],
            **{a: pl.Series([r[j] for r in au_rows], dtype=pl.Int8) for j, a in enumerate(AUS)},
        }
    )
    lab = pl.DataFrame({"clip_id": [f"c{i}" for i in range(len(labels))], "label": pl.Series(labels, dtype=pl.Int8)})
    return au, lab


def _random_tables(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.choice(7, size=n, p=[0.21, 0.16, 0.23, 0.19, 0.12, 0.02, 0.07])
    aus = (rng.random((n, 18)) < rng.uniform(0.2, 0.6, 18)).astype(int)
    return labels, aus


def test_global_and_distinct_match_independent_counts():
    labels, aus = _random_tables()
    au, lab = _tables(labels.tolist(), aus.tolist())
    g = pos_weights(au, lab, "global")
    c, p = len(labels), aus.sum(axis=0)
    np.testing.assert_allclose(g.values, np.tile((c - p) / p, (7, 1)))
    d = pos_weights(au, lab, "distinct")
    for i in range(7):
        ci, pi = (labels == i).sum(), aus[labels == i].sum(axis=0)
        np.testing.assert_allclose(d.values[i], (ci - pi) / pi)
    m = pos_weights(au, lab, "minor")
    assert m.minor == (4, 5, 6)  # shares 12/2/7 % <= 1/7, like DFEW
    np.testing.assert_allclose(m.values[:4], 1.0)
    np.testing.assert_allclose(m.values[4:], d.values[4:])


def test_minor_override_by_name():
    labels, aus = _random_tables()
    au, lab = _tables(labels.tolist(), aus.tolist())
    m = pos_weights(au, lab, "minor", minor=["Disgust", "fear"])
    assert m.minor == (5, 6)
    np.testing.assert_allclose(m.values[4], 1.0)


def test_default_minor_is_share_at_most_one_seventh():
    assert default_minor_classes(np.array([1, 1, 1, 1, 1, 1, 1])) == tuple(range(7))  # exactly 1/7 each: all minor
    assert default_minor_classes(np.array([30, 20, 20, 15, 8, 2, 5])) == (4, 5, 6)


def test_degenerate_counts_are_finite_and_follow_the_documented_rule():
    # class Happy: 3 clips; AU01 never positive, AU02 always positive. Class Sad: 1 clip. Others: none.
    rows = [[0, 1] + [0] * 16, [0, 1] + [1] * 16, [0, 1] + [0] * 16, [1, 1] + [1] * 16]
    au, lab = _tables([0, 0, 0, 1], rows)
    d = pos_weights(au, lab, "distinct")
    assert np.isfinite(d.values).all()
    # p = 0 in the class is p = 1 (one rule): (3 - 1) / 1 = 2, under the cap 5 x the AU's global weight (4 - 1) / 1
    assert d.values[0, 0] == pytest.approx(2.0)
    assert d.values[0, 1] == pytest.approx(0.5)  # p = c -> treated as c - 1: (3 - 2) / 2
    assert d.values[0, 2] == pytest.approx(2.0)  # p = 1 of 3: the plain formula
    np.testing.assert_allclose(d.values[1:], 1.0)  # < 2 clips -> neutral weight
    assert d.filled == []  # no cell reached the cap


def test_an_au_never_positive_in_the_split_gets_a_neutral_weight_not_c_minus_1():
    # 2,000 clips, AU45 never positive: Eq. 6 read literally (p clamped to 1) would give 1,999
    n = 2000
    rows = [[i % 2] * 17 + [0] for i in range(n)]
    au, lab = _tables([i % 7 for i in range(n)], rows)
    for strategy in ("global", "distinct", "minor"):
        pw = pos_weights(au, lab, strategy)
        assert pw.values.max() < 10, strategy
        np.testing.assert_allclose(pw.values[:, AUS.index("AU45")], 1.0)
        assert "AU45: no positive clip in the split, 1.0" in pw.filled


def test_clips_without_valid_au_labels_are_not_counted():
    au, lab = _tables([0, 0, 1], [[1] * 18, [0] * 18, [1] * 18])
    au = au.with_columns(pl.when(pl.col("clip_id") == "c1").then(None).otherwise(pl.col(a)).alias(a) for a in AUS)
    extra = pl.DataFrame({"clip_id": ["zz"], **{a: pl.Series([1], dtype=pl.Int8) for a in AUS}})
    pw = pos_weights(pl.concat([au, extra]), lab, "global")
    assert pw.n_missing_au == 1 and pw.n_unlabelled == 1
    assert pw.class_counts.sum() == 2


def test_unknown_strategy():
    au, lab = _tables([0], [[1] * 18])
    with pytest.raises(AudferError, match="unknown pos-weight strategy 'local'"):
        pos_weights(au, lab, "local")


def test_official_presets_equal_published_tables(reference):
    data = json.loads((reference / "official-constants.json").read_text())
    keys = ["hap", "sad", "neu", "ang", "sur", "dis", "fea"]
    for name, ds in (("dfew", "DFEW"), ("ferv39k", "FERV39K")):
        table = data[f"pos_weight_{ds}"]
        np.testing.assert_array_equal(official_pos_weights(name, "global"), np.tile(table["global"], (7, 1)))
        np.testing.assert_array_equal(official_pos_weights(name, "distinct"), np.array([table[k] for k in keys]))
        minor = official_pos_weights(name, "minor")
        np.testing.assert_array_equal(minor[:4], 1.0)
        np.testing.assert_array_equal(minor[4:], np.array([table[k] for k in keys[4:]]))
    # documented defect: FERV39K's global row is its Surprise row
    f = official_pos_weights("ferv39k", "distinct")
    np.testing.assert_allclose(official_pos_weights("ferv39k", "global")[0], f[4], rtol=1e-12)
