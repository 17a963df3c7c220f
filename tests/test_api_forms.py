"""The public API takes what audfer's own commands write (issue 37 item 3): class-name labels as `audfer synth`
writes them, CSV paths, spreadsheet forms, pandas tables, K / pos-weight tables; anything else is audfer's own
one-line error. Every `audfer.X` the README and docs use is importable."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

import audfer
from audfer.errors import AudferError, InputError
from audfer.vocab import AUS, EXPRESSIONS

REPO = Path(__file__).resolve().parents[1]


def _random(n=700, seed=3):
    """Random video AU labels and clip labels, the labels as indices (an independent count checks them below)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(7, size=n, p=[0.21, 0.16, 0.23, 0.19, 0.12, 0.02, 0.07])
    aus = (rng.random((n, 18)) < rng.uniform(0.2, 0.6, 18)).astype(int)
    ids = [f"{i:05d}" for i in range(n)]
    au = pl.DataFrame({"clip_id": ids, **{a: pl.Series(aus[:, j], dtype=pl.Int8) for j, a in enumerate(AUS)}})
    return ids, labels, aus, au


def test_pos_weights_with_class_names_as_synth_writes_them(tmp_path):
    ids, labels, aus, au = _random()
    names = pl.DataFrame({"clip_id": ids, "label": [EXPRESSIONS[i] for i in labels]})  # what `audfer synth` writes
    pw = audfer.pos_weights(au, names, "distinct")
    for i in range(7):  # Eq. 7 counted independently
        ci, pi = (labels == i).sum(), aus[labels == i].sum(axis=0)
        np.testing.assert_allclose(pw.values[i], (ci - pi) / pi)
    # the same labels as the files `audfer au-labels` / `audfer synth` write, read back by their public readers
    au_csv, labels_csv = tmp_path / "video_au_labels.csv", tmp_path / "clip_labels.csv"
    au.with_columns(n_frames=pl.lit(8), n_valid=pl.lit(8)).select("clip_id", "n_frames", "n_valid", *AUS).write_csv(
        au_csv
    )
    names.write_csv(labels_csv)
    assert audfer.read_clip_labels(labels_csv)["label"].to_list() == labels.tolist()
    for au_form, label_form in [
        (au_csv, labels_csv),  # paths
        (str(au_csv), str(labels_csv)),
        (pl.read_csv(au_csv), pl.read_csv(labels_csv)),  # as polars reads them: ids 0, 1, ... as integers
        (pl.read_csv(au_csv).to_pandas(), pl.read_csv(labels_csv).to_pandas()),  # pandas
        (audfer.read_au_labels(au_csv), names.with_columns(pl.col("label").str.to_lowercase())),
        (au, pl.DataFrame({"clip_id": ids, "label": [f"{i}.0" for i in labels]})),  # a spreadsheet's "3.0"
        (au, pl.DataFrame({"clip_id": ids, "label": labels.astype(np.float64)})),
    ]:
        other = audfer.pos_weights(au_form, label_form, "distinct")
        np.testing.assert_allclose(other.values, pw.values)
        assert other.clip_ids and len(other.clip_ids) == len(ids)
    minor = audfer.pos_weights(au, names, "minor")  # the call
    assert minor.minor == (4, 5, 6)


@pytest.mark.parametrize(
    "labels, message",
    [
        (pl.DataFrame({"clip_id": ["00000", "00001"], "label": ["Happy", "Smirk"]}), r"row 1, column label: unknown"),
        (pl.DataFrame({"clip_id": ["00000"], "expression": ["Happy"]}), r"no column label"),
        (pl.DataFrame({"clip_id": ["00000"], "label": [9]}), r"row 0, column label: expression index 9 out of range"),
        (pl.DataFrame({"clip_id": ["00000", "00000"], "label": ["Happy", "Sad"]}), r"has two labels"),
        ({"clip_id": ["00000"], "label": ["Happy"]}, r"expected a table \(polars or pandas\) or a CSV path, got dict"),
    ],
)
def test_bad_clip_labels_are_one_line_errors(labels, message):
    _, _, _, au = _random(20)
    with pytest.raises(AudferError, match=message) as err:
        audfer.pos_weights(au, labels, "minor")
    assert "\n" not in str(err.value)


def test_bad_au_labels_are_one_line_errors():
    ids, labels, _, au = _random(20)
    clips = pl.DataFrame({"clip_id": ids, "label": labels.tolist()})
    with pytest.raises(InputError, match=r"row 3, column AU04: 2; expected 0, 1 or empty"):
        audfer.pos_weights(
            au.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(2).otherwise(pl.col("AU04")).alias("AU04")), clips
        )
    with pytest.raises(InputError, match=r"no column AU01"):
        audfer.pos_weights(au.drop("AU01"), clips)


def test_knowledge_takes_class_names_and_label_files(tmp_path):
    from conftest import make_frames

    frames = pl.concat(
        [make_frames(10, seed=i, success=np.ones(10, int)).with_columns(clip_id=pl.lit(f"{i:05d}")) for i in range(14)]
    )
    idx = pl.DataFrame(
        {"clip_id": [f"{i:05d}" for i in range(14)], "label": pl.Series([i % 7 for i in range(14)], dtype=pl.Int8)}
    )
    ref = audfer.extract_knowledge(frames, idx)
    names = idx.with_columns(pl.col("label").map_elements(lambda i: EXPRESSIONS[i], pl.String))
    names.write_csv(tmp_path / "clip_labels.csv")
    for form in (names, tmp_path / "clip_labels.csv", idx.with_columns(pl.col("clip_id").cast(pl.Int64))):
        np.testing.assert_array_equal(audfer.extract_knowledge(frames, form).matrix, ref.matrix)
    framewise = frames.join(names, on="clip_id")  # a frame-level annotation given as names (AffWild2-style)
    np.testing.assert_array_equal(audfer.extract_knowledge(framewise).matrix, ref.matrix)
    # K as a table, a result object or its CSV: the loss and combine_knowledge take each form alike
    from audfer.io import expression_table

    expression_table(ref.matrix).write_csv(tmp_path / "K.csv")
    forms = [ref, ref.matrix, expression_table(ref.matrix), tmp_path / "K.csv", expression_table(ref.matrix).reverse()]
    for form in forms:
        np.testing.assert_allclose(audfer.combine_knowledge([form]), audfer.combine_knowledge([ref.matrix]))
        loss = audfer.AUDFERLoss(form, None)
        np.testing.assert_allclose(loss.au_loss.knowledge.numpy(), ref.matrix.astype(np.float32))
    with pytest.raises(InputError, match="knowledge matrix: expected numbers"):
        audfer.AUDFERLoss([["a"] * 18] * 7)


def test_loss_takes_the_pos_weights_result_and_its_table():
    ids, labels, _, au = _random(200)
    pw = audfer.pos_weights(au, pl.DataFrame({"clip_id": ids, "label": labels.tolist()}), "distinct")
    k = audfer.paper_knowledge()
    ref = audfer.AUDFERLoss(k, torch.tensor(pw.values), au_weight=0.5)
    for form in (pw, pw.table()):
        torch.testing.assert_close(audfer.AUDFERLoss(k, form, au_weight=0.5).au_loss.pos_weight, ref.au_loss.pos_weight)


def _documented_names() -> set[str]:
    """Every ``audfer.X...`` inside code (fenced blocks and inline spans) of the README and docs/*.md."""
    names = set()
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        code = re.findall(r"```.*?```", text, re.S) + re.findall(r"`[^`\n]+`", text)
        for block in code:
            names |= set(re.findall(r"(?<![\w./-])audfer((?:\.[A-Za-z_]\w*)+)", block))
    return names


def test_every_audfer_name_in_readme_and_docs_is_importable():
    names = _documented_names()
    assert {".VideoResult.write", ".pos_weights", ".load_predictor"} <= names  # the parser finds the README's uses
    missing = []
    for dotted in sorted(names):
        parts = dotted.strip(".").split(".")
        obj, module = None, "audfer"
        for i, part in enumerate(parts):
            base = audfer if i == 0 else obj
            if hasattr(base, part):
                obj = getattr(base, part)
                continue
            try:
                obj = importlib.import_module(f"{module}.{'.'.join(parts[: i + 1])}")
            except ImportError:
                missing.append("audfer." + dotted.strip("."))
                break
    assert not missing, f"used in README/docs but not importable: {', '.join(missing)}"
