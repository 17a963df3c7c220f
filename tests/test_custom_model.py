"""Bring your own backbone: the example of docs/custom-model.md, defined outside the package, goes through
train (with the AU loss), evaluate, predict and ONNX export with no change to audfer."""

import json
import re
from pathlib import Path

import polars as pl
import pytest
import torch

from audfer import AudferError
from audfer.cli import main
from audfer.models import create_model
from audfer.synth.dataset import SynthConfig, generate
from audfer.vocab import AUS, EXPRESSIONS

DOC = Path(__file__).resolve().parents[1] / "docs" / "custom-model.md"


@pytest.fixture
def backbone_module(tmp_path, monkeypatch):
    """The doc's ``mybackbone.py``, word for word, importable as ``mybackbone``."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "mybackbone.py").write_text(code)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_a_users_backbone_gets_both_heads_and_its_input_spec(backbone_module):
    model = create_model("mybackbone:build", width=12)
    assert model.num_features == 12 and (model.input_spec.frames, model.input_spec.size) == (4, 32)
    assert (model.fc.in_features, model.fc.out_features) == (12, 7)
    assert (model.au_head.in_features, model.au_head.out_features) == (12, len(AUS))
    keys = list(model.state_dict())
    assert {k.split(".")[0] for k in keys} == {"backbone", "fc", "au_head"}
    x = torch.rand(2, 4, 3, 32, 32)
    out = model(x)
    feats = model.backbone(x)  # the heads read exactly the backbone's pooled feature
    torch.testing.assert_close(out.logits, model.fc(feats))
    torch.testing.assert_close(out.au_logits, model.au_head(feats))
    assert create_model("mybackbone:build", au_head=False).au_head is None


def test_bad_backbones_are_named(backbone_module):
    (backbone_module / "badbones.py").write_text(
        "import torch\n"
        "class NoD(torch.nn.Module):\n    def forward(self, x):\n        return x.mean(dim=(1, 2, 3, 4))[:, None]\n"
        "class WrongShape(torch.nn.Module):\n    num_features = 8\n    def forward(self, x):\n        return x.flatten(1)\n"
        "def no_d():\n    return NoD()\n"
        "def wrong_shape():\n    return WrongShape()\n"
        "def not_a_module():\n    return 3\n"
        "VALUE = 5\n"
    )
    cases = [
        ("nosuchmodule_xyz:build", "cannot import 'nosuchmodule_xyz'"),
        ("badbones:missing", "has no attribute 'missing'"),
        ("badbones:VALUE", "is not callable"),
        ("badbones:no_d", "integer attribute num_features"),
        ("badbones:not_a_module", "expected a torch.nn.Module"),
        ("mybackbone:build", "refused model.kwargs"),
    ]
    for name, message in cases:
        kwargs = {"depth": 3} if name == "mybackbone:build" else {}
        with pytest.raises(AudferError, match=re.escape(message)):
            create_model(name, **kwargs)
    model = create_model("badbones:wrong_shape")
    with pytest.raises(AudferError, match=r"features of shape \(1, 12288\), expected \(B, 8\)"):
        model(torch.rand(1, 16, 3, 16, 16))


@pytest.mark.slow
def test_a_users_backbone_trains_evaluates_predicts_and_exports(backbone_module, synth, tmp_path):
    import cv2

    run = tmp_path / "run"
    args = [
        "train",
        "synthetic_small",
        f"data.root={synth}",
        f"out={run}",
        "model.name=mybackbone:build",
        "model.kwargs={width: 8}",
        "au.strategy=distinct",
        "train.epochs=2",
        "train.batch_size=8",
        "train.progress=false",
        "train.threads=2",
    ]
    assert main(args) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    preds = pl.read_csv(run / "eval" / "predictions.csv", schema_overrides={"clip_id": pl.String})
    assert metrics["n"] == preds.height > 0 and set(AUS) <= set(preds.columns)
    assert metrics["war"] == pytest.approx((preds["label"] == preds["pred"]).mean())
    assert (run / "epochs.csv").is_file() and pl.read_csv(run / "epochs.csv")["train/au"].min() > 0  # the AU loss ran

    # the checkpoint's config names code to import: refused unless the file is trusted (docs/weights.md)
    assert main(["evaluate", str(ckpt), "--out", str(tmp_path / "ev")]) == 2
    assert main(["evaluate", str(ckpt), "--out", str(tmp_path / "ev"), "--trust-pickle"]) == 0
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["war"] == metrics["war"]

    video = tmp_path / "clip.mp4"
    frames = sorted((synth / "Clip" / "clip_32x32" / preds["clip_id"][0]).glob("*.jpg"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 32))
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    assert (
        main(
            [
                "predict",
                str(video),
                "--checkpoint",
                str(ckpt),
                "--face",
                "full",
                "--out",
                str(tmp_path / "p.json"),
                "--trust-pickle",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "p.json").read_text())[str(video)]["summary"]
    assert summary["expression"] in EXPRESSIONS and sum(summary["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert set(summary["au_probabilities"]) == set(AUS)

    pytest.importorskip("onnxruntime", reason="onnx extra not installed (pip install 'audfer[onnx]')")
    assert main(["export", str(ckpt), "--onnx", str(tmp_path / "mine.onnx"), "--trust-pickle"]) == 0
    from audfer.engine.evaluate import load_module
    from audfer.predict.export import onnx_parity

    diff = onnx_parity(load_module(ckpt, trust_pickle=True).model, tmp_path / "mine.onnx")
    assert set(diff) == {"logits", "au_logits"} and max(diff.values()) <= 1e-4


USER_MODEL = '''
import torch
from torch import nn

from audfer.models import DFERModel, InputSpec


class PairModel(DFERModel):
    """A whole model outside audfer: its own sampling recipe and released-checkpoint layout."""

    sampling = "former_dfer"

    def __init__(self, num_classes=7, au_head=True, *, width=8):
        super().__init__()
        self.input_spec = InputSpec(4, 32)
        self.num_features = width
        self.conv = nn.Conv3d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)
        self._init_au_head(au_head)

    def forward_features(self, x):
        return self.conv(x.transpose(1, 2)).relu().mean(dim=(2, 3, 4))

    def pretrained_filter(self, state, report):
        if not any(k.startswith("net.") for k in state):
            return state, set()
        report.layout += " (the lab's own layout)"
        return {k[len("net."):]: v for k, v in state.items()}, {k for k in self.state_dict() if k.startswith(("fc.", "au_head."))}
'''


@pytest.mark.slow
def test_a_whole_model_outside_the_package_uses_its_own_recipe_and_checkpoint_layout(tmp_path, monkeypatch):
    from audfer.engine.datamodule import default_sampling
    from audfer.models import load_checkpoint

    (tmp_path / "labmodels.py").write_text(USER_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = create_model("labmodels:PairModel", width=6)
    assert type(model).__name__ == "PairModel" and model.num_features == 6 and model.au_head.out_features == len(AUS)
    assert default_sampling("labmodels:PairModel") == "former_dfer"  # declared in its class, not looked up by name
    donor = create_model("labmodels:PairModel", width=6)
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in donor.state_dict().items() if k.startswith("conv.")}},
        tmp_path / "lab.pth",
    )
    report = load_checkpoint(model, tmp_path / "lab.pth")
    assert "the lab's own layout" in report.layout and report.loaded == 2
    assert torch.equal(model.conv.weight, donor.conv.weight) and set(report.reinitialised) == {
        "fc.weight",
        "fc.bias",
        "au_head.weight",
        "au_head.bias",
    }

    synth = generate(tmp_path / "synth", SynthConfig(clips=40, size=32, frames=8, seed=4), workers=1)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "synthetic_small",
                f"data.root={synth}",
                f"out={run}",
                "model.name=labmodels:PairModel",
                "model.kwargs={width: 6}",
                "data.sampling=null",
                "au.strategy=global",
                "train.epochs=1",
                "train.batch_size=8",
                "train.progress=false",
                "train.threads=2",
                "--dry-run",
            ]
        )
        == 0
    )
    plan = json.loads((run / "plan.json").read_text())
    assert plan["sampling"]["kind"] == "former_dfer"


def test_a_users_factory_options_are_checked_when_the_config_loads(backbone_module):
    from audfer.config import load_config
    from audfer.models.registry import size_options

    assert size_options("mybackbone:build") == {"width": 16}
    assert load_config("synthetic_small", ["model.name=mybackbone:build", "model.kwargs={width: 12}"]).model.kwargs == {
        "width": 12
    }
    with pytest.raises(AudferError, match=r"model\.kwargs\.widht .*is not a size option of mybackbone:build"):
        load_config("synthetic_small", ["model.name=mybackbone:build", "model.kwargs={widht: 12}"])
    with pytest.raises(AudferError, match=r"model\.name = 'mybackbone:nothing_here'"):
        load_config("synthetic_small", ["model.name=mybackbone:nothing_here", "model.kwargs={}"])


def test_a_factory_parameter_without_a_default_takes_any_value_at_load(tmp_path, monkeypatch):
    from audfer.config import load_config

    (tmp_path / "bare.py").write_text(
        "import torch\n"
        "class B(torch.nn.Module):\n"
        "    def __init__(self, width):\n        super().__init__()\n        self.num_features = width\n"
        "    def forward(self, x):\n        return x.mean(dim=(1, 2, 3, 4))[:, None].expand(-1, self.num_features)\n"
        "def build(width):\n    return B(width)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config("synthetic_small", ["model.name=bare:build", "model.kwargs={width: 6}"])
    assert cfg.model.kwargs == {"width": 6} and create_model("bare:build", width=6).num_features == 6
