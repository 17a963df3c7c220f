"""AU tools as plug-ins (``audfer.au.tools``): the registry is what detection, ``--source``, ``data.au_source`` and
``docs/au-sources.md`` read; a tool defined in a user's module (here a temporary one) works through ``au-labels``,
``knowledge`` and a training config without touching audfer's files; the former names (``data.openface``,
``--openface-dir``, ``OpenFaceFolder``) still work and say what replaces them."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audfer import AudferError
from audfer.au.folder import read_au_dir
from audfer.au.openface import read_openface
from audfer.au.sources import read_au_file, tools_markdown
from audfer.au.tools import SourceChoices, list_au_tools
from audfer.cli import main
from audfer.config import load_config
from audfer.errors import CheckpointError, ConfigError
from audfer.io import read_expression_table
from audfer.method.knowledge import extract_knowledge
from audfer.synth.openface_writer import write_openface_csv
from audfer.vocab import AUS, AUS_INTENSITY

from conftest import make_frames, tiny_config

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "facemeter_plugin"
TOOL = f"{PLUGIN}:FaceMeter"

#: A made-up tool: brow raise as a 0-1 intensity (AU01), smile as a probability (AU12), blink as 0/1 (AU45); no
#: frame column (frames from the time in ms at 25 fps: a quirk, as a hook) and a row per face (keep the largest).
PLUGIN_SOURCE = """
import numpy as np

from audfer.au.mapping import AUColumn, AUMapping
from audfer.au.tools import AUTool, register_au_tool


class FaceMeter(AUTool):
    name = "facemeter"
    summary = "FaceMeter CSV"
    header_hint = "FaceMeter (t_ms, smile, brow_raise, blink)"
    expected = "FaceMeter output"
    priority = 50
    mapping = AUMapping(
        "facemeter",
        (
            AUColumn("brow_raise", "AU01", "intensity", scale=1.0),
            AUColumn("smile", "AU12", "probability"),
            AUColumn("blink", "AU45", "presence"),
        ),
        timestamp="t_ms",
        timestamp_scale=1e-3,
        confidence="conf",
    )

    def detect(self, header):
        return {"t_ms", "smile", "brow_raise"} <= set(header)

    def frame_numbers(self, path, df, mapping):
        return np.round(df["t_ms"].cast(float).to_numpy() / 40).astype(np.int64) + 1

    def keep_one_face(self, path, df, frame, confidence):
        size = df["face_size"].cast(float).to_numpy()
        order = np.lexsort((-size, frame))
        _, first = np.unique(frame[order], return_index=True)
        return order[first]


register_au_tool(FaceMeter)
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The tool's module in a temporary folder on ``sys.path``, not imported yet; forgotten afterwards."""
    from audfer.au.tools import base

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{PLUGIN}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(PLUGIN, None)
    yield folder
    sys.modules.pop(PLUGIN, None)
    base._REGISTRY.pop("facemeter", None)


def _write_facemeter(path: Path, frames: pl.DataFrame, rng: np.random.Generator) -> None:
    """``frames`` (canonical, from ``make_frames``) as FaceMeter writes them: rows shuffled, no frame column, a
    smaller second face with other values on one frame."""
    n = frames.height
    data = {
        "t_ms": (frames["frame"].to_numpy() - 1) * 40,
        "conf": frames["confidence"].to_numpy(),
        "face_size": np.full(n, 900.0),
        "brow_raise": frames["AU01_r"].to_numpy().astype(np.float64) / 5,
        "smile": frames["AU12_c"].to_numpy().astype(np.float64) * 0.8 + 0.1,
        "blink": frames["AU45_c"].to_numpy().astype(np.int64),
    }
    df = pl.DataFrame(data)
    ghost = df.head(1).with_columns(
        pl.lit(100.0).alias("face_size"), pl.lit(0.99).alias("brow_raise"), (1 - pl.col("blink")).alias("blink")
    )
    df = pl.concat([df, ghost]).sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 30)))
    df.write_csv(path)


def _folders(tmp_path: Path, clips: int = 14) -> tuple[Path, Path, Path]:
    """The same AUs as OpenFace CSVs and as FaceMeter CSVs, and clip labels (two clips per class)."""
    of, fm = tmp_path / "of", tmp_path / "fm"
    of.mkdir()
    fm.mkdir()
    rng = np.random.default_rng(3)
    for c in range(clips):
        frames = make_frames(8, 200 + c, success=[1] * 8)
        write_openface_csv(of / f"{c:05d}.csv", frames)
        _write_facemeter(fm / f"{c:05d}.csv", frames, rng)
    labels = tmp_path / "labels.csv"
    labels.write_text("clip_id,label\n" + "".join(f"{c:05d},{c % 7}\n" for c in range(clips)))
    return of, fm, labels


def _table(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, schema_overrides={"clip_id": pl.String})


# ----------------------------------------------------------------------------------------------- the registry


def test_the_registry_is_what_detection_choices_config_and_docs_read():
    from audfer.cli.common import add_reader_options
    from audfer.config.schema import choices_of

    assert list_au_tools() == ["openface", "pyfeat", "libreface", "table"]  # detection order (priority)
    assert choices_of("data.au_source") == ("auto", *list_au_tools()) == tuple(SourceChoices())
    import argparse

    p = argparse.ArgumentParser()
    add_reader_options(p)
    assert tuple(next(a for a in p._actions if a.dest == "source").choices) == ("auto", *list_au_tools())
    doc = (REPO / "docs" / "au-sources.md").read_text()
    assert tools_markdown() in doc, "docs/au-sources.md: paste audfer.au.sources.tools_markdown()"
    head = doc.split("## How each column")[0]
    for name in list_au_tools():  # and the hand-written table describes each one too
        assert head.count(f"| `{name}` |") == 2, name


def test_a_tool_needs_a_valid_name_and_a_way_to_read(plugin):
    from audfer.au.tools import AUTool, register_au_tool

    class Nameless(AUTool):
        name = "Bad Name"

    with pytest.raises(AudferError, match="name 'Bad Name'; expected lower-case"):
        register_au_tool(Nameless)

    class Unmapped(AUTool):
        name = "unmapped"

    with pytest.raises(AudferError, match="'unmapped' needs a mapping, needs_mapping=True or a read method"):
        register_au_tool(Unmapped)
    assert "unmapped" not in list_au_tools()


# ----------------------------------------------------------------------------------------------- a user's tool


def test_a_tool_from_a_temporary_module_through_au_labels_knowledge_and_a_config(plugin, tmp_path, capsys):
    of, fm, labels = _folders(tmp_path)
    assert "facemeter" not in list_au_tools()

    # au-labels, the tool named as package.module:attribute (imported then, registered by its module)
    a, b = tmp_path / "fm_au.csv", tmp_path / "of_au.csv"
    assert main(["au-labels", str(fm), "--source", TOOL, "--out", str(a)]) == 0
    assert main(["au-labels", str(of), "--out", str(b)]) == 0
    got, ref = _table(a), _table(b)
    assert got["clip_id"].to_list() == ref["clip_id"].to_list()
    for au in ("AU12", "AU45"):  # presence from the probability (>= 0.5) and from the 0/1 column: OpenFace's own
        assert got[au].to_list() == ref[au].to_list(), au
    unknown = [a for a in AUS if a not in ("AU01", "AU12", "AU45")]
    assert all(got[a].null_count() == got.height for a in unknown)  # not measured: unknown, never absent
    side = json.loads((tmp_path / "fm_au.csv.provenance.json").read_text())
    assert side["au_source"]["sources"] == ["facemeter"] and side["au_source"]["masked_aus"] == unknown

    # once imported it is registered: detection asks it too, and --source offers it
    assert "facemeter" in list_au_tools() and "facemeter" in tuple(SourceChoices())
    c = tmp_path / "auto_au.csv"
    assert main(["au-labels", str(fm), "--out", str(c), "--no-cache"]) == 0
    assert _table(c).equals(got)

    # the hooks: frames from t_ms, shuffled rows sorted, the second (smaller) face left out
    frames, source = read_au_file(fm / "00003.csv")
    want = read_openface(of / "00003.csv")
    assert source == "facemeter" and frames["frame"].to_list() == want["frame"].to_list()
    np.testing.assert_allclose(frames["AU01_r"].to_numpy(), want["AU01_r"].to_numpy(), atol=1e-5)
    assert frames["AU45_c"].to_list() == want["AU45_c"].to_list()
    np.testing.assert_allclose(frames["timestamp"].to_numpy(), (want["frame"].to_numpy() - 1) * 0.04)

    # knowledge: §3.1 on the OpenFace frames as the tool sees them (AU01's intensities, 5 x the smile probability
    # for AU12, AU45 presence-only, the rest unknown), computed here from the OpenFace files
    k_fm = tmp_path / "K_fm.csv"
    assert main(["knowledge", "--au-dir", str(fm), "--source", TOOL, "--labels", str(labels), "--out", str(k_fm)]) == 0
    seen = read_au_dir(of, cache=False).frames.with_columns(
        (pl.col("AU12_c").cast(pl.Float32) * 4.0 + 0.5).alias("AU12_r"),
        (pl.col("AU01_r") >= 2.0).cast(pl.Int8).alias("AU01_c"),
        *[pl.lit(None, pl.Float32).alias(f"{a}_r") for a in AUS_INTENSITY if a not in ("AU01", "AU12")],
        *[pl.lit(None, pl.Int8).alias(f"{a}_c") for a in unknown],
    )
    ref = extract_knowledge(seen, labels)
    np.testing.assert_allclose(read_expression_table(k_fm), ref.matrix, atol=1e-5)
    assert json.loads((tmp_path / "K_fm.csv.provenance.json").read_text())["unmeasured_aus"] == [*unknown, "AU45"]

    # a training config names it the same way; its data preparation reads the folder with it
    from audfer.engine.resolve import au_labels_with_source

    cfg = load_config("synthetic_small", [f"data.au_dir={fm}", f"data.au_source={TOOL}", "au.strategy=distinct"])
    assert cfg.data.au_source == TOOL
    prepared, info = au_labels_with_source(cfg)
    assert prepared is not None and info is not None
    assert_frame_equal(prepared.select(got.columns), got, check_dtypes=False)
    assert info["sources"] == ["facemeter"]
    assert info["masked_aus"] == unknown


def test_a_config_naming_a_tool_that_is_not_there_names_the_key(plugin, capsys):
    with pytest.raises(ConfigError, match=r"data\.au_source = 'no_such_module:Tool'.*cannot import 'no_such_module'"):
        load_config("synthetic_small", ["data.au_source=no_such_module:Tool"])
    with pytest.raises(ConfigError, match=rf"module '{PLUGIN}' has no attribute 'Missing'"):
        load_config("synthetic_small", [f"data.au_source={PLUGIN}:Missing"])
    with pytest.raises(ConfigError, match=r"data\.au_source = 'openfaces'.*expected auto, openface, pyfeat"):
        load_config("synthetic_small", ["data.au_source=openfaces"])
    with pytest.raises(SystemExit) as stop:
        main(["au-labels", "x", "--source", "openfaces", "--out", "y.csv"])
    assert stop.value.code == 2
    assert "invalid choice: 'openfaces' (choose from 'auto', 'openface', 'pyfeat'" in capsys.readouterr().err


def test_worker_processes_import_a_registered_tool_module(plugin, tmp_path):
    """A tool registered by importing its module (not named as module:attribute) is known to the spawned processes
    that read a folder of many small files."""
    __import__(PLUGIN)
    fm = tmp_path / "many"
    fm.mkdir()
    rng = np.random.default_rng(0)
    for c in range(40):
        _write_facemeter(fm / f"{c:05d}.csv", make_frames(4, c, success=[1] * 4), rng)
    serial = read_au_dir(fm, cache=False, workers=1)
    parallel = read_au_dir(fm, cache=False, workers=2)  # 40 files / 16 -> 2 spawned processes
    assert set(parallel.sources.values()) == {"facemeter"} and parallel.frames.equals(serial.frames)


def test_a_stored_config_naming_an_au_tool_is_refused_unless_trusted():
    from audfer.trust import check_stored_config, named_code

    stored = {"model": {"name": "former_dfer"}, "data": {"au_source": "evil.module:Tool"}}
    assert named_code(stored) == "evil.module:Tool"
    with pytest.raises(CheckpointError, match=r"ckpt: refused: .*\(data\.au_source='evil\.module:Tool'\)"):
        check_stored_config(stored, "ckpt", trusted=False)
    check_stored_config(stored, "ckpt", trusted=True)
    check_stored_config({"data": {"au_source": "pyfeat"}}, "ckpt", trusted=False)  # a registered name: nothing to run


def test_an_experiment_file_inside_a_model_package_naming_an_au_tool_module_is_refused(plugin, tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "config.json").write_text("{}")
    (pkg / "model.safetensors").write_bytes(b"")
    (pkg / "exp.yaml").write_text(f"base: synthetic_small\ndata:\n  au_source: {TOOL}\n")
    with pytest.raises(ConfigError, match=rf"exp\.yaml: refused: .*\(data\.au_source='{TOOL}'\)"):
        load_config(pkg / "exp.yaml")
    assert PLUGIN not in sys.modules  # refused before anything was imported
    assert load_config(pkg / "exp.yaml", ["model.trust_pickle=true"]).data.au_source == TOOL


@pytest.mark.slow
def test_one_epoch_training_on_labels_from_a_user_tool(plugin, synth, tmp_path):
    from audfer.engine import train

    fm = tmp_path / "fm"
    fm.mkdir()
    rng = np.random.default_rng(1)
    for csv_path in sorted((synth / "OpenFace").glob("*.csv")):
        _write_facemeter(fm / csv_path.name, read_openface(csv_path), rng)
    cfg = tiny_config(synth, tmp_path / "run", f"data.au_dir={fm}", f"data.au_source={TOOL}", "train.epochs=1")
    run = train(cfg, log=lambda m: None)
    sel = json.loads((run / "selection.json").read_text())
    assert sel["au_labels"]["sources"] == ["facemeter"] and sel["au_labels"]["coverage"] == 1.0
    assert sel["au_labels"]["masked_aus"] == [a for a in AUS if a not in ("AU01", "AU12", "AU45")]


# ----------------------------------------------------------------------------------------------- former names


def test_former_names_still_work_and_name_the_new_one(tmp_path, capsys):
    from audfer.au.folder import AUFolder, OpenFaceFolder
    from audfer.config.schema import Config

    assert OpenFaceFolder is AUFolder
    of, _, labels = _folders(tmp_path, clips=7)
    cfg_file = tmp_path / "old.yaml"
    cfg_file.write_text(f"base: synthetic_small\ndata:\n  openface: {of}\n")
    with pytest.warns(FutureWarning, match=r"config old\.yaml: data\.openface is deprecated; use data\.au_dir"):
        cfg = load_config(cfg_file)
    assert cfg.data.au_dir == str(of) and "openface" not in cfg.to_dict()["data"]
    with pytest.warns(
        FutureWarning, match=r"override 'data\.openface=x': data\.openface is deprecated; use data\.au_dir"
    ):
        assert load_config("synthetic_small", ["data.openface=x"]).data.au_dir == "x"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stored config (a run's) is read as it is, silently
        assert Config.from_dict({"data": {"openface": "y", "au_dir": None}}).data.au_dir == "y"
    with pytest.raises(ConfigError, match=r"both data\.openface \('a'\) and data\.au_dir \('b'\) are set"):
        Config.from_dict({"data": {"openface": "a", "au_dir": "b"}})

    k = tmp_path / "K.csv"
    capsys.readouterr()
    assert main(["knowledge", "--openface-dir", str(of), "--labels", str(labels), "--out", str(k)]) == 0
    assert "warning: --openface-dir is deprecated; use --au-dir" in capsys.readouterr().err
    assert k.is_file()
    with pytest.raises(AudferError, match="AU folder not found"):
        read_au_dir(tmp_path / "nowhere")
