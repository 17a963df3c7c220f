"""Models: official layouts, AU head, shapes, checkpoint loading, cost figures."""

import csv

import pytest
import torch

from audfer import AudferError
from audfer.method.knowledge import paper_knowledge
from audfer.method.losses import AUDFERLoss
from audfer.models import create_model, list_models, load_checkpoint
from audfer.models.complexity import clip_macs, count_parameters, lstm_macs

FULL = {"m3dfel": (46_823_384, 1024), "former_dfer": (18_031_943, 512), "mae_dfer": (84_878_343, 512)}


def _manifest(reference, name):
    with open(reference / "manifests" / f"{name}.tsv") as f:
        return [(r["key"], r["shape"]) for r in csv.DictReader(f, delimiter="\t")]


def _shape(t):
    return "x".join(map(str, t.shape)) if t.ndim else "scalar"


@pytest.mark.parametrize("name", sorted(FULL))
def test_state_dict_equals_official_manifest(reference, name):
    model = create_model(name, au_head=False)
    assert [(k, _shape(v)) for k, v in model.state_dict().items()] == _manifest(reference, name)
    assert count_parameters(model) == FULL[name][0]


@pytest.mark.parametrize("name", sorted(FULL))
def test_au_head_is_one_linear_layer_under_its_own_name(name):
    params, dim = FULL[name]
    model = create_model(name)
    assert (
        isinstance(model.au_head, torch.nn.Linear)
        and model.au_head.in_features == dim
        and model.au_head.out_features == 18
    )
    assert count_parameters(model) == params + dim * 18 + 18
    extra = set(model.state_dict()) - set(create_model(name, au_head=False).state_dict())
    assert extra == {"au_head.weight", "au_head.bias"}


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_forward_batch_one(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    spec = model.input_spec
    x = torch.rand(1, spec.frames, 3, spec.size, spec.size)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        split = model.forward_head(feats)
    assert out.logits.shape == (1, 7) and out.au_logits.shape == (1, 18) and out.features.shape == (1, FULL[name][1])
    torch.testing.assert_close(out.logits, split.logits)
    torch.testing.assert_close(out.au_logits, split.au_logits)


@pytest.mark.parametrize("name", ["m3dfel_small", "former_dfer_small", "mae_dfer_small"])
def test_small_variant_batches_and_au_gradient_reaches_backbone(name):
    torch.manual_seed(0)
    model = create_model(name)
    spec = model.input_spec
    x = torch.rand(3, spec.frames, 3, spec.size, spec.size)
    out = model(x)
    assert out.logits.shape == (3, 7) and out.au_logits.shape == (3, 18)
    labels = torch.tensor([0, 3, 5])
    targets = torch.randint(0, 2, (3, 18)).float()
    loss = AUDFERLoss(paper_knowledge(), None, au_weight=1.0)  # AU loss only
    loss(out.logits, out.au_logits, labels, targets).backward()
    first = next(p for n, p in model.named_parameters() if not n.startswith(("au_head", "fc", "head")))
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert model.__class__.__name__ in ("M3DFEL", "FormerDFER", "MAEDFER")


def test_no_au_head_output_and_wrong_input():
    model = create_model("former_dfer_small", au_head=False)
    out = model(torch.rand(2, 16, 3, 64, 64))
    assert out.au_logits is None
    with pytest.raises(ValueError, match=r"expects clips \(B, 16, 3, H, W\)"):
        model(torch.rand(2, 8, 3, 64, 64))


def test_registry():
    assert {"m3dfel", "former_dfer", "mae_dfer", "m3dfel_small", "former_dfer_small", "mae_dfer_small"} <= set(
        list_models()
    )
    with pytest.raises(AudferError, match="unknown model 'resnet'"):
        create_model("resnet")
    with pytest.raises(AudferError, match="bad override"):
        create_model("m3dfel_small", colour="red")
    m = create_model("mae_dfer_small", num_frames=8, img_size=32, region_size=(2, 2, 2), num_classes=11)
    assert m(torch.rand(1, 8, 3, 32, 32)).logits.shape == (1, 11)


# ---------------------------------------------------------------- checkpoints


def _same(a, b):
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


@pytest.mark.parametrize("layout", ["state_dict", "state_dict_module", "model", "bare"])
def test_checkpoint_layouts_of_the_base_projects(tmp_path, layout):
    torch.manual_seed(1)
    src = create_model("former_dfer_small", au_head=False)
    sd = src.state_dict()
    obj = {
        "state_dict": {"state_dict": sd, "epoch": 3},
        "state_dict_module": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        "model": {"model": sd},
        "bare": sd,
    }[layout]
    torch.save(obj, tmp_path / "ckpt.pth")
    torch.manual_seed(2)
    dst = create_model("former_dfer_small")
    report = load_checkpoint(dst, tmp_path / "ckpt.pth")
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())
    assert report.reinitialised == ["au_head.bias", "au_head.weight"]
    assert any("au_head starts fresh" in m for m in report.messages)


def test_round_trip_with_au_head_and_other_head_shape(tmp_path):
    src = create_model("m3dfel_small", num_classes=11)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "c.pth")
    dst = create_model("m3dfel_small")
    report = load_checkpoint(dst, tmp_path / "c.pth")
    assert any("fc.weight has shape (11, 128)" in m and "re-initialised" in m for m in report.messages)
    assert torch.equal(dst.au_head.weight, src.au_head.weight)
    assert torch.equal(dst.features[0][0].weight, src.features[0][0].weight)


def test_mae_dfer_pretraining_checkpoint(tmp_path):
    src = create_model("mae_dfer_small", au_head=False)
    enc = {f"encoder.{k}": v for k, v in src.state_dict().items() if not k.startswith(("head.", "fc_norm."))}
    enc["encoder.norm.weight"] = torch.ones(64)
    enc["decoder.blocks.0.mlp.fc1.weight"] = torch.zeros(4, 4)
    enc["encoder_to_decoder.weight"] = torch.zeros(4, 4)
    enc["mask_token"] = torch.zeros(1, 1, 4)
    torch.save({"model": enc}, tmp_path / "pretrain.pth")
    dst = create_model("mae_dfer_small")
    report = load_checkpoint(dst, tmp_path / "pretrain.pth")
    assert "pre-training" in report.layout
    assert set(report.reinitialised) == {
        "head.weight",
        "head.bias",
        "fc_norm.weight",
        "fc_norm.bias",
        "au_head.weight",
        "au_head.bias",
    }
    assert "decoder.blocks.0.mlp.fc1.weight" in report.dropped and "encoder.norm.weight" in report.dropped
    assert torch.equal(dst.blocks[1].third_attn.q.weight, src.blocks[1].third_attn.q.weight)


def _torchvision_r3d18_keys(model):
    """torchvision's r3d_18 naming (stem, layer1-4, fc 400) built from our backbone's tensors."""
    out = {}
    for k, v in model.features.state_dict().items():
        i, rest = k.split(".", 1)
        out[("stem" if i == "0" else f"layer{i}") + "." + rest] = v.clone()
    out["fc.weight"], out["fc.bias"] = torch.randn(400, v.shape[0] if v.ndim else 64), torch.zeros(400)
    return out


def test_torchvision_r3d18_into_m3dfel_backbone(tmp_path):
    torch.manual_seed(3)
    donor = create_model("m3dfel_small")
    tv = _torchvision_r3d18_keys(donor)
    assert "stem.0.weight" in tv and "layer4.1.conv2.1.running_var" in tv
    torch.save(tv, tmp_path / "r3d_18-b3b3357e.pth")
    torch.manual_seed(4)
    dst = create_model("m3dfel_small")
    lstm_before = dst.lstm.weight_ih_l0.clone()
    report = load_checkpoint(dst, tmp_path / "r3d_18-b3b3357e.pth")
    assert "r3d_18" in report.layout and set(report.dropped) == {"fc.weight", "fc.bias"}
    assert torch.equal(dst.features[4][1].conv2[0].weight, donor.features[4][1].conv2[0].weight)
    assert torch.equal(dst.lstm.weight_ih_l0, lstm_before)  # untouched


def test_misfit_checkpoint_lists_keys(tmp_path):
    torch.save({"state_dict": create_model("former_dfer_small").state_dict()}, tmp_path / "f.pth")
    with pytest.raises(
        AudferError, match=r"f\.pth: does not fit M3DFEL .*missing \d+: features\.0\.0\.weight.*unexpected"
    ):
        load_checkpoint(create_model("m3dfel_small"), tmp_path / "f.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(AudferError, match="a text file .*not a PyTorch checkpoint"):
        load_checkpoint(create_model("m3dfel_small"), tmp_path / "junk.pth")
    with pytest.raises(AudferError, match="checkpoint not found"):
        load_checkpoint(create_model("m3dfel_small"), tmp_path / "none.pth")


# ---------------------------------------------------------------- cost


def test_lstm_macs_by_hand():
    lstm = torch.nn.LSTM(512, 512, num_layers=2, bidirectional=True)
    assert lstm_macs(lstm, 4) == 41_943_040  # the 41.9 M MACs the flop counter misses


def test_cost_figures_of_the_full_models():
    expected = {
        "m3dfel": 43.19,
        "former_dfer": 8.30,
        "mae_dfer": 49.65,
    }  # measured with the official code (reference §3)
    for name, gmacs in expected.items():
        model = create_model(name)
        with_head, without = clip_macs(model), clip_macs(model, with_au_head=False)
        assert round(without / 1e9, 2) == gmacs
        assert (with_head - without) / without < 1e-4  # the AU head adds < 0.01 %
        assert with_head - without == FULL[name][1] * 18


def test_models_command_prints_measured_figures(capsys):
    from audfer.cli import main

    assert main(["models", "former_dfer_small", "m3dfel_small"]) == 0
    out = capsys.readouterr().out
    for name in ("former_dfer_small", "m3dfel_small"):
        m = create_model(name)
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert f"{count_parameters(m, au_head=False):,d}" in line and f"{count_parameters(m):,d}" in line
        assert f"{clip_macs(m, with_au_head=False) / 1e9:.2f}" in line
    assert "input: 16 frames x 3 x 64 x 64" in out
    assert main(["models", "nope"]) == 2


def test_no_code_outside_a_models_file_tests_a_model_class_or_name_prefix():
    """One home per model: the engine, the checkpoint loader, the cost table and the CLI read what a model declares
    (``sampling``, ``pretrained_filter``, ``paper_table2``, ``recipes``) instead of testing its name."""
    import ast
    from pathlib import Path

    import audfer

    src = Path(audfer.__file__).parent
    homes = {src / "models" / f for f in ("m3dfel.py", "former_dfer.py", "mae_dfer.py")}
    classes = {"M3DFEL", "FormerDFER", "MAEDFER"}
    prefixes = {"m3dfel", "former_dfer", "mae_dfer"}
    found = []
    for path in src.rglob("*.py"):
        if path in homes:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Constant) and c.value in classes for c in [node.left, *node.comparators]
            ):
                found.append(f"{path.name}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "startswith"
                and any(isinstance(c, ast.Constant) and c.value in prefixes for c in ast.walk(node))
            ):
                found.append(f"{path.name}:{node.lineno}")
    assert not found, found


def test_each_model_declares_its_recipe_configs_and_they_ship():
    from audfer.config import load_config, shipped_configs
    from audfer.models import list_models, model_entry

    shipped = set(shipped_configs())
    for name in list_models():
        cls = model_entry(name).builder
        assert set(cls.recipes) <= shipped, (name, cls.recipes)
        for recipe in cls.recipes:
            assert model_entry(load_config(recipe).model.name).builder is cls
    assert {"m3dfel_dfew", "former_dfer_ferv39k", "mae_dfer_mafw"} <= {
        r for n in list_models() for r in model_entry(n).builder.recipes
    }
