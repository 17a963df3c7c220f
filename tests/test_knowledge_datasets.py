"""§3.1 per source dataset, on tiny trees in each dataset's real layout, checked number by number."""

import numpy as np
import polars as pl
import pytest
import yaml

from audfer import EXPRESSIONS, AudferError
from audfer.cli import main
from audfer.data.annotations import affwild2_frame_labels, dfew_labels, ferv39k_labels, mafw_labels, ravdess_labels
from audfer.io import read_expression_table
from audfer.method.dataset_knowledge import DatasetSpec, knowledge_for_dataset
from audfer.synth.openface_writer import write_openface_csv
from audfer.vocab import INTENSITY_COLUMNS

from conftest import make_frames


def _expected_k(med):
    """K from 7 x 17 medians, straight from §3.1's text (independent of audfer.method.knowledge); AU28 = the mean of
    the other entries after the sigmoid, the rule the shipped matrix follows."""
    med = np.asarray(med, dtype=float)
    k = 1 / (1 + np.exp(-(med - (med.max() + med.min()) / 2)))
    return np.concatenate([k[:, :16], np.full((7, 1), k.mean()), k[:, 16:]], axis=1)


def _write(path, values, start_frame=1):
    """OpenFace CSV whose AU_r column j equals values[t] * 0.05 + 0.01 * j on frame t (inside OpenFace's 0-5 range)."""
    n = len(values)
    df = make_frames(n, success=[1] * n).with_columns(
        pl.Series("frame", np.arange(start_frame, start_frame + n)),
        *[
            pl.Series(c, np.round(np.asarray(values, float) * 0.05 + 0.01 * j, 2))
            for j, c in enumerate(INTENSITY_COLUMNS)
        ],
    )
    write_openface_csv(path, df, "2.2", full=False)


def _med(base):
    return [[base[e] * 0.05 + 0.01 * j for j in range(17)] for e in range(7)]


def test_dfew_training_split_only_by_default(tmp_path):
    root, of = tmp_path / "DFEW", tmp_path / "of"
    (root / "EmoLabel_DataSplit" / "train(single-labeled)").mkdir(parents=True)
    (root / "EmoLabel_DataSplit" / "test(single-labeled)").mkdir(parents=True)
    of.mkdir()
    train = []
    for e in range(7):
        for k in range(2):
            vid = 10 * e + k + 1
            train.append(f"{vid},{e + 1}")
            _write(of / f"{vid:05d}.csv", [e + 1] * 3)
    (root / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv").write_text(
        "video_name,label\n" + "\n".join(train) + "\n"
    )
    (root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv").write_text("video_name,label\n999,1\n")
    _write(of / "999.csv", [50] * 7)  # unpadded stem: still clip 00999
    res, counts = knowledge_for_dataset(DatasetSpec("dfew", of, root=root))
    np.testing.assert_allclose(res.matrix, _expected_k(_med([1, 2, 3, 4, 5, 6, 7])), rtol=1e-6)
    assert counts["AU clips without label"] == 1 and counts["clips used"] == 14
    res_all, _ = knowledge_for_dataset(DatasetSpec("dfew", of, root=root, include_test=True))
    np.testing.assert_allclose(res_all.matrix, _expected_k(_med([50, 2, 3, 4, 5, 6, 7])), rtol=1e-6)


def test_ferv39k_and_mafw_views(tmp_path):
    froot, mroot, of_f, of_m = tmp_path / "FERV39k", tmp_path / "MAFW", tmp_path / "of_f", tmp_path / "of_m"
    (froot / "4_setups" / "All_scenes").mkdir(parents=True)
    (mroot / "split" / "single" / "no_caption" / "set_2").mkdir(parents=True)
    of_f.mkdir()
    of_m.mkdir()
    f_lines, m_lines = [], []
    mafw_names = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    for e in range(7):
        f_lines.append(f"Action/{EXPRESSIONS[e]}/{e:04d} {EXPRESSIONS[e]}")
        _write(of_f / f"Action_{EXPRESSIONS[e]}_{e:04d}.csv", [2 * (e + 1)] * 4)
        m_lines.append(f"{e + 1:05d}.mp4 {mafw_names[e]}")
        _write(of_m / f"{e + 1:05d}.csv", [e + 3] * 4)
    m_lines.append("00100.mp4 contempt")  # no class of ours: left out
    _write(of_m / "00100.csv", [90] * 4)
    (froot / "4_setups" / "All_scenes" / "train_All.csv").write_text("\n".join(f_lines) + "\n")
    (mroot / "split" / "single" / "no_caption" / "set_2" / "train.txt").write_text("\n".join(m_lines) + "\n")
    res, _ = knowledge_for_dataset(DatasetSpec("ferv39k", of_f, root=froot))
    np.testing.assert_allclose(res.matrix, _expected_k(_med([2, 4, 6, 8, 10, 12, 14])), rtol=1e-6)
    res, counts = knowledge_for_dataset(DatasetSpec("mafw", of_m, root=mroot, fold=2))
    np.testing.assert_allclose(res.matrix, _expected_k(_med([3, 4, 5, 6, 7, 8, 9])), rtol=1e-6)
    assert counts["AU clips without label"] == 1


def _ravdess_tree(of):
    # emotion codes 01 neutral .. 08 surprised; ours: value = our label index + 1
    codes = {"01": 2, "03": 0, "04": 1, "05": 3, "06": 6, "07": 5, "08": 4}
    for code, ours in codes.items():
        _write(of / f"03-01-{code}-01-02-01-12.csv", [ours + 1] * 3)
    _write(of / "03-01-02-01-02-01-12.csv", [40] * 5)  # calm


def test_ravdess_calm_dropped_or_neutral(tmp_path):
    of = tmp_path / "of"
    of.mkdir()
    _ravdess_tree(of)
    res, counts = knowledge_for_dataset(DatasetSpec("ravdess", of))
    np.testing.assert_allclose(res.matrix, _expected_k(_med([1, 2, 3, 4, 5, 6, 7])), rtol=1e-6)
    assert counts["clips left out: calm"] == 1
    res, _ = knowledge_for_dataset(DatasetSpec("ravdess", of, calm="neutral"))
    np.testing.assert_allclose(res.matrix, _expected_k(_med([1, 2, 40, 4, 5, 6, 7])), rtol=1e-6)  # 3 x 3, 5 x 40 -> 40
    (of / "clip.csv").write_text((of / "03-01-01-01-02-01-12.csv").read_text())
    with pytest.raises(AudferError, match="clip: not a RAVDESS file name"):
        knowledge_for_dataset(DatasetSpec("ravdess", of))


def _affwild2_tree(of, ann):
    abaw = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
    ours = [2, 3, 5, 6, 0, 1, 4, None]
    values, codes = [], []
    for i, e in enumerate(ours[:7]):
        values += [e + 1] * 3
        codes += [i] * 3
    values += [77, 77, 88]
    codes += [-1, -1, 7]  # unannotated and Other frames carry extreme values
    _write(of / "video1.csv", values)
    (ann / "video1.txt").write_text(",".join(abaw) + "\n" + "\n".join(map(str, codes)) + "\n")


def test_affwild2_frame_level_labels(tmp_path):
    of, ann = tmp_path / "of", tmp_path / "ann"
    of.mkdir()
    ann.mkdir()
    _affwild2_tree(of, ann)
    table, left = affwild2_frame_labels(ann)
    assert left == {"unannotated (-1)": 2, "Other": 1} and table.height == 21
    res, counts = knowledge_for_dataset(DatasetSpec("affwild2", of, annotations=ann))
    np.testing.assert_allclose(res.matrix, _expected_k(_med([1, 2, 3, 4, 5, 6, 7])), rtol=1e-6)
    assert counts["AU frames without annotation"] == 3
    # θ filter on frame-level labels: drop the first frame of every expression run via low probability
    rows = []
    for rec in table.iter_rows(named=True):
        p = [0.01] * 7
        p[rec["label"]] = 0.2 if rec["frame"] % 3 == 1 else 0.9
        rows.append({"clip_id": rec["clip_id"], "frame": rec["frame"], **{f"p{i}": p[i] for i in range(7)}})
    pl.DataFrame(rows).write_csv(tmp_path / "probs.csv")
    res, counts = knowledge_for_dataset(
        DatasetSpec("affwild2", of, annotations=ann, frame_probs=tmp_path / "probs.csv", theta=0.5)
    )
    assert res.frames_per_expression.tolist() == [2] * 7
    assert counts["frames dropped: p(label) <= 0.5"] == 7


def test_whole_procedure_from_a_config(tmp_path, capsys):
    of_a, ann, of_r = tmp_path / "aw", tmp_path / "ann", tmp_path / "rv"
    for d in (of_a, ann, of_r):
        d.mkdir()
    _affwild2_tree(of_a, ann)
    _ravdess_tree(of_r)
    cfg = {
        "shift": "auto",
        "out": "K.csv",
        "heatmap": "K.png",
        "datasets": [
            {"name": "affwild2", "au_dir": "aw", "annotations": "ann"},
            {"name": "ravdess", "au_dir": "rv", "label": "RAVDESS"},
        ],
    }
    (tmp_path / "knowledge.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["knowledge", "--config", str(tmp_path / "knowledge.yaml")]) == 0
    k = _expected_k(_med([1, 2, 3, 4, 5, 6, 7]))
    np.testing.assert_allclose(read_expression_table(tmp_path / "K_affwild2.csv"), k, rtol=1e-6)
    np.testing.assert_allclose(read_expression_table(tmp_path / "K_RAVDESS.csv"), k, rtol=1e-6)
    np.testing.assert_allclose(read_expression_table(tmp_path / "K.csv"), 1 / (1 + np.exp(-(2 * k - 1))), rtol=1e-6)
    assert (tmp_path / "K.png").stat().st_size > 10_000
    err = capsys.readouterr().err
    assert "affwild2: AU clips 1; AU frames 24" in err and "clips left out: calm 1" in err


def test_dataset_cli_and_errors(tmp_path, capsys):
    of = tmp_path / "of"
    of.mkdir()
    _ravdess_tree(of)
    assert main(["knowledge", "--dataset", "ravdess", "--au-dir", str(of), "--out", str(tmp_path / "K.csv")]) == 0
    assert main(["knowledge", "--dataset", "dfew", "--au-dir", str(of), "--out", str(tmp_path / "K2.csv")]) == 2
    assert "dataset dfew: needs --root <DFEW root>" in capsys.readouterr().err


# ------------------------------------------------------------ real split files


def test_real_split_files(fixtures):
    root = fixtures / "annotations" / "official-layout"
    train = dfew_labels(root / "DFEW", 1, "train")
    assert train.height == 9356 and train["clip_id"][0] == "02522" and train["label"][0] == 5
    assert dfew_labels(root / "DFEW", 1, "all").height == 11697
    former = [
        l.split() for l in (fixtures / "annotations" / "former-dfer" / "DFEW_set_1_train.txt").read_text().splitlines()
    ]
    assert dict(zip(train["clip_id"], train["label"])) == {p.rsplit("/", 1)[1]: int(lab) for p, _, lab in former}
    f = ferv39k_labels(root / "FERV39k", "train")
    assert f.height == 31088 and f["clip_id"][0] == "Action_Happy_0267" and f["label"][0] == 0
    m7 = mafw_labels(root / "MAFW", 1, "train")
    m11 = mafw_labels(root / "MAFW", 1, "train", classes=11)
    basic = m11.filter(pl.col("label") < 7)
    assert m7.height == basic.height < m11.height
    # MAFW 11-class "anger" (0) is our Angry (3)
    joined = m7.join(m11, on="clip_id", suffix="_11")
    assert joined.filter(pl.col("label_11") == 0)["label"].unique().to_list() == [3]


def test_bad_split_lines_name_file_and_row(tmp_path):
    p = tmp_path / "DFEW" / "EmoLabel_DataSplit" / "train(single-labeled)"
    p.mkdir(parents=True)
    (p / "set_1.csv").write_text("video_name,label\n1,3\n2,9\n")
    with pytest.raises(AudferError, match=r"set_1\.csv: row 3: '2,9'; expected <video number>,<label 1..7>"):
        dfew_labels(tmp_path / "DFEW")
    (tmp_path / "a.txt").write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\nx\n")
    with pytest.raises(AudferError, match=r"a\.txt: row 3: 'x'"):
        affwild2_frame_labels(tmp_path / "a.txt")
    with pytest.raises(AudferError, match="calm must be"):
        ravdess_labels([], calm="sad")


def test_bad_split_and_class_options(tmp_path):
    with pytest.raises(AudferError, match="split must be train, test or all, got 'val'"):
        ferv39k_labels(tmp_path, "val")
    with pytest.raises(AudferError, match="MAFW classes must be 7"):
        mafw_labels(tmp_path, 1, "train", classes=5)
    with pytest.raises(AudferError, match="DFEW .*split file not found"):
        dfew_labels(tmp_path)
