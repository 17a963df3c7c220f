"""Datasets as plug-ins (audfer.data.registry): the built-in modules' declarations, the config checks that read
them, and the example dataset of docs/datasets.md, defined outside the package, trained on for one epoch and turned
into K through `audfer knowledge` with no change to audfer."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from audfer.cli import main
from audfer.config import load_config
from audfer.config.schema import choices_of
from audfer.data.registry import dataset, dataset_of_classes, list_datasets, register_dataset
from audfer.errors import CheckpointError, ConfigError
from audfer.evaluation.metrics import class_names
from audfer.io import read_expression_table
from audfer.synth.openface_writer import write_openface_csv
from audfer.trust import check_stored_config
from audfer.vocab import EXPRESSIONS, MAFW_CLASSES

from conftest import TINY, make_frames

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
SETS = Path(__file__).resolve().parents[1] / "src" / "audfer" / "data" / "sets"


def test_each_builtin_module_declares_its_dataset():
    modules = sorted(p.stem for p in SETS.glob("*.py") if not p.stem.startswith("_"))
    assert modules == ["affwild2", "clips", "dfew", "ferv39k", "lists", "mafw", "ravdess", "synthetic"]
    names = list_datasets()
    assert names == ["affwild2", "clips", "dfew", "ferv39k", "list", "mafw", "ravdess", "synthetic"]
    facts = {n: (dataset(n).folds, dataset(n).classes) for n in list_datasets(training=True)}
    assert facts == {
        "dfew": (5, (7,)),
        "ferv39k": (None, (7,)),
        "list": (None, (7, 11)),
        "mafw": (5, (7, 11)),
        "synthetic": (5, (7,)),
    }
    assert dataset("mafw").class_order[11] == tuple(c.capitalize() for c in MAFW_CLASSES)
    assert dataset("dfew").class_order[7] == EXPRESSIONS
    assert list_datasets(knowledge=True) == ["affwild2", "clips", "dfew", "ferv39k", "mafw", "ravdess", "synthetic"]
    # the clip-id rule: DFEW and MAFW compare all-digit ids as 5-digit numbers, FERV39k as written
    ids = pl.DataFrame({"clip_id": ["25", "025", "Action_Happy_0267"]})
    assert ids.select(dataset("dfew").clip_id("clip_id"))["clip_id"].to_list() == [
        "00025",
        "00025",
        "Action_Happy_0267",
    ]
    assert dataset("ferv39k").clip_id is None


def test_the_config_checks_and_the_cli_read_the_declarations(capsys):
    assert choices_of("data.dataset") == ("dfew", "ferv39k", "list", "mafw", "synthetic")
    assert choices_of("data.classes") == (7, 11)
    assert (
        load_config("synthetic_small", ["data.dataset=mafw", "data.classes=11", "au.strategy=none"]).num_classes == 11
    )
    assert load_config("synthetic_small", ["data.dataset=dfew", "data.classes=11"]).num_classes == 7
    with pytest.raises(ConfigError, match=r"data.dataset = 'clips'.*expected one of dfew, ferv39k, list, mafw"):
        load_config("synthetic_small", ["data.dataset=clips"])
    with pytest.raises(ConfigError, match=r"data.fold = 6 .*expected an integer >= 1 and <= 5"):
        load_config("synthetic_small", ["data.fold=6"])
    with pytest.raises(SystemExit):
        main(["knowledge", "--dataset", "nosuch", "--out", "k.csv"])
    assert "invalid choice: 'nosuch' (choose from affwild2, clips, dfew" in capsys.readouterr().err
    # a dataset registered later is a choice at once, its folds bound data.fold, its class counts data.classes
    builtin_dfew = dataset("dfew")
    try:
        mine = register_dataset("dfew", builtin_dfew.split, folds=3, knowledge=builtin_dfew.knowledge)
        assert dataset("dfew") is mine  # registering under a built-in's name replaces it
        with pytest.raises(ConfigError, match="data.fold = 4; dfew has 3 folds"):
            load_config("synthetic_small", ["data.dataset=dfew", "data.fold=4"])
        register_dataset(builtin_dfew)
        register_dataset("tenfold", lambda root, d, part: None, folds=10, class_order={3: ("A", "B", "C")})
        assert "tenfold" in choices_of("data.dataset") and 3 in choices_of("data.classes")
        with pytest.raises(ConfigError, match="7 basic expressions; with data.classes=3 set au.strategy=none"):
            load_config("synthetic_small", ["data.dataset=tenfold", "data.classes=3"])
        cfg = load_config(
            "synthetic_small", ["data.dataset=tenfold", "data.fold=10", "data.classes=3", "au.strategy=none"]
        )
        assert (cfg.data.fold, cfg.num_classes) == (10, 3)
        assert class_names(3) == ("A", "B", "C")  # reports name its classes in its declared order
        # what a released checkpoint's 3-way head was trained on: the one dataset declaring 3 classes; MAFW for 11
        assert (dataset_of_classes(3), dataset_of_classes(11), dataset_of_classes(7)) == ("tenfold", "mafw", None)
        register_dataset("threeway", lambda root, d, part: None, class_order={3: ("X", "Y", "Z")})
        assert dataset_of_classes(3) is None  # two candidates: not guessed
        with pytest.raises(ConfigError, match="data.fold = 6; synthetic has 5 folds"):
            load_config("synthetic_small", ["data.fold=6"])
        with pytest.raises(ConfigError, match="class_order must map each class count to that many class names"):
            register_dataset("bad", None, class_order={3: ("A", "B")})
    finally:
        from audfer.data import registry

        registry._DATASETS.pop("tenfold", None)
        registry._DATASETS.pop("threeway", None)
        register_dataset(builtin_dfew)


def test_a_stored_config_naming_a_dataset_module_is_refused_unless_trusted():
    stored = {"model": {"name": "former_dfer"}, "data": {"dataset": "planted:evil"}}
    with pytest.raises(CheckpointError, match=r"run.ckpt: refused: .*data.dataset='planted:evil'.*--trust-pickle"):
        check_stored_config(stored, "run.ckpt", trusted=False)
    check_stored_config(stored, "run.ckpt", trusted=True)
    check_stored_config({"data": {"dataset": "dfew"}}, "run.ckpt", trusted=False)


# ------------------------------------------------------------------------------------- a dataset of one's own


@pytest.fixture
def my_dataset(tmp_path, monkeypatch):
    """The doc's ``mydataset.py``, word for word, importable as ``mydataset``, and a toy set in its layout: 14
    training and 7 test clips (each expression twice / once) of 4 frames of 32 px, and one OpenFace CSV per clip
    named ``<clip>_aligned.csv`` with random AU values."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "mydataset.py").write_text(code)
    monkeypatch.syspath_prepend(str(folder))
    import cv2

    root = tmp_path / "my"
    (root / "labels").mkdir(parents=True)
    (root / "au").mkdir()
    rng = np.random.default_rng(0)
    clip = 0
    for part, per_class in (("train", 2), ("test", 1)):
        rows = ["clip,expression"]
        for k, name in enumerate(EXPRESSIONS):
            for _ in range(per_class):
                clip += 1
                cid = f"v{clip:02d}"
                rows.append(f"{cid},{name.lower()}")
                (root / "frames" / cid).mkdir(parents=True)
                for f in range(1, 5):
                    image = np.clip(rng.normal(30 * k + 40, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                    cv2.imwrite(str(root / "frames" / cid / f"{f}.png"), image)
                write_openface_csv(root / "au" / f"{cid}_aligned.csv", make_frames(6, seed=clip))
        (root / "labels" / f"{part}.csv").write_text("\n".join(rows) + "\n")
    yield root
    from audfer.data import registry

    for key in ("mydataset", "mydataset:mydataset"):
        registry._DATASETS.pop(key, None)
    sys.modules.pop("mydataset", None)  # the next test imports (and so registers) it afresh


def _clips_reference(root: Path, out: Path, parts: tuple[str, ...]) -> np.ndarray:
    """K through the built-in ``clips`` dataset: the same AU CSVs under the clips' own names, a clip_labels.csv."""
    au = out.parent / f"{out.stem}_au"
    au.mkdir()
    for path in (root / "au").glob("*.csv"):
        shutil.copy(path, au / path.name.replace("_aligned", ""))
    labels = pl.concat([pl.read_csv(root / "labels" / f"{p}.csv") for p in parts])
    labels.rename({"clip": "clip_id", "expression": "label"}).write_csv(out.parent / f"{out.stem}_labels.csv")
    args = ["knowledge", "--dataset", "clips", "--labels", str(out.parent / f"{out.stem}_labels.csv")]
    assert main([*args, "--au-dir", str(au), "--out", str(out)]) == 0
    return read_expression_table(out)


def test_a_dataset_module_of_ones_own_builds_K_through_audfer_knowledge(my_dataset, tmp_path, capsys):
    root = my_dataset
    out = tmp_path / "K_mine.csv"
    args = ["knowledge", "--dataset", "mydataset:mydataset", "--root", str(root), "--au-dir", str(root / "au")]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().err
    # the rule gave every labelled clip its AU CSV; the 7 test clips' CSVs have no training label
    assert "labelled clips without AU CSV 0; AU clips without label 7" in printed, printed
    assert "clips used 14;" in printed, printed
    mine = read_expression_table(out)
    # the same K as the built-in clips path on the same AU values: the clip-id rule matched every AU file
    np.testing.assert_array_equal(mine, _clips_reference(root, tmp_path / "K_ref.csv", ("train",)))
    both = tmp_path / "K_both.csv"
    assert main([*args, "--include-test", "--out", str(both)]) == 0
    np.testing.assert_array_equal(
        read_expression_table(both), _clips_reference(root, tmp_path / "K_ref2.csv", ("train", "test"))
    )
    assert not np.array_equal(read_expression_table(both), mine)
    # the same dataset named in a knowledge config (`audfer knowledge --config`, the whole §3.1 from one YAML)
    config = tmp_path / "knowledge.yaml"
    config.write_text(
        f"datasets:\n  - name: mydataset:mydataset\n    au_dir: {root / 'au'}\n    root: {root}\n"
        f"out: {tmp_path / 'K_config.csv'}\nshift: 0.5\n"
    )
    assert main(["knowledge", "--config", str(config)]) == 0
    np.testing.assert_array_equal(read_expression_table(tmp_path / "K_config_mydataset.csv"), mine)
    capsys.readouterr()
    no_root = ["knowledge", "--dataset", "mydataset:mydataset", "--au-dir", str(root / "au"), "--out", str(out)]
    assert main(no_root) == 2
    assert (
        capsys.readouterr().err.strip() == "audfer: error: dataset mydataset:mydataset: needs --root <mydataset root>"
    )


def test_a_dataset_module_of_ones_own_trains_one_epoch(my_dataset, tmp_path):
    from audfer.engine import train
    from audfer.engine.resolve import knowledge_for, split_index

    root = my_dataset
    overrides = [f"data.root={root}", f"data.openface={root / 'au'}", f"out={tmp_path / 'run'}", *TINY]
    cfg = load_config(
        "synthetic_small",
        [
            "data.dataset=mydataset:mydataset",
            *overrides,
            "train.epochs=1",
            "optim.warmup_epochs=0",
            "au.knowledge=per-fold",
        ],
    )
    train_index, test_index = split_index(cfg, "train"), split_index(cfg, "test")
    assert (len(train_index), len(test_index)) == (14, 7)
    # per-fold K (§3.1 on the training clips) is the K `audfer knowledge` builds from the same dataset
    out = tmp_path / "K.csv"
    args = ["--root", str(root), "--au-dir", str(root / "au"), "--out", str(out)]
    assert main(["knowledge", "--dataset", "mydataset:mydataset", *args]) == 0
    np.testing.assert_allclose(knowledge_for(cfg, train_index), read_expression_table(out), atol=1e-6)
    run = train(cfg, log=lambda m: None)
    sel = json.loads((run / "selection.json").read_text())
    assert sel["au_labels"]["coverage"] == 1.0  # every clip got its AU labels through the clip-id rule
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 7, metrics.keys()


def test_an_experiment_file_from_a_model_package_cannot_name_a_dataset_module(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    marker = tmp_path / "IMPORTED"
    (code / "planteddata.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(code))
    pkg = tmp_path / "pkg"  # a model package: config.json and model.safetensors, written by someone else
    pkg.mkdir()
    (pkg / "config.json").write_text("{}")
    (pkg / "model.safetensors").write_bytes(b"")
    (pkg / "experiment.yaml").write_text("data:\n  dataset: planteddata:evil\n")
    with pytest.raises(ConfigError, match=r"experiment.yaml: refused: .*data.dataset='planteddata:evil'"):
        load_config(pkg / "experiment.yaml")
    assert not marker.exists() and "planteddata" not in sys.modules
    # the same line in the user's own file imports their module (which registers no 'evil': named in one line)
    (tmp_path / "mine.yaml").write_text("data:\n  dataset: planteddata:evil\n")
    with pytest.raises(ConfigError, match="module 'planteddata' registers no dataset 'evil'"):
        load_config(tmp_path / "mine.yaml")
    assert marker.exists()
    sys.modules.pop("planteddata", None)
