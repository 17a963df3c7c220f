"""``audfer package`` and the one loader: train (tiny) -> package -> load from the folder and from a local Hugging Face
cache -> the same logits and AU probabilities as the run's checkpoint; the card's metrics are the run's; released
checkpoints convert; nothing is unpickled; a Hub id that is not cached offline is one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

import audfer
from audfer.cli import main
from audfer.engine import load_module
from audfer.models.hub import resolve_weights
from audfer.weights.package import read_package

from conftest import TINY

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def run(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkgrun") / "run"
    assert main(["train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY, "train.epochs=1"]) == 0
    return out


@pytest.fixture(scope="module")
def pkg(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "model"
    assert main(["package", str(run), "--out", str(out), "--license", "mit"]) == 0
    return out


def _hub_cache(tmp_path, pkg, monkeypatch, repo="someorg/au-model"):
    """The Hugging Face cache layout ``snapshot_download`` reads offline: snapshots/<commit>/ and refs/main."""
    import huggingface_hub.constants as hf

    cache = tmp_path / "hub"
    folder = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(pkg, folder / "snapshots" / COMMIT)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    return repo


def _outputs(model, seed=0):
    spec = model.input_spec
    x = torch.rand(3, spec.frames, 3, spec.size, spec.size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = model.eval()(x)
    return out.logits, None if out.au_logits is None else out.au_logits.sigmoid()


@pytest.mark.slow
def test_a_package_round_trips_from_the_folder_and_from_a_hub_cache(run, pkg, tmp_path, monkeypatch):
    files = {p.name for p in pkg.iterdir()}
    assert files == {
        "model.safetensors",
        "config.json",
        "README.md",
        "K.csv",
        "K.csv.provenance.json",
        "pos_weights.csv",
        "pos_weights.csv.provenance.json",
        ".audfer-output.json",  # what audfer wrote there (--overwrite replaces only such a folder)
    }
    for f in pkg.iterdir():  # nothing that could be a pickle
        assert not f.read_bytes().startswith((b"\x80", b"PK\x03\x04")), f.name
    selection = json.loads((run / "selection.json").read_text())
    ref = load_module(run / selection["checkpoint"]).model
    want_logits, want_au = _outputs(ref)
    assert want_au is not None
    from_folder = audfer.from_pretrained(pkg)
    repo = _hub_cache(tmp_path, pkg, monkeypatch)
    from_hub = audfer.from_pretrained(repo)
    pinned = audfer.load_predictor(f"{repo}@{COMMIT}")
    for model in (from_folder, from_hub, pinned):
        logits, au = _outputs(model)
        torch.testing.assert_close(logits, want_logits, rtol=0, atol=0)
        torch.testing.assert_close(au, want_au, rtol=0, atol=0)
    # the same through create_model(..., pretrained=) and model.pretrained (the init of a new run)
    named = audfer.create_model(ref.model_name, pretrained=pkg, **ref.model_config)
    torch.testing.assert_close(_outputs(named)[0], want_logits, rtol=0, atol=0)
    stored = read_package(pkg)
    np.testing.assert_allclose(
        np.asarray(stored.knowledge), np.asarray(load_module(run / selection["checkpoint"]).hparams["knowledge"])
    )


@pytest.mark.slow
def test_the_card_and_config_say_what_the_run_was_and_its_metrics_equal_metrics_json(run, pkg):
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    config = json.loads((pkg / "config.json").read_text())
    assert config["metrics"] == metrics and config["model"]["au_head"] is True
    assert config["classes"] == list(audfer.EXPRESSIONS) and config["aus"] == list(audfer.AUS)
    assert config["input"]["frames"] == 4 and config["input"]["size"] == 32 and config["input"]["sampling"]
    card = (pkg / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    values = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert values == {"war": metrics["war"], "uar": metrics["uar"]} and front["license"] == "mit"
    for needed in (
        "## What it was trained on",
        "synthetic, fold 1",
        "recipe: `synthetic_small`",
        "selection: last",
        "AU loss: strategy",
        "## Intended use and limits",
        "## Citation",
        "Action Unit Enhance Dynamic",
        f"| WAR | {100 * metrics['war']:.2f} |",
    ):
        assert needed in card, needed
    k_side = json.loads((pkg / "K.csv.provenance.json").read_text())
    assert k_side["what"] == "knowledge"


def test_a_checkpoint_other_than_the_selected_one_is_packaged_without_the_runs_metrics(run, tmp_path):
    """Another checkpoint of the run (here a copy of the selected one under another name, as an epoch checkpoint would
    be) carries its own weights but not the run's evaluation: its card and config must not show the selected
    checkpoint's numbers."""
    import safetensors.torch

    other = run / "checkpoints" / "epoch_other.ckpt"
    shutil.copyfile(run / "checkpoints" / "last.ckpt", other)
    try:
        out = tmp_path / "other"
        assert main(["package", str(other), "--out", str(out)]) == 0
    finally:
        other.unlink()
    config = json.loads((out / "config.json").read_text())
    assert config.get("metrics") is None
    card = (out / "README.md").read_text()
    assert "model-index" not in card.split("---")[1] and "| WAR |" not in card
    weights = safetensors.torch.load_file(out / "model.safetensors")
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]
    assert set(weights) == {k.removeprefix("model.") for k in state if k.startswith("model.")}


def test_a_checkpoint_copied_into_another_run_folder_is_packaged_without_that_runs_metrics(run, tmp_path):
    """The run's selected checkpoint is recognised by content (the SHA-256 in ``selection.json``), not by where it
    lies: another run's checkpoint copied over it is packaged with its own weights and none of this run's metrics;
    for a run from before the hash was recorded, by its stored config (another run's seed)."""
    other = tmp_path / "run"
    shutil.copytree(run, other)
    ck = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    ck["hyper_parameters"]["cfg"]["train"]["seed"] = 7  # another run's checkpoint
    first = next(k for k, v in ck["state_dict"].items() if k.startswith("model.") and v.is_floating_point())
    ck["state_dict"][first] = ck["state_dict"][first] + 1.0
    torch.save(ck, other / "checkpoints" / "last.ckpt")
    assert main(["package", str(other), "--out", str(tmp_path / "copied")]) == 0
    assert json.loads((tmp_path / "copied" / "config.json").read_text())["metrics"] is None
    selection = json.loads((other / "selection.json").read_text())
    assert "sha256" in selection
    del selection["sha256"]  # an older run: told apart by the checkpoint's own config
    (other / "selection.json").write_text(json.dumps(selection))
    assert main(["package", str(other), "--out", str(tmp_path / "old")]) == 0
    assert json.loads((tmp_path / "old" / "config.json").read_text())["metrics"] is None
    # the run's own checkpoint, copied with its folder, keeps its metrics
    shutil.copyfile(run / "checkpoints" / "last.ckpt", other / "checkpoints" / "last.ckpt")
    assert main(["package", str(other), "--out", str(tmp_path / "own")]) == 0
    own = json.loads((tmp_path / "own" / "config.json").read_text())["metrics"]
    assert own == json.loads((run / "eval" / "metrics.json").read_text())


@pytest.mark.slow
def test_predict_evaluate_and_export_take_a_package(run, pkg, tmp_path, fixtures, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "evaluate",
                str(pkg),
                "--data",
                f"data.root={json.loads((pkg / 'config.json').read_text())['config']['data']['root']}",
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "eval-test" / "metrics.json").read_text())
    first = json.loads((run / "eval" / "metrics.json").read_text())
    assert again["war"] == first["war"] and again["uar"] == first["uar"] and again["selection"]["rule"] == "last"
    out = tmp_path / "p.json"
    video = fixtures / "video" / "single_face.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not in the shared fixtures")
    assert main(["predict", str(video), "--checkpoint", str(pkg), "--face", "full", "--out", str(out)]) == 0
    summary = next(iter(json.loads(out.read_text()).values()))["summary"]
    assert set(summary["au_probabilities"]) == set(audfer.AUS)
    pytest.importorskip("onnxruntime", reason="onnx extra not installed")
    assert main(["export", str(pkg), "--onnx", str(tmp_path / "m.onnx")]) == 0


def test_a_released_checkpoint_converts_and_says_it_has_no_au_head(tmp_path, fixtures, capsys):
    released = audfer.create_model("former_dfer_small", au_head=False)
    state = {f"module.{k}": v for k, v in released.state_dict().items()}  # as the base project saves it
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "official.pth")
    out = tmp_path / "pkg"
    assert main(["package", str(tmp_path / "official.pth"), "--model", "former_dfer_small", "--out", str(out)]) == 0
    assert "no AU head" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["au_head"] is False and config["aus"] == [] and config["knowledge"] is None
    assert "AU probabilities are not available" in (out / "README.md").read_text()
    model = audfer.from_pretrained(out)
    torch.testing.assert_close(_outputs(model)[0], _outputs(released)[0], rtol=0, atol=0)
    assert model.au_head is None
    video = fixtures / "video" / "single_face.mp4"
    if video.is_file():
        result = tmp_path / "p.json"
        assert main(["predict", str(video), "--checkpoint", str(out), "--face", "full", "--out", str(result)]) == 0
        assert "AU probabilities: not available" in capsys.readouterr().err
        summary = next(iter(json.loads(result.read_text()).values()))["summary"]
        assert "au_probabilities" not in summary  # never zeros or noise


def test_mae_dfer_style_release_with_a_model_key_converts(tmp_path):
    released = audfer.create_model("mae_dfer_small", au_head=False)
    torch.save({"model": released.state_dict()}, tmp_path / "mae.pth")
    assert main(["package", str(tmp_path / "mae.pth"), "--model", "mae_dfer_small", "--out", str(tmp_path / "p")]) == 0
    torch.testing.assert_close(
        _outputs(audfer.from_pretrained(tmp_path / "p"))[0], _outputs(released)[0], rtol=0, atol=0
    )


def test_a_hub_id_not_in_the_cache_offline_is_one_line(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(
        audfer.AudferError,
        match=r"nobody/nothing \(revision v2\): not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
    ):
        resolve_weights("nobody/nothing@v2")
    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 32))
    writer.write(np.zeros((32, 32, 3), np.uint8))  # a real video: every input is checked before the model loads
    writer.release()
    assert (
        main(["predict", str(tmp_path / "v.mp4"), "--checkpoint", "nobody/nothing", "--out", str(tmp_path / "o.json")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nobody/nothing (revision main)" in err[0]


def test_packaging_never_unpickles_and_keeps_an_existing_folder(tmp_path, capsys):
    marker = tmp_path / "MARKER"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": Planted()}, tmp_path / "evil.ckpt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["package", str(tmp_path / "evil.ckpt"), "--out", str(tmp_path / "new")]) == 2
    assert not marker.exists() and "refused" in capsys.readouterr().err
    assert main(["package", str(tmp_path / "evil.ckpt"), "--out", str(out)]) == 2
    assert (out / "keep.txt").read_text() == "mine" and "not empty" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "new").exists()
