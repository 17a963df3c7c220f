"""Every bad input of a category is one line naming file, row and column (issue 33, item 7): numeric overflow in
every numeric column of every AU reader, spreadsheet artefacts (Excel's ``sep=`` line, CR-only line ends, UTF-16,
a column named twice) in every CSV the CLI reads, a class listed twice in ``data.class_order``, hostile YAML, a
package folder missing a file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from audfer import AudferError
from audfer.au.openface import read_openface
from audfer.au.sources import read_au_file, read_mapping_file
from audfer.cli import main
from audfer.config import load_config
from audfer.files import read_yaml
from audfer.io import read_clip_labels, read_expression_table, write_csv
from audfer.synth.openface_writer import render_openface_csv
from audfer.vocab import AUS, INTENSITY_COLUMNS, PRESENCE_COLUMNS

from conftest import make_frames

INT64_OVERFLOW = ("99999999999999999999", "-99999999999999999999", "9223372036854775808")
FLOAT_OVERFLOW = ("1e400", "-1e400")


def _openface(tmp_path, edits=None, name="c.csv"):
    text = render_openface_csv(make_frames(4, 1, success=[1] * 4), "2.2", full=False).decode()
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split(",")]
    for (row, col), value in (edits or {}).items():
        cells = lines[row - 1].split(",")
        cells[header.index(col)] = " " + value
        lines[row - 1] = ",".join(cells)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


OPENFACE_INT = ["frame", "face_id", "success", *PRESENCE_COLUMNS]
OPENFACE_FLOAT = ["timestamp", "confidence", *INTENSITY_COLUMNS]


@pytest.mark.parametrize("col", OPENFACE_INT + OPENFACE_FLOAT)
def test_numeric_overflow_in_any_openface_column_is_one_line_naming_row_and_column(tmp_path, col):
    values = FLOAT_OVERFLOW + (INT64_OVERFLOW if col in OPENFACE_INT or col in INTENSITY_COLUMNS else ())
    for value in values:
        path = _openface(tmp_path, {(3, col): value})
        with pytest.raises(AudferError, match=rf"c\.csv: row 3, column {col}: "):
            read_openface(path)


def test_openface_frame_beyond_int64_is_exit_2_and_one_line_in_au_labels(tmp_path, capsys):
    folder = tmp_path / "of"
    folder.mkdir()
    _openface(folder, {(4, "frame"): "99999999999999999999"}, name="clip1.csv")
    assert main(["au-labels", str(folder), "--out", str(tmp_path / "au.csv"), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "clip1.csv: row 4, column frame: 1e+20; expected a frame number" in err


PYFEAT_AUS = "AU01 AU02 AU04 AU05 AU06 AU07 AU09 AU10 AU11 AU12 AU14 AU15 AU17 AU20 AU23 AU24 AU25 AU26 AU28 AU43"
PYFEAT_HEADER = ",".join(
    ["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore", *PYFEAT_AUS.split()]
)
PYFEAT_HEADER += ",input,frame"
MAPPING = """
frame: f
timestamp: t
timestamp_scale: 1000
confidence: conf
aus:
  - {column: brow, au: AU01, kind: intensity, scale: 5}
  - {column: blink, au: AU45, kind: presence}
"""


@pytest.mark.parametrize(
    "kind, col, value",
    [
        ("pyfeat", "frame", "99999999999999999999"),
        ("pyfeat", "frame", "1e400"),
        ("pyfeat", "FaceScore", "1e400"),
        ("pyfeat", "AU12", "-1e400"),
        ("table", "f", "9223372036854775808"),
        ("table", "conf", "1e400"),
        ("table", "brow", "99999999999999999999"),
        ("table", "blink", "1e400"),
        ("table", "t", "1e306"),  # finite, but not once scaled by timestamp_scale
    ],
)
def test_numeric_overflow_in_mapped_au_tables_is_one_line_naming_row_and_column(tmp_path, kind, col, value):
    if kind == "pyfeat":
        header = PYFEAT_HEADER.split(",")
        rows = [["10", "20", "100", "100", "0.99", *["0.4"] * 20, "clip.mp4", str(i)] for i in range(3)]
        mapping = None
    else:
        header = ["f", "t", "conf", "brow", "blink"]
        rows = [[str(i), f"{i * 40}", "0.9", "1.5", "0"] for i in range(3)]
        mapping = read_mapping_file(_write(tmp_path / "map.yaml", MAPPING))
    rows[1][header.index(col)] = value
    path = _write(tmp_path / "t.csv", "\n".join(",".join(r) for r in [header, *rows]) + "\n")
    with pytest.raises(AudferError, match=rf"t\.csv: row 3, column {col}: "):
        read_au_file(path, mapping=mapping)


def _write(path, text: str, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------------------------------- spreadsheet artefacts
LABELS = "clip_id,label\n1,Happy\n2,Sad\n3,Neutral\n"


def _artefacts(text: str, sep: str = ","):
    """The same table as spreadsheets save it: Excel's ``sep=`` line, CR-only line ends, UTF-16 LE/BE with BOM."""
    semi = text.replace(",", sep)
    return {
        "sep line": f"sep={sep}\n{semi}".encode(),
        "sep line, CRLF": f'"sep={sep}"\r\n{semi}'.replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode(),
        "CR only": text.replace("\n", "\r").encode(),
        "UTF-16 LE": b"\xff\xfe" + text.encode("utf-16-le"),
        "UTF-16 BE": b"\xfe\xff" + text.encode("utf-16-be"),
    }


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    return out, [str(w.message) for w in caught]


@pytest.mark.parametrize("variant", list(_artefacts(LABELS)))
def test_spreadsheet_artefacts_in_clip_labels_are_read_as_meant(tmp_path, variant):
    plain = read_clip_labels(_write(tmp_path / "plain.csv", LABELS))
    path = tmp_path / "labels.csv"
    path.write_bytes(_artefacts(LABELS, ";")[variant])
    got, said = _quiet(read_clip_labels, path)
    assert got.equals(plain)
    assert any("UTF-16" in m for m in said) == variant.startswith("UTF-16")  # decoding UTF-16 is said


def test_every_table_csv_reads_spreadsheet_artefacts_as_meant(tmp_path):
    from audfer.method.labels import read_au_labels

    rng = np.random.default_rng(0)
    k = tmp_path / "K.csv"
    from audfer.io import expression_table

    write_csv(expression_table(rng.uniform(0.05, 0.95, (7, 18))), k)
    au = tmp_path / "au.csv"
    au.write_text("clip_id," + ",".join(AUS) + "\n" + "1," + ",".join(["1", "0"] * 9) + "\n")
    for path, read in ((k, lambda p: read_expression_table(p, what="knowledge matrix")), (au, read_au_labels)):
        want = read(path)
        for variant, raw in _artefacts(path.read_text()).items():
            other = tmp_path / f"v-{path.name}"
            other.write_bytes(raw)
            got, _ = _quiet(read, other)
            if isinstance(want, np.ndarray):
                np.testing.assert_array_equal(got, want, err_msg=variant)
            else:
                assert got.equals(want), variant


def test_au_files_with_spreadsheet_artefacts_read_as_meant(tmp_path):
    plain = _openface(tmp_path, name="plain.csv")
    want = read_openface(plain)
    for variant, raw in _artefacts(plain.read_text()).items():
        path = tmp_path / "v.csv"
        path.write_bytes(raw)
        got, _ = _quiet(read_au_file, path)
        assert got[1] == "openface" and got[0].equals(want), variant
    table = "f,t,conf,brow,blink\n0,0,0.9,1.5,0\n1,40,0.8,2.5,1\n"
    mapping = read_mapping_file(_write(tmp_path / "map.yaml", MAPPING))
    want = read_au_file(_write(tmp_path / "t.csv", table), mapping=mapping)[0]
    for variant, raw in _artefacts(table, ";").items():
        path = tmp_path / "tv.csv"
        path.write_bytes(raw)
        got, _ = _quiet(read_au_file, path, mapping=mapping)
        assert got[0].equals(want), variant


def test_rows_below_a_sep_line_are_named_as_the_file_numbers_them(tmp_path):
    path = _write(tmp_path / "labels.csv", "sep=;\nclip_id;label\n1;Happy\n2;Joyful\n")
    with pytest.raises(AudferError, match=r"labels\.csv: row 4, column label"):
        read_clip_labels(path)
    of = _openface(tmp_path, {(3, "AU04_r"): "7"})
    of.write_text("sep=,\n" + of.read_text())
    with pytest.raises(AudferError, match=r"c\.csv: row 4, column AU04_r: 7\.0; expected an intensity"):
        read_openface(of)


def test_utf16_without_a_byte_order_mark_is_one_line_saying_so(tmp_path, capsys):
    path = tmp_path / "labels.csv"
    path.write_bytes(LABELS.encode("utf-16-le"))
    with pytest.raises(AudferError, match=r"labels\.csv: not a text file .*UTF-16 text without a byte-order mark"):
        read_clip_labels(path)


@pytest.mark.parametrize(
    "text, column",
    [
        ("clip_id,label,label\n1,Happy,Sad\n", "label"),
        ("clip_id, label ,label\n1,Happy,Sad\n", "label"),
        ('"clip_id";"clip_id";label\n1;2;Happy\n', "clip_id"),
    ],
)
def test_a_column_named_twice_is_an_error_naming_it(tmp_path, text, column):
    with pytest.raises(AudferError, match=rf"labels\.csv: row 1: column '{column}' appears twice"):
        read_clip_labels(_write(tmp_path / "labels.csv", text))


def test_a_column_named_twice_in_an_au_file_is_an_error_naming_it(tmp_path):
    plain = _openface(tmp_path).read_text()
    head, rest = plain.split("\n", 1)
    (tmp_path / "dup.csv").write_text(head.replace("AU02_r", "AU01_r", 1) + "\n" + rest)
    with pytest.raises(AudferError, match=r"dup\.csv: row 1: column 'AU01_r' appears twice"):
        read_openface(tmp_path / "dup.csv")
    table = "f,t,conf,brow,brow,blink\n0,0,0.9,1.5,2,0\n"
    mapping = read_mapping_file(_write(tmp_path / "map.yaml", MAPPING))
    with pytest.raises(AudferError, match=r"t\.csv: row 1: column 'brow' appears twice"):
        read_au_file(_write(tmp_path / "t.csv", table), mapping=mapping)


def test_a_dfew_split_file_with_a_sep_line_and_utf16_reads_as_meant(tmp_path):
    from audfer.data.annotations import dfew_labels

    split = tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)"
    split.mkdir(parents=True)
    (split / "set_1.csv").write_bytes(b"\xff\xfe" + "sep=;\r\nvideo_name;label\r\n1;1\r\n2;5\r\n".encode("utf-16-le"))
    table, _ = _quiet(dfew_labels, tmp_path, 1, "train")
    assert table["clip_id"].to_list() == ["00001", "00002"] and table["label"].to_list() == [0, 4]


# ------------------------------------------------------------------------------------------- class order, YAML
@pytest.mark.parametrize("order", ["[happy, sad, Happy]", "[happy, sad, ' sad ']"])
def test_a_class_order_listing_a_class_twice_is_refused(order):
    with pytest.raises(AudferError, match=r"data\.class_order = .*each class once"):
        load_config("synthetic_small", ["data.dataset=list", f"data.class_order={order}"])


def test_a_class_order_naming_a_class_twice_through_aliases_is_refused():
    from audfer.data.datasets import list_label_map

    with pytest.raises(AudferError, match=r"class_order\[0\] = 'happy' and data\.class_order\[2\] = 'happiness'"):
        list_label_map(["happy", "sad", "happiness"])


def _bomb(levels=9):
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefghij", "bcdefghijk"[: levels - 1]):
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize(
    "body, message",
    [
        (_bomb(), "once its YAML aliases are expanded"),
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
        ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n", "nested more than 64 levels"),
        ("a: &a 1\n" + "".join(f"b{i}: *a\n" for i in range(1001)), "more than 1000 YAML aliases"),
    ],
)
def test_hostile_yaml_is_one_line_in_every_command_that_reads_yaml(tmp_path, capsys, body, message):
    path = _write(tmp_path / "hostile.yaml", body)
    with pytest.raises(AudferError, match=message):
        read_yaml(path, "a config")
    assert main(["config", str(path)]) == 2  # an experiment config
    assert main(["knowledge", "--config", str(path), "--out", str(tmp_path / "K.csv")]) == 2  # a knowledge config
    with pytest.raises(AudferError, match=message):  # an AU mapping
        read_mapping_file(path)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RecursionError" not in err
    assert all(message in line for line in err.strip().splitlines())


def test_a_yaml_file_over_the_size_bound_is_refused_before_parsing(tmp_path, monkeypatch):
    import audfer.files as files

    monkeypatch.setattr(files, "MAX_YAML_BYTES", 1000)
    path = _write(tmp_path / "big.yaml", "x: [" + ", ".join(["1"] * 600) + "]\n")
    with pytest.raises(AudferError, match=r"big\.yaml: 1,804 bytes; expected a config of at most 1,000 bytes"):
        read_yaml(path, "a config")


def test_utf16_yaml_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe" + "a: 1\nb: [x, y]\n".encode("utf-16-le"))
    got, said = _quiet(read_yaml, path, "a config")
    assert got == {"a": 1, "b": ["x", "y"]} and any("UTF-16" in m for m in said)


# ------------------------------------------------------------------------------------------- package folders
@pytest.mark.parametrize(
    "present, missing", [("config.json", "model.safetensors"), ("model.safetensors", "config.json")]
)
def test_a_package_folder_missing_a_file_names_the_missing_file(tmp_path, capsys, present, missing):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / present).write_text("{}")
    from audfer.weights.package import read_stored_run

    with pytest.raises(AudferError, match=rf"pkg/{missing}: not found; a package folder holds"):
        read_stored_run(folder)
