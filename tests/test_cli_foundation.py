"""The au-labels / pos-weights / knowledge commands, run through `audfer.cli.main`."""

import numpy as np
import polars as pl
import pytest

from audfer import AUS, EXPRESSIONS
from audfer.au.folder import read_openface_dir
from audfer.cli import main
from audfer.io import read_expression_table
from audfer.method.knowledge import extract_knowledge
from audfer.method.labels import pos_weights, video_au_labels
from audfer.synth.openface_writer import write_openface_csv

from conftest import make_frames


@pytest.fixture
def dataset(tmp_path):
    of = tmp_path / "openface"
    of.mkdir()
    rows = []
    for i in range(35):
        clip = f"{i:05d}"
        write_openface_csv(of / f"{clip}.csv", make_frames(12, seed=i), "2.2", full=False)
        rows.append((clip, EXPRESSIONS[i % 7] if i % 2 else str(i % 7)))  # names and indices mixed
    (of / "99999.csv").write_text((of / "00000.csv").read_text().splitlines()[0] + "\n")  # header only: no frame
    labels = tmp_path / "clip_labels.csv"
    labels.write_text("clip_id,label\n" + "".join(f"{c},{l}\n" for c, l in rows))
    return tmp_path, of, labels


@pytest.mark.slow
def test_au_labels_command(dataset, capsys):
    root, of, _ = dataset
    out = root / "video_au_labels.csv"
    assert main(["au-labels", str(of), "--out", str(out)]) == 0
    table = pl.read_csv(out, infer_schema=False)
    assert table.columns == ["clip_id", "n_frames", "n_valid", *AUS]
    assert table["clip_id"][0] == "00000"
    expected = video_au_labels(read_openface_dir(of, cache=False).frames)
    got = table.filter(pl.col("clip_id") != "99999").select(AUS).with_columns(pl.all().cast(pl.Int8))
    assert got.equals(expected.select(AUS))
    last = table.filter(pl.col("clip_id") == "99999")
    assert last["n_frames"][0] == "0" and all(last[a][0] is None for a in AUS)
    assert "1 clip(s) without a valid frame keep empty AU labels: 99999" in capsys.readouterr().err


@pytest.mark.slow
def test_pos_weights_and_knowledge_commands(dataset):
    root, of, labels = dataset
    au = root / "au.csv"
    assert main(["au-labels", str(of), "--out", str(au)]) == 0
    for strategy in ("global", "distinct", "minor"):
        pw = root / f"pw_{strategy}.csv"
        assert (
            main(
                [
                    "pos-weights",
                    "--au-labels",
                    str(au),
                    "--labels",
                    str(labels),
                    "--strategy",
                    strategy,
                    "--out",
                    str(pw),
                ]
            )
            == 0
        )
        table = pl.read_csv(pw)
        assert table["expression"].to_list() == list(EXPRESSIONS) and table.columns[1:] == list(AUS)
        frames = read_openface_dir(of, cache=False)
        lab = pl.DataFrame(
            {"clip_id": [f"{i:05d}" for i in range(35)], "label": pl.Series([i % 7 for i in range(35)], dtype=pl.Int8)}
        )
        ref = pos_weights(video_au_labels(frames.frames, frames.clips), lab, strategy)
        np.testing.assert_allclose(read_expression_table(pw), ref.values)
    k = root / "K.csv"
    png = root / "K.png"
    assert (
        main(
            [
                "knowledge",
                "--au-dir",
                str(of),
                "--labels",
                str(labels),
                "--zeros",
                "interpolate",
                "--out",
                str(k),
                "--heatmap",
                str(png),
            ]
        )
        == 0
    )
    ref = extract_knowledge(read_openface_dir(of, cache=False).frames, lab, zeros="interpolate")
    np.testing.assert_allclose(read_expression_table(k), ref.matrix, rtol=1e-9)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    comb = root / "C.csv"
    assert main(["knowledge", "--combine", str(k), str(k), "--shift", "auto", "--out", str(comb)]) == 0
    np.testing.assert_allclose(read_expression_table(comb), 1 / (1 + np.exp(-(2 * ref.matrix - 1.0))))


def test_preset_pos_weights(tmp_path):
    out = tmp_path / "pw.csv"
    assert main(["pos-weights", "--preset", "dfew", "--strategy", "minor", "--out", str(out)]) == 0
    np.testing.assert_array_equal(read_expression_table(out)[:4], 1.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["au-labels", "{root}/missing", "--out", "{out}"], "missing: AU folder not found"),
        (
            [
                "pos-weights",
                "--au-labels",
                "{root}/au.csv",
                "--labels",
                "{root}/bad_labels.csv",
                "--strategy",
                "global",
                "--out",
                "{out}",
            ],
            "bad_labels.csv: row 3, column label: unknown expression 'Joyful'",
        ),
        (
            ["knowledge", "--combine", "{root}/short.csv", "--out", "{out}"],
            "short.csv: knowledge matrix has 2 rows; expected 7",
        ),
        (
            ["knowledge", "--au-dir", "{root}/openface", "--labels", "{root}/few_labels.csv", "--out", "{out}"],
            "no kept frame for expression(s) Sad, Neutral, Angry, Surprise, Disgust, Fear",
        ),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_keeps_existing_output(dataset, capsys, argv, message):
    root, of, labels = dataset
    main(["au-labels", str(of), "--out", str(root / "au.csv")])
    (root / "bad_labels.csv").write_text("clip_id,label\n00000,Happy\n00001,Joyful\n")
    (root / "few_labels.csv").write_text("clip_id,label\n00000,0\n")
    (root / "short.csv").write_text(
        "expression," + ",".join(AUS) + "\nHappy" + ",0.5" * 18 + "\nSad" + ",0.5" * 18 + "\n"
    )
    out = root / "existing.csv"
    out.write_text("precious\n")
    capsys.readouterr()
    code = main([a.format(root=root, out=out) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("audfer: error: ") and "\n" not in err and "Traceback" not in err
    assert message in err
    assert out.read_text() == "precious\n"
    assert not [p for p in root.iterdir() if p.name.startswith(".existing")]  # no temp file left behind
