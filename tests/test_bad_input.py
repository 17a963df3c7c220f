"""Every bad value at a boundary is one clear line naming the file/row/column (or key, value and source) and
what is allowed; the CLI exits 2 and leaves existing outputs alone."""

import numpy as np
import polars as pl
import pytest

from audfer import AudferError
from audfer.au.openface import read_openface
from audfer.cli import main
from audfer.config import load_config
from audfer.io import read_clip_labels, read_expression_table
from audfer.synth.openface_writer import render_openface_csv
from audfer.vocab import AUS, EXPRESSIONS

from conftest import make_frames


def _csv(tmp_path, name="c.csv", n=5, edits=None):
    text = render_openface_csv(make_frames(n, 1, success=[1] * n), "plain", full=False).decode()
    lines = text.splitlines()
    header = lines[0].split(",")
    for (row, col), value in (edits or {}).items():
        cells = lines[row - 1].split(",")
        cells[header.index(col)] = value
        lines[row - 1] = ",".join(cells)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "row, col, value, message",
    [
        (3, "AU04_r", "nan", r"row 3, column AU04_r: nan; expected a finite number"),
        (2, "AU12_r", "inf", r"row 2, column AU12_r: inf; expected a finite number"),
        (4, "AU01_r", "5.5", r"row 4, column AU01_r: 5\.5; expected an intensity in \[0, 5\]"),
        (4, "AU01_r", "-0.2", r"row 4, column AU01_r: -0\.2; expected an intensity in \[0, 5\]"),
        (2, "AU45_c", "2", r"row 2, column AU45_c: 2\.0; expected 0 or 1"),
        (5, "AU06_r", "high", r"row 5, column AU06_r: 'high' is not a number"),
        (3, "frame", "1.5", r"row 3, column frame: 1\.5; expected a frame number"),
        (3, "frame", "-1", r"row 3, column frame: -1\.0; expected a frame number"),
        (3, "frame", "1", r"row 3, column frame: frame 1 appears twice"),
    ],
)
def test_openface_bad_values_name_file_row_and_column(tmp_path, row, col, value, message):
    path = _csv(tmp_path, edits={(row, col): value})
    with pytest.raises(AudferError, match=rf"c\.csv: {message}"):
        read_openface(path)


def test_openface_byte_order_mark_is_read_correctly(tmp_path):
    plain = _csv(tmp_path, "plain.csv")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = read_openface(plain), read_openface(bom)
    assert b["frame"].to_list() == [1, 2, 3, 4, 5] and a.equals(b)


def test_au_labels_skip_option_skips_and_counts_bad_files(tmp_path, capsys):
    folder = tmp_path / "of"
    folder.mkdir()
    _csv(folder, "00001.csv")
    _csv(folder, "00002.csv", edits={(3, "AU04_r"): "nan"})
    assert main(["au-labels", str(folder), "--out", str(tmp_path / "a.csv")]) == 2
    assert "00002.csv: row 3, column AU04_r" in capsys.readouterr().err
    assert main(["au-labels", str(folder), "--skip-bad", "--out", str(tmp_path / "a.csv")]) == 0
    assert "skipped 00002" in capsys.readouterr().err
    assert pl.read_csv(tmp_path / "a.csv", schema_overrides={"clip_id": pl.String})["clip_id"].to_list() == [
        "00001",
        "00002",
    ]


def test_label_files_with_repeated_or_conflicting_ids(tmp_path):
    (tmp_path / "dup.csv").write_text("clip_id,label\n1,Happy\n2,Sad\n00001,Happy\n")
    with pytest.warns(
        UserWarning,
        match=r"dup\.csv: 1 clip\(s\) listed twice with the same label, counted once: '00001' \(rows 2 and 4\)",
    ):
        table = read_clip_labels(tmp_path / "dup.csv")
    assert table["clip_id"].to_list() == ["1", "2"]
    (tmp_path / "conflict.csv").write_text("clip_id,label\n1,Happy\n2,Sad\n1,Fear\n")
    with pytest.raises(AudferError, match=r"conflict\.csv: rows 2 and 4: clip '1' has two labels \(Happy and Fear\)"):
        read_clip_labels(tmp_path / "conflict.csv")


def test_a_label_file_with_a_header_only_is_an_error_not_zero_clips(tmp_path, capsys):
    from audfer.method.labels import read_au_labels

    (tmp_path / "labels.csv").write_text("clip_id,label\n")
    with pytest.raises(AudferError, match=r"labels\.csv: no clip rows \(only a header\)"):
        read_clip_labels(tmp_path / "labels.csv")
    (tmp_path / "au.csv").write_text(",".join(["clip_id", *AUS]) + "\n")
    with pytest.raises(AudferError, match=r"au\.csv: no clip rows \(only a header\)"):
        read_au_labels(tmp_path / "au.csv")
    argv = ["pos-weights", "--au-labels", str(tmp_path / "au.csv"), "--labels", str(tmp_path / "labels.csv")]
    assert main([*argv, "--strategy", "global", "--out", str(tmp_path / "pw.csv")]) == 2
    assert not (tmp_path / "pw.csv").exists()


def test_an_au_label_table_listing_a_clip_twice_is_refused_not_counted_twice(tmp_path):
    from audfer.method.labels import read_au_labels

    row = lambda cid: ",".join([cid, *["1"] * len(AUS)])  # noqa: E731
    (tmp_path / "au.csv").write_text("\n".join([",".join(["clip_id", *AUS]), row("7"), row("8"), row("00007")]) + "\n")
    with pytest.raises(AudferError, match=r"au\.csv: rows 2 and 4: clip '00007' appears twice in the video AU labels"):
        read_au_labels(tmp_path / "au.csv")


def test_a_split_file_listing_a_clip_twice(tmp_path):
    from audfer.data.annotations import dfew_labels, ferv39k_labels

    split = tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)"
    split.mkdir(parents=True)
    (split / "set_1.csv").write_text("video_name,label\n1,1\n2,5\n1,3\n")
    with pytest.raises(
        AudferError, match=r"set_1\.csv: rows 2 and 4: clip '00001' has two labels \(Happy and Neutral\)"
    ):
        dfew_labels(tmp_path, 1, "train")
    (split / "set_1.csv").write_text("video_name,label\n1,1\n2,5\n1,1\n")
    with pytest.warns(UserWarning, match=r"set_1\.csv: 1 clip\(s\) listed twice with the same label"):
        assert dfew_labels(tmp_path, 1, "train")["clip_id"].to_list() == ["00001", "00002"]
    ferv = tmp_path / "4_setups" / "All_scenes"
    ferv.mkdir(parents=True)
    (ferv / "train_All.csv").write_text("Action/Happy/0001 Happy\nAction/Sad/0002 Sad\nAction/Happy/0001 Fear\n")
    with pytest.raises(AudferError, match=r"train_All\.csv: rows 1 and 3: clip 'Action_Happy_0001' has two labels"):
        ferv39k_labels(tmp_path, "train")


def test_knowledge_combine_aligns_every_column_by_expression_name(tmp_path):
    from audfer.io import expression_table, write_csv
    from audfer.method.knowledge import paper_knowledge
    from audfer.provenance import write_provenance

    K = paper_knowledge()
    table = expression_table(K)
    for name, t in (("usual.csv", table), ("reordered.csv", table.reverse())):
        write_csv(t, tmp_path / name)
    other = tmp_path / "other.csv"
    write_csv(expression_table(np.clip(K[::-1] * 0.9 + 0.05, 0.01, 0.99)), other)
    results = {}
    for sidecar in (False, True):
        if sidecar:  # AU28 unmeasured in the reordered/usual file: its column comes from the other source alone
            for name in ("usual.csv", "reordered.csv"):
                write_provenance(tmp_path / name, what="knowledge", clip_ids=["a"], extra={"unmeasured_aus": ["AU28"]})
        for name in ("usual.csv", "reordered.csv"):
            out = tmp_path / f"C_{name}_{sidecar}.csv"
            assert main(["knowledge", "--combine", str(tmp_path / name), str(other), "--out", str(out)]) == 0
            results[name, sidecar] = read_expression_table(out, what="knowledge matrix")
        np.testing.assert_allclose(results["usual.csv", sidecar], results["reordered.csv", sidecar], atol=1e-12)
    assert not np.allclose(
        results["usual.csv", False][:, AUS.index("AU28")], results["usual.csv", True][:, AUS.index("AU28")]
    )


@pytest.mark.parametrize("name", ["config.yaml", "knowledge.yaml", "labels.csv"])
def test_a_binary_file_where_text_belongs_is_one_line(tmp_path, capsys, name):
    rng = np.random.default_rng(0)
    path = tmp_path / name
    path.write_bytes(b"clip_id,label\n\x89PNG\r\n" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    argv = {
        "config.yaml": ["train", str(path)],
        "knowledge.yaml": ["knowledge", "--config", str(path), "--out", str(tmp_path / "K.csv")],
        "labels.csv": ["pos-weights", "--au-labels", str(path), "--labels", str(path), "--strategy", "global"]
        + ["--out", str(tmp_path / "pw.csv")],
    }[name]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "not" in err[0] and err[0].isprintable(), err


def test_a_label_row_with_an_extra_field_names_the_row(tmp_path):
    (tmp_path / "labels.csv").write_text('clip_id,label\n1,Happy\n"2,b",Sad\n3,Fear,extra\n')
    with pytest.raises(AudferError, match=r"labels\.csv: row 4: 3 fields, the header has 2"):
        read_clip_labels(tmp_path / "labels.csv")


@pytest.mark.parametrize(
    "value, what, message",
    [
        ("nan", "knowledge matrix", "is not a finite number"),
        ("1.2", "knowledge matrix", r"a knowledge matrix holds a value in \(0, 1\)"),
        ("0", "knowledge matrix", r"a knowledge matrix holds a value in \(0, 1\)"),
        ("-3", "pos-weight table", r"a pos-weight table holds a value > 0"),
    ],
)
def test_k_and_pos_weight_values(tmp_path, value, what, message):
    rows = ["expression," + ",".join(AUS)] + [f"{e}," + ",".join(["0.5"] * 18) for e in EXPRESSIONS]
    rows[3] = rows[3].replace("0.5", value, 1)
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(AudferError, match=rf"t\.csv: row 4, column AU01: .*{message}"):
        read_expression_table(tmp_path / "t.csv", what=what)


def _probs_case(tmp_path, lines):
    of = tmp_path / "of"
    of.mkdir()
    from audfer.synth.openface_writer import write_openface_csv

    for c in range(7):
        write_openface_csv(of / f"c{c}.csv", make_frames(3, c, success=[1] * 3))
    (tmp_path / "labels.csv").write_text("clip_id,label\n" + "".join(f"c{c},{c}\n" for c in range(7)))
    (tmp_path / "p.csv").write_text(
        "clip_id,frame," + ",".join(f"p{i}" for i in range(7)) + "\n" + "\n".join(lines) + "\n"
    )
    return [
        "knowledge",
        "--au-dir",
        str(of),
        "--labels",
        str(tmp_path / "labels.csv"),
        "--frame-probs",
        str(tmp_path / "p.csv"),
        "--theta",
        "0.5",
        "--out",
        str(tmp_path / "K.csv"),
    ]


@pytest.mark.parametrize(
    "lines, message",
    [
        (["c0,1," + ",".join(["nan"] * 7)], r"p\.csv: row 2, column p0: 'nan'; expected a probability in \[0, 1\]"),
        (["c0,1,1.5," + ",".join(["0"] * 6)], r"p\.csv: row 2, column p0: '1\.5'; expected a probability"),
        (
            ["c0,1," + ",".join(["0.1"] * 7), "c0,1," + ",".join(["0.1"] * 7)],
            r"rows 2 and 3: clip c0 frame 1 appears twice",
        ),
        (["c0,one," + ",".join(["0.1"] * 7)], r"row 2, column frame: 'one'; expected an integer frame number"),
    ],
)
def test_frame_probability_values(tmp_path, capsys, lines, message):
    argv = _probs_case(tmp_path, lines)
    (tmp_path / "K.csv").write_text("keep")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and __import__("re").search(message, err), err
    assert (tmp_path / "K.csv").read_text() == "keep"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["knowledge", "--combine", "a.csv", "b.csv", "--shift", "nan", "--out", "k.csv"],
            "--shift: expected a finite number",
        ),
        (
            ["au-labels", "x", "--out", "y.csv", "--min-confidence", "1.5"],
            r"--min-confidence: expected a number in \[0, 1\], got '1\.5'",
        ),
        (
            ["knowledge", "--au-dir", "x", "--theta", "1", "--out", "k.csv"],
            r"--theta: expected a number in \[0, 1\), got '1'",
        ),
        (
            ["predict", "v.mp4", "--checkpoint", "m.ckpt", "--out", "p.json", "--window", "0"],
            r"--window: expected an integer in \[1, 4096\]",
        ),
        (
            ["predict", "v.mp4", "--checkpoint", "m.ckpt", "--out", "p.json", "--stride", "-2"],
            r"--stride: expected an integer",
        ),
        (
            ["predict", "v.mp4", "--checkpoint", "m.ckpt", "--out", "p.json", "--margin", "9"],
            r"--margin: expected a number in \[0, 2\]",
        ),
        (["export", "m.ckpt", "--out", "m.onnx", "--opset", "99"], r"--opset: expected an integer in \[11, 23\]"),
        (["cv", "synthetic_small", "--folds", "1,7"], r"--folds: expected an integer in \[1, 5\], got '7'"),
        (["cv", "synthetic_small", "--folds", "1,1"], r"--folds: '1,1' repeats a value"),
        (["ablate", "synthetic_small", "--seeds", "0,-1"], r"--seeds: expected an integer >= 0, got '-1'"),
        (["demo", "--epochs", "0"], r"--epochs: expected an integer in \[1, 10000\]"),
        (["demo", "--clips", "20"], r"--clips: expected an integer in \[70, 100000\]"),
    ],
)
def test_numeric_options_say_what_is_allowed(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(message, err), err


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=-1", r"optim\.lr = -1 \(from override 'optim\.lr=-1'\); expected a number >= 0"),
        ("optim.lr=abc", r"optim\.lr = 'abc' \(from override 'optim\.lr=abc'\); expected a number"),
        (
            "train.accelerator=tpu",
            r"train\.accelerator = 'tpu' \(from override .*\); expected one of auto, cpu, gpu, cuda, mps",
        ),
        ("train.epochs=2.5", r"train\.epochs = 2\.5 .*expected an integer >= 1"),
        ("data.fold=9", r"data\.fold = 9 .*expected an integer >= 1 and <= 5"),
        ("data.crop_scale=[0.9,0.1]", r"data\.crop_scale = \[0\.9, 0\.1\]"),
        ("optim.betas=[0.9]", r"optim\.betas = \[0\.9\]"),
        ("train.deterministic=maybe", r"train\.deterministic = 'maybe' .*expected true or false"),
        ("data.dataset=true", r"data\.dataset = True .*expected one of"),
    ],
)
def test_training_config_values_name_key_value_and_source(override, message):
    with pytest.raises(AudferError, match=message):
        load_config("synthetic_small", [override])


def test_a_bad_value_in_a_config_file_names_the_file(tmp_path):
    (tmp_path / "exp.yaml").write_text("base: synthetic_small\noptim:\n  weight_decay: -0.1\n")
    with pytest.raises(
        AudferError, match=r"optim\.weight_decay = -0\.1 \(from config exp\.yaml\); expected a number >= 0"
    ):
        load_config(str(tmp_path / "exp.yaml"))


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "out: null\ndatasets: [{name: clips, au_dir: of, labels: l.csv}]\n",
            r"out = None; expected a CSV file name",
        ),
        ("shift: high\ndatasets: [{name: clips, au_dir: of}]\n", r"shift = 'high'; expected a number or 'auto'"),
        ("datasets: [{name: dfew, au_dir: of, fold: 0}]\n", r"dataset 1: fold = 0; expected an integer 1\.\.5"),
        (
            "datasets: [{name: clips, au_dir: of, theta: 2}]\n",
            r"dataset 1: theta = 2; expected a probability in \[0, 1\)",
        ),
        (
            "datasets: [{name: clips, au_dir: of, include_test: 'yes please'}]\n",
            r"include_test = 'yes please'; expected true or false",
        ),
        ("datasets: [{name: clips}]\n", r"dataset 1: au_dir = None"),
    ],
)
def test_knowledge_yaml_values(tmp_path, capsys, body, message):
    (tmp_path / "k.yaml").write_text(body)
    assert main(["knowledge", "--config", str(tmp_path / "k.yaml")]) == 2
    assert __import__("re").search(message, capsys.readouterr().err)
    assert not list(tmp_path.glob("None*"))


# ----------------------------------------------------------------------------------------------- files that are not what they claim
def _real_checkpoint(tmp_path):
    import torch

    from audfer.models import create_model

    model = create_model("former_dfer_small", img_size=32, num_frames=4, width=8)
    torch.save(model.state_dict(), tmp_path / "ok.pth")
    return model, tmp_path / "ok.pth"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"empty file; expected a PyTorch checkpoint"),
        (
            b"<html><body>404 Not Found</body></html>\n",
            r"a text file \('<html><body>404 Not Found</body></html>'\.\.\.\), not a PyTorch",
        ),
        (b"\x08\x07\x12\x07pytorch\x1a\x052.1.0" + bytes(range(256)), r"an ONNX model, not a PyTorch checkpoint"),
        (
            b"\x00\x01\x02garbage" + bytes(range(256)),
            r"not a PyTorch checkpoint \(neither a zip archive nor a pickle\)",
        ),
    ],
)
def test_checkpoints_that_are_not_checkpoints(tmp_path, content, message):
    from audfer.models import load_checkpoint

    model, _ = _real_checkpoint(tmp_path)
    (tmp_path / "bad.pth").write_bytes(content)
    with pytest.raises(AudferError, match=rf"bad\.pth: {message}"):
        load_checkpoint(model, tmp_path / "bad.pth")


def test_truncated_and_foreign_checkpoints(tmp_path, capsys):
    from audfer.models import create_model, load_checkpoint

    model, ok = _real_checkpoint(tmp_path)
    data = ok.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudferError, match=r"cut\.pth: truncated checkpoint .* an interrupted download or copy\?"):
        load_checkpoint(model, tmp_path / "cut.pth")
    other = create_model("m3dfel_small")
    with pytest.raises(AudferError, match=r"ok\.pth: does not fit"):
        load_checkpoint(other, ok)
    # predict with a file that is not an audfer training checkpoint: one line, exit 2
    video = str(_avi(tmp_path / "v.avi"))  # a real video: every input is checked before the model loads
    assert main(["predict", video, "--checkpoint", str(ok), "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not an audfer training checkpoint" in err


def _avi(path, n=30):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(n):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def test_videos_that_are_empty_text_or_cut_off(tmp_path):
    from audfer.predict.video import VideoWarning, iter_frames

    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(AudferError, match=r"empty\.mp4: empty file; expected a video"):
        list(iter_frames(tmp_path / "empty.mp4"))
    (tmp_path / "notes.mp4").write_text("these are my notes\n")
    with pytest.raises(AudferError, match=r"notes\.mp4: a text file \('these are my notes'\.\.\.\), not a video"):
        list(iter_frames(tmp_path / "notes.mp4"))
    full = _avi(tmp_path / "full.avi")
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        assert len(list(iter_frames(full, check_length=True))) == 30
    data = full.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.5)])
    with pytest.warns(VideoWarning, match=r"cut\.avi: read (\d+) of the 30 frames the file declares"):
        frames = list(iter_frames(tmp_path / "cut.avi", check_length=True))
    assert 0 < len(frames) < 30


def test_knowledge_with_labels_matching_no_csv_is_an_error(tmp_path, capsys):
    from audfer.synth.openface_writer import write_openface_csv

    of = tmp_path / "of"
    of.mkdir()
    for c in range(3):
        write_openface_csv(of / f"{c:05d}.csv", make_frames(3, c, success=[1] * 3))
    (tmp_path / "labels.csv").write_text("clip_id,label\nclip_a,0\nclip_b,1\n")
    assert (
        main(
            [
                "knowledge",
                "--au-dir",
                str(of),
                "--labels",
                str(tmp_path / "labels.csv"),
                "--out",
                str(tmp_path / "K.csv"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no labelled clip has an AU CSV" in err and "clip_a" in err and "00000" in err


def test_an_empty_split_says_which_split_of_which_dataset_and_how_many_clips_were_missing(tmp_path):
    import shutil

    from audfer.engine.resolve import split_index
    from audfer.synth.dataset import SynthConfig, generate

    root = generate(tmp_path / "s", SynthConfig(clips=10, size=32, frames=4, seed=0), workers=1)
    shutil.rmtree(root / "Clip")
    cfg = load_config("synthetic_small", [f"data.root={root}", "data.on_missing=skip", "data.frames=clip_32x32"])
    with pytest.raises(
        AudferError,
        match=rf"synthetic fold 1 test split at {root}: no clip to use \((\d+) listed, \1 missing "
        r"on disk, e\.g\. ",
    ):
        split_index(cfg, "test")


def test_an_exponent_without_a_dot_is_a_number_not_text():
    """YAML 1.1 reads ``3e-3`` as a string; on the command line everyone means the number."""
    from audfer.config.load import parse_override

    assert parse_override("optim.lr=3e-3") == (["optim", "lr"], 0.003)
    assert parse_override("optim.lr=1.5E+2") == (["optim", "lr"], 150.0)
    assert parse_override("name=e3") == (["name"], "e3")


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbfclip_id;label\r\n1;Happy\r\n00002;SADNESS\r\n3.0;2.0\r\n",  # BOM, semicolons, CRLF, 3.0
        b'clip_id,label\r\n"1","happiness"\r\n"2",Sad\r\n3,"Neutral "\r\n',  # quoted, other spellings
        b"clip_id\tlabel\n1.0\t0\n2\tsad\n3\tneutral\n",  # tab-separated
    ],
)
def test_spreadsheet_saved_label_files_read_as_meant(tmp_path, raw):
    from audfer.data.annotations import keyed

    (tmp_path / "labels.csv").write_bytes(raw)
    table = keyed(read_clip_labels(tmp_path / "labels.csv"))
    assert table["clip_id"].to_list() == ["00001", "00002", "00003"]
    assert table["label"].to_list() == [0, 1, 2]


def test_spreadsheet_saved_dfew_split_file(tmp_path):
    from audfer.data.annotations import dfew_labels

    split = tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)"
    split.mkdir(parents=True)
    (split / "set_1.csv").write_bytes(b'\xef\xbb\xbfvideo_name;label\r\n"1";1\r\n2.0;5.0\r\n')
    table = dfew_labels(tmp_path, 1, "train")
    assert table["clip_id"].to_list() == ["00001", "00002"] and table["label"].to_list() == [0, 4]


@pytest.mark.parametrize("label", ["Happpy", "joyful", "3.5", "7"])
def test_a_class_name_nobody_uses_is_an_error_never_a_guess(tmp_path, label):
    (tmp_path / "labels.csv").write_text(f"clip_id,label\n1,Sad\n2,{label}\n")
    with pytest.raises(AudferError, match=r"labels\.csv: row 3, column label: (unknown expression|expression index)"):
        read_clip_labels(tmp_path / "labels.csv")
