"""The typed config: every option declared once (options.py) and used by the loader, the CLI and the docs."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
import yaml

from audfer.cli import main
from audfer.config.load import apply_overrides, defaults, dump_config, load_config, with_values
from audfer.config.render import defaults_yaml, reference_markdown
from audfer.config.schema import (
    AUOptions,
    Config,
    DataOptions,
    choices_of,
    declared,
)
from audfer.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_the_config_reference_in_docs_is_rendered_from_the_declarations():
    assert DOCS.read_text() == reference_markdown(), "run: audfer config --markdown > docs/config.md"
    for dotted, _, doc, check in declared():
        assert doc.strip() and check.want.strip(), dotted
        assert f"| `{dotted}` |" in DOCS.read_text()


def test_the_commented_defaults_are_valid_yaml_holding_exactly_the_declared_defaults(capsys):
    assert yaml.safe_load(defaults_yaml()) == defaults() == Config().to_dict()
    assert main(["config"]) == 0
    assert capsys.readouterr().out == defaults_yaml()
    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == reference_markdown()


def test_a_loaded_config_is_typed_and_frozen_all_the_way_down():
    cfg = load_config("synthetic_small", ["model.kwargs.width=12"])
    assert isinstance(cfg, Config) and isinstance(cfg.data, DataOptions) and isinstance(cfg.au, AUOptions)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.au.lam = 0.5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data = DataOptions()  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.model.kwargs["width"] = 4  # type: ignore[index]
    assert cfg.data.crop_scale == (1.0, 1.0) and cfg.train.loggers == ("csv",)
    assert cfg.model.kwargs == {"img_size": 48, "num_frames": 4, "width": 12}
    assert hash(cfg) == hash(load_config("synthetic_small", ["model.kwargs.width=12"]))


def test_a_config_round_trips_through_its_yaml_and_pickle(tmp_path):
    cfg = load_config("mae_dfer_dfew", ["data.fold=3", "au.minor=[Disgust, Fear]", "train.loggers=[csv, tensorboard]"])
    (tmp_path / "run.yaml").write_text(dump_config(cfg))
    again = load_config(tmp_path / "run.yaml")
    assert again == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # run_many hands configs to worker processes
    assert again.au.minor == ("Disgust", "Fear")


def _bad_value(check):
    """A value of the wrong type for ``check`` (a mapping, except where a mapping is what is wanted)."""
    return 5 if "mapping" in check.want else {"oops": 1}


@pytest.mark.parametrize("dotted", [d for d, *_ in declared()])
def test_every_option_rejects_a_wrong_value_naming_key_value_and_source(dotted):
    check = dict((d, c) for d, _, _, c in declared())[dotted]
    bad = _bad_value(check)
    text = f"{dotted}={yaml.safe_dump(bad, default_flow_style=True).strip()}"
    with pytest.raises(ConfigError) as err:
        load_config("synthetic_small", [text])
    message = str(err.value)
    assert f"{dotted} = " in message and f"from override {text!r}" in message and check.want in message


def test_errors_name_the_config_file_a_bad_value_came_from(tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("base: synthetic_small\ntrain: {epochs: 0}\n")
    with pytest.raises(ConfigError, match=r"train\.epochs = 0 \(from config exp\.yaml\); expected an integer >= 1"):
        load_config(bad)
    bad.write_text("base: synthetic_small\ndata: {fold: 2, flod: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown option 'data\.flod'"):
        load_config(bad)


def test_ranges_and_choices_come_from_the_declarations():
    assert choices_of("au.strategy") == ("none", "global", "distinct", "minor")
    assert choices_of("au.pos_weights") == ("computed", "dfew", "ferv39k", "none")
    assert choices_of("data.sampling") == ("m3dfel", "former_dfer", "mae_dfer", "uniform")
    for ok in ("au.lam=0", "au.lam=1", "data.fold=5", "train.threads=null", "data.randaugment=[9, 2]"):
        load_config("synthetic_small", [ok])
    for bad in ("au.lam=1.5", "data.fold=0", "train.epochs=2.5", "train.progress=1", "data.classes=true"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
            load_config("synthetic_small", [bad])
    with pytest.raises(ConfigError, match="data.randaugment"):
        load_config("synthetic_small", ["data.randaugment=augment-m7"])


def test_constructing_options_directly_is_checked_too():
    with pytest.raises(ConfigError, match=r"au\.lam = -0\.1"):
        AUOptions(lam=-0.1)
    with pytest.raises(ConfigError, match="au.strategy=none"):
        Config(data=DataOptions(dataset="mafw", classes=11))
    assert Config(data=DataOptions(dataset="mafw", classes=11), au=AUOptions(strategy="none")).num_classes == 11


def test_code_changes_a_config_only_through_with_values_which_checks_like_an_override():
    cfg = load_config("synthetic_small")
    changed = with_values(cfg, {"data.fold": 4, "model.kwargs.width": 4}, source="sweep")
    assert changed == apply_overrides(cfg, ["data.fold=4", "model.kwargs.width=4"])
    assert (cfg.data.fold, changed.data.fold, changed.model.kwargs["num_frames"]) == (1, 4, 4)
    with pytest.raises(ConfigError, match=r"data\.fold = 9 \(from sweep\)"):
        with_values(cfg, {"data.fold": 9}, source="sweep")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pos-weights", "--strategy", "none", "--out", "x.csv"], "invalid choice: 'none'"),
        (["ablate", "synthetic_small", "--strategies", "none,half"], "--strategies: expected distinct values among"),
        (["ablate", "synthetic_small", "--lambdas", "0.5,1.5"], "--lambdas: each value must be a number >= 0"),
        (["cv", "synthetic_small", "--folds", "1,6"], "--folds: expected an integer in [1, 5]"),
        (["config", "synthetic_small", "optim.name=adam"], "optim.name = 'adam' (from override"),
    ],
)
def test_the_cli_takes_its_choices_and_ranges_from_the_declarations(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own choices
        status = exc.code
    assert status == 2
    assert expected in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_model_name_and_size_options_are_checked_when_the_config_loads_not_at_the_first_batch():
    with pytest.raises(ConfigError, match=r"model\.kwargs\.widht \(from override 'model\.kwargs\.widht=3'\) is not a "):
        load_config("synthetic_small", ["model.kwargs.widht=3"])
    with pytest.raises(ConfigError, match=r"model\.kwargs\.width = '12px'.*expected a value like its default"):
        load_config("synthetic_small", ["model.kwargs.width=12px"])
    with pytest.raises(ConfigError, match=r"model\.kwargs\.region_size = \[1, 2\]"):
        load_config("mae_dfer_dfew", ["model.kwargs.region_size=[1, 2]"])
    with pytest.raises(ConfigError, match=r"model\.name = 'formerdfer' \(from override .*unknown model"):
        load_config("synthetic_small", ["model.name=formerdfer"])
    assert load_config("mae_dfer_dfew", ["model.kwargs.region_size=[1, 2, 3]"]).model.kwargs["region_size"] == (1, 2, 3)


def test_stride_and_test_views_go_to_whichever_sampler_takes_them_without_naming_one():
    from audfer.data import sampling
    from audfer.engine.datamodule import sampling_kwargs, views_at_test

    assert sampling.sampler_options("mae_dfer") == {"stride", "view", "views"}
    assert all(not sampling.sampler_options(k) for k in ("m3dfel", "former_dfer", "uniform"))
    mae = load_config("mae_dfer_dfew", ["data.stride=2"])
    assert sampling_kwargs(mae, train=True) == {"stride": 2}
    assert sampling_kwargs(mae, train=False, view=1) == {"stride": 2, "view": 1, "views": 2} and views_at_test(mae) == 2
    uniform = with_values(mae, {"data.sampling": "uniform"}, source="test")
    assert sampling_kwargs(uniform, train=False) == {} and views_at_test(uniform) == 1

    def every_kth(n, num=16, rng=None, stride=1):  # a new sampler with a stride, registered by a user
        return sampling.np.minimum(sampling.np.arange(num) * stride, n - 1)

    sampling.register_sampler("every_kth", every_kth)
    try:
        kth = with_values(mae, {"data.sampling": "every_kth"}, source="test")
        assert sampling_kwargs(kth, train=True) == {"stride": 2} and views_at_test(kth) == 1
    finally:
        del sampling.SAMPLERS["every_kth"]
    with pytest.raises(ConfigError, match="every_kth"):
        with_values(mae, {"data.sampling": "every_kth"}, source="test")


def test_what_the_type_audit_found_is_an_error_or_a_warning_not_a_crash_or_a_silent_guess(monkeypatch):
    import polars as pl

    from audfer.au.folder import OpenFaceFolder
    from audfer.predict import video as inference

    folder = OpenFaceFolder(frames=pl.DataFrame({"clip_id": []}), clips=[], sources={"c1": "table"})
    with pytest.raises(ConfigError, match="table source without its AU mapping"):
        folder.availability  # noqa: B018 - the property raises

    class NoRate:  # a container that declares no frame rate
        def get(self, prop):
            return 0.0

        def release(self):
            pass

    monkeypatch.setattr(inference, "_open", lambda path: NoRate())
    with pytest.warns(inference.VideoWarning, match="declares no frame rate; window times assume 25 fps"):
        assert inference.video_fps("clip.mp4") == 25.0


def test_building_a_config_from_a_mapping_refuses_unknown_keys_at_any_level():
    plain = load_config("synthetic_small").to_dict()
    assert Config.from_dict(plain) == load_config("synthetic_small")
    with pytest.raises(ConfigError, match="unknown option 'nmae'"):
        Config.from_dict({**plain, "nmae": "x"})
    with pytest.raises(ConfigError, match="unknown option 'au.lamda'"):
        Config.from_dict({**plain, "au": {**plain["au"], "lamda": 0.5}})
    assert Config.from_dict({"au": {"lam": 0.5}}).au.lam == 0.5  # what is missing takes its default


def test_the_cli_takes_its_choices_from_the_declarations_without_loading_torch_or_lightning():
    import subprocess
    import sys

    code = "import sys, audfer.cli; audfer.cli.build_parser(); print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # `audfer --help` and argument errors stay instant
