"""Models: the generic checks every registered model gets, official layouts, checkpoint loading, cost figures.

The generic checks are parametrised over ``list_models()`` as it stands when this file is collected (as timm's model
tests are), so a model registered by audfer, or by a plug-in imported before collection, is tested without a line
here (``test_a_model_registered_from_another_module_gets_the_generic_checks``)."""

import csv
import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audfer import AudferError
from audfer.errors import InputError
from audfer.method.knowledge import paper_knowledge
from audfer.method.losses import AUDFERLoss
from audfer.models import DFERModel, create_model, list_models, load_checkpoint, model_entry
from audfer.models.complexity import clip_macs, count_parameters, lstm_macs

#: every registered model, read at collection
MODELS = list_models()
#: the official models' parameters without the AU head and pooled feature width (the official code's, by hand)
FULL = {"m3dfel": (46_823_384, 1024), "former_dfer": (18_031_943, 512), "mae_dfer": (84_878_343, 512)}
#: the backward check runs on models up to this size (as timm's tests skip big models there); a full-size model
#: shares its class with a small registered variant, which gets it
BACKWARD_MAX_PARAMS = 5_000_000
REPO = Path(__file__).resolve().parents[1]


def _manifest(reference, name):
    with open(reference / "manifests" / f"{name}.tsv") as f:
        return [(r["key"], r["shape"]) for r in csv.DictReader(f, delimiter="\t")]


def _shape(t):
    return "x".join(map(str, t.shape)) if t.ndim else "scalar"


@functools.cache
def _built(name: str, au_head: bool = True, num_classes: int = 7) -> DFERModel:
    """One build per model and head setting (full-size models take seconds); eval mode, read only."""
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes, au_head=au_head).eval()


def _clip(model: DFERModel, batch: int, frames: int | None = None) -> torch.Tensor:
    spec = model.input_spec
    return torch.rand(batch, frames or spec.frames, 3, spec.size, spec.size, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- generic checks, every registered model


@pytest.mark.parametrize("name", MODELS)
def test_builds_as_declared_with_its_au_head_as_one_linear_layer(name):
    model, bare = _built(name), _built(name, au_head=False)
    spec, dim = model.input_spec, model.num_features
    assert isinstance(model, DFERModel) and model.model_name == name and model.model_config["au_head"] is True
    assert all(isinstance(v, int) and v > 0 for v in (spec.frames, spec.size, dim))
    assert isinstance(model.au_head, torch.nn.Linear)
    assert (model.au_head.in_features, model.au_head.out_features) == (dim, 18)
    assert bare.au_head is None
    assert set(model.state_dict()) - set(bare.state_dict()) == {"au_head.weight", "au_head.bias"}
    assert set(bare.state_dict()) <= set(model.state_dict())
    assert count_parameters(model) == count_parameters(bare) + dim * 18 + 18
    assert count_parameters(model, au_head=False) == count_parameters(bare)
    cost = model_entry(name).cost
    if cost is not None:  # declared for `audfer models`; the MACs are recomputed by tests/test_model_costs.py
        assert (cost.params, cost.params_au, cost.input) == (
            count_parameters(bare),
            count_parameters(model),
            spec.describe(),
        )


@pytest.mark.parametrize("name", MODELS)
def test_forward_is_features_then_head_at_its_input_spec(name):
    model = _built(name)
    small = count_parameters(model) <= BACKWARD_MAX_PARAMS
    batch, classes = (2, 5) if small else (1, 7)  # a full-size model is not built once more for another head
    x = _clip(model, batch)
    with torch.no_grad():
        out = model(x)
        split = model.forward_head(model.forward_features(x))
        other = _built(name, au_head=False, num_classes=classes)(x)
    assert out.logits.shape == (batch, 7) and out.au_logits.shape == (batch, 18)
    assert out.features.shape == (batch, model.num_features)
    assert all(torch.isfinite(t).all() for t in (out.logits, out.au_logits, out.features))
    torch.testing.assert_close(out.logits, split.logits)
    torch.testing.assert_close(out.au_logits, split.au_logits)
    assert other.logits.shape == (batch, classes) and other.au_logits is None
    frames = model.input_spec.frames
    with pytest.raises(InputError, match=rf"expects clips \(B, {frames}, 3, H, W\)"):
        model(_clip(model, 1, frames=frames + 1))


@pytest.mark.parametrize("name", MODELS)
def test_the_au_loss_alone_trains_the_backbone(name):
    if count_parameters(_built(name)) > BACKWARD_MAX_PARAMS:
        pytest.skip(f"{name}: over {BACKWARD_MAX_PARAMS:,d} parameters, its class is checked at a small size")
    torch.manual_seed(0)
    model = create_model(name)
    out = model(_clip(model, 3))
    targets = torch.tensor([[1.0, 0.0] * 9, [0.0, 1.0] * 9, [1.0] * 18])
    loss = AUDFERLoss(paper_knowledge(), None, au_weight=1.0)  # AU loss only
    loss(out.logits, out.au_logits, torch.tensor([0, 3, 5]), targets).backward()
    head = getattr(model, model.classifier_name)
    heads = {id(p) for p in [*model.au_head.parameters(), *head.parameters()]}
    backbone = [(n, p) for n, p in model.named_parameters() if id(p) not in heads]
    assert backbone and backbone[0][1].grad is not None and backbone[0][1].grad.abs().sum() > 0, backbone[0][0]
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in head.parameters())  # expression loss weight 0


@pytest.mark.parametrize("name", MODELS)
def test_its_declared_sampler_gives_the_frames_its_input_spec_asks_for(name):
    from audfer.data.sampling import SAMPLERS, sample_indices

    model = _built(name)
    frames = model.input_spec.frames
    assert model.sampling in SAMPLERS  # a name data.sampling accepts: its own recipe, another model's or a sampler's
    for n in (1, frames - 1, frames, 3 * frames + 1):
        if n < 1:
            continue
        test = sample_indices(model.sampling, n, frames)
        np.testing.assert_array_equal(test, sample_indices(model.sampling, n, frames))  # deterministic at test
        for idx in (test, sample_indices(model.sampling, n, frames, np.random.default_rng(n))):
            assert len(idx) == frames and idx.min() >= 0 and idx.max() <= n - 1, (n, idx)


@pytest.mark.parametrize("name", MODELS)
def test_its_declared_decay_layers_recurrent_steps_and_recipes_are_usable(name):
    from audfer.config import load_config, shipped_configs

    model = _built(name)
    depth = model.num_decay_layers()
    assert isinstance(depth, int) and depth >= 0
    for n, p in model.named_parameters():
        assert 0 <= model.decay_layer(n) <= depth + 1, n
        assert isinstance(model.no_weight_decay(n, p), bool)
        if n.endswith(".bias"):
            assert model.no_weight_decay(n, p), n
    steps = model.recurrent_steps()
    assert isinstance(steps, int) and steps >= 1
    assert model.paper_table2 is None or (
        isinstance(model.paper_table2[0], float) and isinstance(model.paper_table2[1], str)
    )
    assert set(model.recipes) <= set(shipped_configs()), model.recipes
    for recipe in model.recipes:
        assert model_entry(load_config(recipe).model.name).builder is type(model)


TOY_MODELS = """
import torch
from torch import nn

from audfer.models import DFERModel, InputSpec, register_model


class Toy(DFERModel):
    sampling = "{good}"  # its own recipe: segments of 4 frames
    sampler = "segments"
    sampler_options = {{"per_segment": 4}}

    def __init__(self, num_classes=7, au_head=True, *, width=4, heads_right=True):
        super().__init__()
        self.input_spec = InputSpec(8, 16)
        self.num_features = width
        self.conv = nn.Conv3d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)
        self._init_au_head(au_head)
        self.heads_right = heads_right

    def forward_features(self, x):
        return self.conv(x.transpose(1, 2)).relu().mean(dim=(2, 3, 4))

    def forward_head(self, features):
        out = super().forward_head(features)
        if not self.heads_right:  # a bug the generic checks must catch: the split differs from the whole forward
            out.logits = out.logits + 1
        return out

    def forward(self, x):
        self._check_input(x)
        return super().forward_head(self.forward_features(x))


register_model("{good}", Toy, "a toy registered from outside audfer")
register_model("{bad}", Toy, "the same toy with a head bug", heads_right=False)
"""


def test_a_model_registered_from_another_module_gets_the_generic_checks(tmp_path):
    """A module outside audfer registers two toy models (one with a bug) before this file is collected: both are in
    the parametrisation without a line here, the good one passes every generic check, the buggy one fails one."""
    good, bad = "toy_plugin_model", "toy_plugin_buggy"
    (tmp_path / "toy_plugin.py").write_text(TOY_MODELS.format(good=good, bad=bad))
    env_path = f"{tmp_path}:{REPO / 'src'}"
    cmd = [sys.executable, "-m", "pytest", str(Path(__file__)), "-p", "toy_plugin", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*cmd, "-k", "toy_plugin", "-rA", "-m", "not slow"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": env_path},
        timeout=300,
    )
    outcome = {}
    for status, test in re.findall(r"^(PASSED|FAILED|SKIPPED|ERROR)\s+\S+::(\S+)", run.stdout, re.M):
        outcome[test] = status
    generic = [
        "test_builds_as_declared_with_its_au_head_as_one_linear_layer",
        "test_forward_is_features_then_head_at_its_input_spec",
        "test_the_au_loss_alone_trains_the_backbone",
        "test_its_declared_sampler_gives_the_frames_its_input_spec_asks_for",
        "test_its_declared_decay_layers_recurrent_steps_and_recipes_are_usable",
    ]
    for test in generic:
        assert outcome.get(f"{test}[{good}]") == "PASSED", (test, run.stdout[-3000:], run.stderr[-2000:])
    assert outcome[f"test_forward_is_features_then_head_at_its_input_spec[{bad}]"] == "FAILED"
    assert run.returncode == 1  # the buggy toy fails; nothing else ran under -k


def test_a_models_declared_recipe_is_a_data_sampling_choice_resolved_through_the_registry(monkeypatch):
    """``data.sampling: <model>`` picks the sampler that model's class declares, with the options it fixes; the
    engine's sampler and option look-ups read the declaration, not a table naming models."""
    from audfer.config import load_config
    from audfer.data import sampling
    from audfer.engine.datamodule import sampling_kwargs, sampling_of
    from audfer.models import registry

    class Quads(DFERModel):
        sampling = "quads_toy"
        sampler = "segments"
        sampler_options = {"per_segment": 4}

    monkeypatch.setitem(registry._REGISTRY, "quads_toy", registry.ModelEntry("quads_toy", Quads))
    assert list(sampling.SAMPLERS)[-2:] == ["quads_toy", "uniform"]  # after the shipped recipes, before uniform
    assert sampling.sampler_options("quads_toy") == frozenset()
    for n in (3, 40, 97):
        np.testing.assert_array_equal(sampling.sample_indices("quads_toy", n, 16), sampling.segment_indices(n, 4, 4))
        rng_a, rng_b = np.random.default_rng(n), np.random.default_rng(n)
        np.testing.assert_array_equal(
            sampling.sample_indices("quads_toy", n, 16, rng_a), sampling.segment_indices(n, 4, 4, rng_b)
        )
    cfg = load_config("synthetic_small", ["data.sampling=quads_toy"])
    assert sampling_of(cfg) == "quads_toy" and sampling_kwargs(cfg, train=False) == {}
    with pytest.raises(AudferError, match="16 frames is not a multiple of 3 per segment"):
        sampling.sample_indices("quads_toy", 40, 16, per_segment=3)
    Quads.sampler = "zigzag"
    with pytest.raises(AudferError, match="model 'quads_toy' declares sampler 'zigzag'"):
        sampling.sample_indices("quads_toy", 40, 16)


def test_no_registered_model_is_named_in_data_or_engine():
    """``data/`` and ``engine/`` read what a model declares (``DFERModel.sampling``, ``sampler``, ``no_weight_decay``,
    ``decay_layer``...): none of their lines names a registered model (its registered name as written, e.g. a
    sampler key) or uses a registered model's class."""
    import ast

    import audfer

    src = Path(audfer.__file__).parent
    names = sorted(list_models(), key=len, reverse=True)
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, names)) + ")")
    classes = {e.builder.__name__ for e in map(model_entry, names) if isinstance(e.builder, type)}
    hits = []
    for folder in ("data", "engine"):
        for path in sorted((src / folder).rglob("*.py")):
            text = path.read_text()
            hits += [
                f"{path.name}:{i}: {line.strip()}"
                for i, line in enumerate(text.splitlines(), 1)
                if pattern.search(line)
            ]
            for node in ast.walk(ast.parse(text)):
                used = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
                if isinstance(node, ast.alias):
                    used = node.name.rpartition(".")[2]
                if used in classes:
                    hits.append(f"{path.name}:{getattr(node, 'lineno', '?')}: uses {used}")
    assert not hits, hits
    assert pattern.search('sample_indices("former_dfer", n)') and pattern.search("m3dfel_small")  # the check can fail


def test_the_no_decay_rule_is_the_models_and_the_engine_groups_by_it():
    """``optim.no_decay_norms`` exempts what the model's ``no_weight_decay`` says: vectors, biases and learned tokens
    by default (Former-DFER's class token, MAE-DFER's region tokens; Former-DFER's 3-D position embedding decays), and
    a model's own rule when it declares one."""
    from audfer.engine.module import AUDFERModule

    def exempt(model):
        return {n for n, p in model.named_parameters() if model.no_weight_decay(n, p)}

    former, mae = _built("former_dfer_small"), _built("mae_dfer_small")
    assert "t_former.cls_token" in exempt(former) and "s_former.pos_embedding" not in exempt(former)
    assert "lg_region_tokens" in exempt(mae) and "patch_embed.proj.weight" not in exempt(mae)

    class NoExemptions(type(_built("m3dfel_small"))):
        def no_weight_decay(self, name, param):
            return False

    torch.manual_seed(0)
    plain, own = create_model("m3dfel_small"), NoExemptions(width=8, img_size=64)
    loss = AUDFERLoss(paper_knowledge(), None)
    cfg = {"optim": {"no_decay_norms": True, "weight_decay": 0.05}}
    for model, exempted in ((plain, exempt(plain)), (own, set())):
        groups, _ = AUDFERModule(model, loss, cfg)._param_groups()
        ids = {id(p): n for n, p in model.named_parameters()}
        got = {ids[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
        assert got == exempted
    assert {"fc.bias", "features.0.1.weight"} <= exempt(plain)  # a bias, a batch-norm weight


def test_official_models_are_the_published_layouts():
    assert sorted(n for n in MODELS if model_entry(n).official) == sorted(FULL)


@pytest.mark.parametrize("name", sorted(FULL))
def test_state_dict_equals_official_manifest(reference, name):
    model = _built(name, au_head=False)
    assert [(k, _shape(v)) for k, v in model.state_dict().items()] == _manifest(reference, name)
    assert count_parameters(model) == FULL[name][0] and model.num_features == FULL[name][1]


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


def test_the_shipped_recipes_are_declared_by_their_models():
    declared = {r for n in list_models() for r in model_entry(n).builder.recipes}
    assert {"m3dfel_dfew", "former_dfer_ferv39k", "mae_dfer_mafw"} <= declared
