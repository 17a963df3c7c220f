"""Project wiring: the README's commands, CI, the demo."""

import re

import numpy as np
import polars as pl

from audfer.cli import main

from conftest import REPO


def _readme_commands():
    return re.findall(r"```bash\n(python3 -m venv[^\n]+)\n```", (REPO / "README.md").read_text())


def test_ci_runs_the_readme_test_command():
    main_cmd, test_cmd = _readme_commands()
    assert "audfer demo" in main_cmd and "pytest" in test_cmd
    assert test_cmd in (REPO / ".ci" / "run").read_text()
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()


def test_demo_writes_every_artefact_and_recovers_the_prior(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--clips", "280", "--seed", "1"]) == 0
    for name in ("clip_labels.csv", "video_au_labels.csv", "pos_weights_global.csv", "pos_weights_distinct.csv",
                 "pos_weights_minor.csv", "K.csv", "K.png", "report.md"):
        assert (out / name).is_file(), name
    assert len(list((out / "openface").glob("*.csv"))) == 280
    k = pl.read_csv(out / "K.csv")
    happy = k.row(0, named=True)
    # the prior makes AU12 (lip corner puller) Happy's strongest AU and rare in Sad
    assert max((v, a) for a, v in happy.items() if a.startswith("AU") and a != "AU28")[1] == "AU12"
    assert happy["AU12"] > k.row(1, named=True)["AU12"]
    corr = float(re.search(r"prior the clips were drawn from \(17 AUs x 7\): \*\*([0-9.]+)", (out / "report.md").read_text()).group(1))
    assert corr > 0.3
    assert "not DFEW results" in (out / "report.md").read_text()
