"""Readers of the datasets' own label files -> plain tables in our label order.

Clip-level tables have ``clip_id`` (str) and ``label`` (0..6, ``audfer.EXPRESSIONS``); AffWild2's
frame-level table has ``clip_id, frame, label``. Clip ids are what the OpenFace CSV of the clip is
called (its file stem):

| dataset | label file(s) | clip id |
|---|---|---|
| DFEW | ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_k.csv`` (``video_name,label``, 1..7) | 5-digit id, ``00025`` |
| FERV39k | ``4_setups/All_scenes/{train,test}_All.csv`` (``Scene/Emotion/ID Emotion``) | path with ``/`` -> ``_``, ``Action_Happy_0267`` |
| MAFW (7-class view) | ``split/single/no_caption/set_k/{train,test}.txt`` (``00025.mp4 anger``) | ``00025`` |
| RAVDESS | the file name, third field = emotion (``03-01-05-01-02-01-12``) | the file stem |
| AffWild2 | one ``.txt`` per video: class-name header, then one integer per frame (-1 = none) | the file stem |

MAFW's 7-class view is our own definition (the paper publishes none): anger, disgust, fear,
happiness, neutral, sadness, surprise map to our seven classes; contempt, anxiety, helplessness and
disappointment are left out. RAVDESS ``calm`` (02) has no class of ours and is left out unless
``calm="neutral"``. AffWild2 frames labelled -1 or ``Other`` are left out; annotation line i is frame i
(OpenFace numbers frames from 1).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from audfer.errors import InputError
from audfer.files import check_text_file, table_bytes
from audfer.io import unique_clip_rows
from audfer.vocab import EXPRESSIONS, MAFW_CLASSES, MAFW_TO_7, expression_index

RAVDESS_EMOTIONS = {
    1: "neutral",
    2: "calm",
    3: "happy",
    4: "sad",
    5: "angry",
    6: "fearful",
    7: "disgust",
    8: "surprised",
}


def clip_key(col: str = "clip_id") -> pl.Expr:
    """The one rule that matches clip ids across tables (split files, OpenFace file stems, AU-label and
    frame-probability CSVs, lists): an all-digit id is a number, written with 5 digits as DFEW and MAFW
    write it (``25``, ``025`` and ``00025`` are clip ``00025``; ``123456`` stays as it is); any other id is
    compared as written (FERV39k ``Action_Happy_0267``, RAVDESS stems)."""
    c = pl.col(col).cast(pl.String).str.strip_chars()
    return (
        pl.when(c.str.contains(r"^\d+$"))
        .then(c.cast(pl.Int64, strict=False).cast(pl.String).str.zfill(5))
        .otherwise(c)
        .alias(col)
    )


def keyed(table: pl.DataFrame, col: str = "clip_id") -> pl.DataFrame:
    """``table`` with its clip ids rewritten by ``clip_key``."""
    return table.with_columns(clip_key(col))


def _table(ids: list[str], labels: list[int], where: list[tuple[Path, int]] | None = None) -> pl.DataFrame:
    """The ``clip_id,label`` table; ``where`` (file, row) of each entry: a clip listed twice with two labels is an
    error naming both rows, the same label twice a warning (counted once)."""
    if where is not None:
        by_file: dict[Path, list[int]] = {}
        for i, (path, _) in enumerate(where):
            by_file.setdefault(path, []).append(i)
        keep: list[int] = []
        for path, idx in by_file.items():
            kept = unique_clip_rows(
                path, [ids[i] for i in idx], [where[i][1] for i in idx], [labels[i] for i in idx], what="split file"
            )
            keep += [idx[k] for k in kept]
        ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
    return pl.DataFrame({"clip_id": ids, "label": pl.Series(labels, dtype=pl.Int8)})


def _check_fold(fold: int) -> None:
    if fold not in range(1, 6):
        raise InputError(f"fold must be 1..5, got {fold}")


def _split_lines(split: str, path_of, what: str):
    """Yield ``(path, row, line)`` for the non-blank lines of a dataset's split file(s);
    ``split`` is train, test or all (both)."""
    if split not in ("train", "test", "all"):
        raise InputError(f"split must be train, test or all, got {split!r}")
    for part in ("train", "test") if split == "all" else (split,):
        path = path_of(part)
        if not path.is_file():
            raise InputError(f"{path}: {what} split file not found")
        check_text_file(path, "a dataset split file")
        # as a spreadsheet saves it: UTF-16, Excel's ``sep=;`` line (skipped, rows keep the file's numbers)
        raw, _, skipped = table_bytes(path, path.read_bytes(), "a dataset split file")
        for row, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1 + skipped):
            if line.strip():
                yield path, row, line


def dfew_labels(root: str | Path, fold: int = 1, split: str = "train") -> pl.DataFrame:
    """DFEW's official single-labelled split of one fold (``split``: train, test or all)."""
    _check_fold(fold)
    root = Path(root)
    ids, labels = [], []
    where: list[tuple[Path, int]] = []
    lines = _split_lines(
        split,
        lambda part: root / "EmoLabel_DataSplit" / f"{part}(single-labeled)" / f"set_{fold}.csv",
        "DFEW (expected <root>/EmoLabel_DataSplit/...)",
    )
    header_of: set[Path] = set()
    for path, row, line in lines:
        # as DFEW ships it, or as a spreadsheet saves it (semicolons, quoted cells, numbers as 25.0)
        cells = [re.sub(r"^(\d+)\.0+$", r"\1", c.strip().strip('"').strip()) for c in re.split(r"[,;\t]", line)]
        if path not in header_of:
            header_of.add(path)
            if cells != ["video_name", "label"]:
                raise InputError(f"{path}: row {row}: expected the header video_name,label")
            continue
        if len(cells) != 2 or not cells[0].isdigit() or not cells[1].isdigit() or not 1 <= int(cells[1]) <= 7:
            raise InputError(f"{path}: row {row}: {line!r}; expected <video number>,<label 1..7>")
        ids.append(f"{int(cells[0]):05d}")
        labels.append(int(cells[1]) - 1)
        where.append((path, row))
    return _table(ids, labels, where)


def ferv39k_labels(root: str | Path, split: str = "train") -> pl.DataFrame:
    """FERV39k's All_scenes split (``split``: train, test or all); ids ``Scene_Emotion_ID``."""
    root = Path(root)
    ids, labels = [], []
    where: list[tuple[Path, int]] = []
    lines = _split_lines(
        split,
        lambda part: root / "4_setups" / "All_scenes" / f"{part}_All.csv",
        "FERV39k (expected <root>/4_setups/All_scenes/...)",
    )
    for path, row, line in lines:
        cells = line.split()
        if len(cells) != 2 or cells[0].count("/") != 2:
            raise InputError(f"{path}: row {row}: {line!r}; expected <Scene/Emotion/ID> <Emotion>")
        ids.append(cells[0].replace("/", "_"))
        labels.append(expression_index(cells[1], where=f"{path}: row {row}"))
        where.append((path, row))
    return _table(ids, labels, where)


def mafw_labels(root: str | Path, fold: int = 1, split: str = "train", *, classes: int = 7) -> pl.DataFrame:
    """MAFW single-label split; ``classes=7`` is our 7-class view, ``11`` keeps MAFW's own indices."""
    _check_fold(fold)
    if classes not in (7, 11):
        raise InputError(f"MAFW classes must be 7 (our view) or 11 (MAFW's own), got {classes}")
    root = Path(root)
    ids, labels = [], []
    where: list[tuple[Path, int]] = []
    lines = _split_lines(
        split,
        lambda part: root / "split" / "single" / "no_caption" / f"set_{fold}" / f"{part}.txt",
        "MAFW (expected <root>/split/single/no_caption/...)",
    )
    for path, row, line in lines:
        cells = line.split()
        if len(cells) != 2 or cells[1].lower() not in MAFW_CLASSES:
            raise InputError(f"{path}: row {row}: {line!r}; expected <clip>.mp4 <one of {', '.join(MAFW_CLASSES)}>")
        idx = MAFW_CLASSES.index(cells[1].lower())
        label = idx if classes == 11 else MAFW_TO_7[idx]
        if label is not None:
            ids.append(Path(cells[0]).stem)
            labels.append(label)
            where.append((path, row))
    return _table(ids, labels, where)


_RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def ravdess_labels(stems: list[str], *, calm: str = "drop") -> tuple[pl.DataFrame, list[str]]:
    """Labels from RAVDESS file names; returns (table, stems left out as calm)."""
    if calm not in ("drop", "neutral"):
        raise InputError(f"calm must be 'drop' or 'neutral', got {calm!r}")
    ids, labels, calm_ids = [], [], []
    for stem in stems:
        m = _RAVDESS_RE.match(stem)
        if not m or int(m.group(3)) not in RAVDESS_EMOTIONS:
            raise InputError(f"{stem}: not a RAVDESS file name (expected MM-VC-EM-IN-ST-RP-AC, emotion 01..08)")
        emotion = RAVDESS_EMOTIONS[int(m.group(3))]
        if emotion == "calm":
            if calm == "drop":
                calm_ids.append(stem)
                continue
            emotion = "neutral"
        ids.append(stem)
        labels.append(expression_index(emotion))
    return _table(ids, labels), calm_ids


def affwild2_frame_labels(annotations: str | Path) -> tuple[pl.DataFrame, dict[str, int]]:
    """ABAW expression annotations -> (``clip_id, frame, label`` of annotated frames, counts left out)."""
    root = Path(annotations)
    files = sorted(root.glob("*.txt")) if root.is_dir() else [root]
    if not files or not files[0].is_file():
        raise InputError(f"{root}: no AffWild2 annotation .txt files found")
    parts, left_out = [], {"unannotated (-1)": 0, "Other": 0}
    for path in files:
        lines = path.read_text().splitlines()
        if not lines:
            raise InputError(f"{path}: empty annotation file")
        names = [n.strip() for n in lines[0].split(",")]
        mapping: list[int | None] = []
        for n in names:
            if n.lower() == "other":
                mapping.append(None)
            else:
                mapping.append(expression_index(n, where=f"{path}: row 1"))
        frames, labels = [], []
        for row, line in enumerate(lines[1:], start=2):
            text = line.strip()
            try:
                value = int(text)
            except ValueError:
                raise InputError(f"{path}: row {row}: {text!r}; expected an integer class index or -1") from None
            if value == -1:
                left_out["unannotated (-1)"] += 1
                continue
            if not 0 <= value < len(mapping):
                raise InputError(f"{path}: row {row}: class {value} out of range 0..{len(mapping) - 1} (or -1)")
            if mapping[value] is None:
                left_out["Other"] += 1
                continue
            frames.append(row - 1)
            labels.append(mapping[value])
        parts.append(
            pl.DataFrame(
                {
                    "clip_id": [path.stem] * len(frames),
                    "frame": pl.Series(frames, dtype=pl.Int64),
                    "label": pl.Series(labels, dtype=pl.Int8),
                }
            )
        )
    return pl.concat(parts), left_out


__all__ = [
    "dfew_labels",
    "ferv39k_labels",
    "mafw_labels",
    "ravdess_labels",
    "affwild2_frame_labels",
    "MAFW_CLASSES",
    "MAFW_TO_7",
    "EXPRESSIONS",
]
