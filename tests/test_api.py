"""The public API a researcher uses in their own loop: names re-exported lazily from ``audfer``, the torchmetrics
``Metric``s (against sklearn, also synced over two DDP processes), ``AUDFERModule`` around a user's own model and loss,
and every provenance-carrying artifact written with the same fields whichever entry point writes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

import audfer
from audfer.cli import main
from audfer.evaluation.metrics import WARUAR, MaskedAUF1, classification_metrics
from audfer.vocab import AUS


def test_every_public_name_resolves_to_its_home_and_import_audfer_stays_light():
    for name in audfer.__all__:
        obj = getattr(audfer, name)
        home = audfer._HOMES.get(name)
        if home is not None:
            assert obj is getattr(__import__(home, fromlist=[name]), name), name
    assert set(audfer._HOMES) <= set(dir(audfer))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        audfer.nonexistent  # noqa: B018
    code = "import sys, audfer; print(sorted(m for m in ('torch', 'lightning', 'torchmetrics') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _batches(seed=0, n=300, c=7):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c - 1, n)  # the last class never occurs: UAR counts present classes only
    scores = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[y] * (rng.random(n) < 0.6)[:, None]
    return torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(y)


def test_war_uar_metric_equals_sklearn_over_several_updates():
    scores, y = _batches()
    metric = WARUAR(num_classes=7)
    for part in torch.split(torch.arange(len(y)), 64):
        metric.update(scores[part], y[part])
    war, uar = metric.compute()
    pred = scores.argmax(1).numpy()
    assert float(war) == pytest.approx(accuracy_score(y.numpy(), pred), abs=1e-6)
    with pytest.warns(UserWarning):  # sklearn: y_pred has a class y_true lacks; it averages over y_true's classes
        expected = balanced_accuracy_score(y.numpy(), pred)
    assert float(uar) == pytest.approx(expected, abs=1e-6)
    metric.reset()
    metric.update(scores.argmax(1), y)  # class indices are accepted as well
    assert float(metric.compute()[0]) == pytest.approx(float(war))


def _au_batch(seed=1, n=200):
    rng = np.random.default_rng(seed)
    probs = rng.random((n, len(AUS)))
    targets = (rng.random((n, len(AUS))) < 0.3).astype(np.float64)
    mask = rng.random((n, len(AUS))) < 0.8
    mask[:, AUS.index("AU28")] = False  # an AU the tool never measures
    targets[rng.random((n, len(AUS))) < 0.05] = np.nan  # unknown labels
    return probs, targets, mask


def test_masked_au_f1_equals_sklearn_on_the_known_labels_only():
    probs, targets, mask = _au_batch()
    metric = MaskedAUF1()
    for part in np.array_split(np.arange(len(probs)), 3):
        metric.update(torch.as_tensor(probs[part]), torch.as_tensor(targets[part]), torch.as_tensor(mask[part]))
    got = metric.compute().numpy()
    for j, a in enumerate(AUS):
        known = mask[:, j] & ~np.isnan(targets[:, j])
        if not known.any():
            assert np.isnan(got[j]), a
            continue
        want = f1_score(targets[known, j].astype(int), (probs[known, j] > 0.5).astype(int), zero_division=0)
        assert got[j] == pytest.approx(want, abs=1e-6), a
    # the evaluation report is the same metric
    report = classification_metrics(
        np.eye(7)[np.zeros(len(probs), int)], np.zeros(len(probs), int), probs, targets, mask
    )
    assert report["au_f1"]["AU28"] is None and "AU28" in report["au_unknown"]
    assert report["au_f1"]["AU01"] == pytest.approx(float(got[0]), abs=1e-6)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    scores, y = _batches()
    probs, targets, mask = _au_batch()
    war_uar, f1 = WARUAR(num_classes=7), MaskedAUF1()
    war_uar.update(scores[rank::world], y[rank::world])
    f1.update(
        torch.as_tensor(probs[rank::world]), torch.as_tensor(targets[rank::world]), torch.as_tensor(mask[rank::world])
    )
    war, uar = war_uar.compute()  # torchmetrics sums the states over both processes first
    result = {"war": float(war), "uar": float(uar), "f1": f1.compute().tolist()}
    Path(out, f"{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


@pytest.mark.slow
def test_both_metrics_sync_across_two_ddp_processes_to_the_single_process_values(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    scores, y = _batches()
    single = WARUAR(num_classes=7)
    single.update(scores, y)
    war, uar = single.compute()
    probs, targets, mask = _au_batch()
    f1 = MaskedAUF1()
    f1.update(torch.as_tensor(probs), torch.as_tensor(targets), torch.as_tensor(mask))
    for rank in (0, 1):
        got = json.loads((tmp_path / f"{rank}.json").read_text())
        assert got["war"] == pytest.approx(float(war)) and got["uar"] == pytest.approx(float(uar))
        np.testing.assert_allclose(np.array(got["f1"], float), f1.compute().numpy(), atol=1e-6, equal_nan=True)


class _MyModel(audfer.DFERModel):
    """A user's own network: a per-frame linear embedding, mean-pooled over time, with audfer's two heads."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        from audfer.models.base import InputSpec

        self.input_spec = InputSpec(frames=4, size=16)
        self.num_features = 12
        self.num_classes = num_classes
        self.embed = torch.nn.Linear(3 * 16 * 16, 12)
        self.fc = torch.nn.Linear(12, num_classes)
        self._init_au_head(True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x.flatten(2)).mean(1)


def test_audfer_module_trains_a_users_own_model_and_loss(tmp_path):
    import lightning as L

    torch.manual_seed(0)
    model = _MyModel()
    k = audfer.paper_knowledge()
    loss = audfer.AUDFERLoss(k, None, au_weight=0.5)
    module = audfer.AUDFERModule(
        model, loss, {"optim": {"lr": 0.003, "scheduler": "none"}, "train": {"epochs": 5}}, steps_per_epoch=4
    )
    assert module.model is model and module.criterion is loss
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(32, 4, 3, 16, 16, generator=gen)
    y = torch.randint(0, 7, (32,), generator=gen)
    au = (torch.rand(32, 18, generator=gen) < 0.3).float()
    batches = [
        (x[i : i + 8], y[i : i + 8], au[i : i + 8], torch.ones(8, 18, dtype=torch.bool), ["c"] * 8)
        for i in range(0, 32, 8)
    ]

    class Loader:  # any iterable of (clips, labels, AU targets, AU mask, clip ids) batches
        def __iter__(self):
            return iter(batches)

        def __len__(self):
            return len(batches)

    before = loss(model(x).logits, model(x).au_logits, y, au).item()
    trainer = L.Trainer(
        max_epochs=5,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=Loader())
    after = loss(model(x).logits, model(x).au_logits, y, au).item()
    assert after < before  # it trained the user's model with the AU-DFER loss
    path = tmp_path / "mine.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(audfer.AudferError, match="built by its user"):
        audfer.load_module(path)  # it cannot be rebuilt from a config: says what to do instead


def test_from_config_is_what_train_builds():
    cfg = audfer.load_config("synthetic_small")
    module = audfer.AUDFERModule.from_config(cfg, audfer.paper_knowledge().tolist(), None)
    assert module.hparams["model_from_config"] is True
    assert module.model.model_name == cfg.model.name and module.model.au_head is not None
    assert module.criterion.au_weight == cfg.au.lam


# --------------------------------------------------------------------------------------------- artifacts
COMMON = {"what", "dataset", "fold", "split", "source", "audfer_version", "n_clips", "clip_ids_sha256", "clip_ids"}


def _fields(path: Path) -> set[str]:
    return set(json.loads(Path(str(path) + ".provenance.json").read_text()))


@pytest.mark.slow
def test_every_artifact_has_the_same_sidecar_fields_from_the_cli_the_demo_path_and_python(synth, tmp_path):
    from audfer.data.annotations import dfew_labels
    from audfer.method.dataset_knowledge import DatasetSpec
    from audfer.tasks import artifacts
    from audfer.tasks.prepare import au_labels, combined_knowledge_file, knowledge_file, pos_weights_file

    want = {kind: COMMON | set(extra) for kind, extra in artifacts.FIELDS.items()}
    au_dir = synth / "OpenFace"
    labels = tmp_path / "clip_labels.csv"
    dfew_labels(synth, 1, "train").write_csv(labels)
    cli, py = tmp_path / "cli", tmp_path / "py"
    cli.mkdir()
    py.mkdir()
    # the CLI
    assert main(["au-labels", str(au_dir), "--out", str(cli / "au.csv")]) == 0
    assert (
        main(
            [
                "pos-weights",
                "--au-labels",
                str(cli / "au.csv"),
                "--labels",
                str(labels),
                "--strategy",
                "minor",
                "--out",
                str(cli / "pw.csv"),
            ]
        )
        == 0
    )
    assert main(["pos-weights", "--preset", "dfew", "--strategy", "global", "--out", str(cli / "pw_preset.csv")]) == 0
    assert main(["knowledge", "--au-dir", str(au_dir), "--labels", str(labels), "--out", str(cli / "K.csv")]) == 0
    assert (
        main(
            [
                "knowledge",
                "--dataset",
                "dfew",
                "--root",
                str(synth),
                "--au-dir",
                str(au_dir),
                "--out",
                str(cli / "K_dfew.csv"),
            ]
        )
        == 0
    )
    assert (
        main(["knowledge", "--combine", str(cli / "K.csv"), str(cli / "K_dfew.csv"), "--out", str(cli / "K_comb.csv")])
        == 0
    )
    config = tmp_path / "kcfg.yaml"
    config.write_text(
        f"datasets:\n  - {{name: clips, au_dir: {au_dir}, labels: {labels}, label: a}}\n  - {{name: dfew, au_dir: {au_dir}, root: {synth}, label: b}}\nout: {cli / 'K_cfg.csv'}\n"
    )
    assert main(["knowledge", "--config", str(config)]) == 0
    # Python (the same functions the demo calls: tasks.artifacts)
    au_labels(au_dir, py / "au.csv", log=lambda m: None)
    pos_weights_file(py / "au.csv", labels, "minor", py / "pw.csv")
    knowledge_file(DatasetSpec("clips", au_dir, labels=labels), py / "K.csv")
    combined_knowledge_file([py / "K.csv", cli / "K_dfew.csv"], py / "K_comb.csv")
    kinds = {
        "au.csv": "video AU labels",
        "pw.csv": "pos-weights",
        "K.csv": "knowledge",
        "K_comb.csv": "knowledge",
    }
    for name, kind in kinds.items():
        assert _fields(cli / name) == _fields(py / name) == want[kind], name
    for name, kind in {
        "pw_preset.csv": "pos-weights",
        "K_dfew.csv": "knowledge",
        "K_cfg.csv": "knowledge",
        "K_cfg_a.csv": "knowledge",
    }.items():
        assert _fields(cli / name) == want[kind], name
    dfew = json.loads((cli / "K_dfew.csv.provenance.json").read_text())
    assert (dfew["dataset"], dfew["fold"], dfew["split"]) == ("dfew", 1, "train")
    combined = json.loads((cli / "K_comb.csv.provenance.json").read_text())
    assert [i["file"] for i in combined["inputs"]] == [str(cli / "K.csv"), str(cli / "K_dfew.csv")]
    assert set(combined["clip_ids"]) == set(json.loads((cli / "K.csv.provenance.json").read_text())["clip_ids"]) | set(
        dfew["clip_ids"]
    )
    assert combined["inputs"][1]["provenance"]["fold"] == 1


def test_a_run_given_a_combined_k_with_an_input_lacking_provenance_says_its_leak_check_is_partial(synth, tmp_path):
    from audfer.engine.resolve import check_no_test_clips
    from audfer.tasks.prepare import combined_knowledge_file

    k = tmp_path / "K_bare.csv"
    from audfer.io import expression_table, write_csv

    write_csv(expression_table(audfer.paper_knowledge()), k)
    combined_knowledge_file([k, k], tmp_path / "K_comb.csv")
    with pytest.warns(UserWarning, match="without a provenance sidecar .*covers only the other inputs"):
        check_no_test_clips(tmp_path / "K_comb.csv", "K", ["x"], allow=False, where="fold 1")


def test_all_lists_exactly_the_eager_names_and_every_lazy_home():
    eager = {"AUS", "AUS_INTENSITY", "EXPRESSIONS", "AudferError", "__version__"}
    assert set(audfer.__all__) == eager | set(audfer._HOMES) and len(audfer.__all__) == len(set(audfer.__all__))
