"""Training reproduces the official runs: pretrained initialisation, per-epoch augmentation that reaches
DataLoader workers, frames in temporal order, the official LR schedules, selection metrics counted as the
test metrics."""

import json
import math
import warnings

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from audfer import AudferError
from audfer.config import load_config
from audfer.data.datasets import frame_paths, order_frames, read_frames
from audfer.engine import train

from conftest import tiny_config

_cfg = tiny_config


def _state(run):
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


# ----------------------------------------------------------------------------------------------- workers
@pytest.mark.slow
def test_two_epochs_give_identical_weights_with_0_and_2_workers(synth, tmp_path):
    extra = ["train.epochs=2", "data.cache=null"]
    a = train(_cfg(synth, tmp_path / "w0", *extra, "data.num_workers=0"), log=lambda m: None, evaluate=False)
    b = train(_cfg(synth, tmp_path / "w2", *extra, "data.num_workers=2"), log=lambda m: None, evaluate=False)
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


@pytest.mark.slow
def test_augmentation_on_the_device_gives_the_same_run_as_on_the_cpu(synth, tmp_path):
    """``data.augment_on=device`` draws in the loader and applies on the training device: the same draws and the same
    pixels, so the same weights (here the device is the CPU: bit for bit; on a GPU, within float rounding)."""
    extra = ["train.epochs=2", "data.cache=null", "data.jitter=0.4", "data.hue=0.1", "data.erasing=0.5"]
    a = train(_cfg(synth, tmp_path / "cpu", *extra, "data.augment_on=cpu"), log=lambda m: None, evaluate=False)
    b = train(
        _cfg(synth, tmp_path / "dev", *extra, "data.augment_on=device", "data.num_workers=2"),
        log=lambda m: None,
        evaluate=False,
    )
    sa, sb = _state(a), _state(b)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("recipe", ["m3dfel", "former_dfer", "mae_dfer"])
def test_each_recipes_deferred_steps_give_the_cpu_paths_pixels(synth, recipe):
    """Every recipe's transform split at its first per-pixel random step: the parameters drawn in the loader, applied
    later, give the CPU path's pixels for the same clips and draws (erasing forced on to be exercised)."""
    import numpy as np

    from audfer.data.transforms import DeferredClips
    from audfer.engine.datamodule import train_transform
    from audfer.models import create_model

    cfg = load_config(f"{recipe}_dfew", ["data.erasing=1.0"] if recipe == "mae_dfer" else [])
    spec = create_model(f"{recipe}_small").input_spec
    transform = train_transform(cfg, spec)
    cpu, device = transform.split_device()
    # former_dfer has no per-pixel random step: only its normalisation moves, so the loader ships uint8 clips
    assert [type(s).__name__ for s in device.steps][:1] == [
        {"m3dfel": "ColorJitter", "former_dfer": "Normalize", "mae_dfer": "RandAugment"}[recipe]
    ]
    clips = [
        torch.randint(0, 256, (spec.frames, 3, 48, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(s))
        for s in range(4)
    ]
    want = torch.stack([transform(c, np.random.default_rng([7, s])) for s, c in enumerate(clips)])
    parts, params = [], []
    for s, c in enumerate(clips):
        rng = np.random.default_rng([7, s])
        x = cpu(c, rng)
        parts.append(x)
        params.append(device.draw_params(tuple(x.shape), rng))
    got = DeferredClips(torch.stack(parts), params).apply(device)
    assert torch.equal(got, want)


@pytest.mark.slow
def test_progress_loggers_and_eval_batch_size_do_not_change_weights_or_metrics(synth, tmp_path):
    import json

    import torch

    from audfer.config.schema import incidental_options
    from audfer.engine import train

    from conftest import tiny_config

    assert {"train.progress", "train.loggers", "train.eval_batch_size", "data.num_workers", "data.cache"} <= set(
        incidental_options()
    )
    a = train(tiny_config(synth, tmp_path / "a", "train.epochs=2", "train.eval_batch_size=null"), log=lambda m: None)
    b = train(
        tiny_config(
            synth,
            tmp_path / "b",
            "train.epochs=2",
            "train.eval_batch_size=3",
            "train.progress=true",
            "train.loggers=[]",
        ),
        log=lambda m: None,
    )
    sa, sb = (torch.load(r / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"] for r in (a, b))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    ma, mb = (json.loads((r / "eval" / "metrics.json").read_text()) for r in (a, b))
    assert (ma["war"], ma["uar"], ma["confusion"]) == (mb["war"], mb["uar"], mb["confusion"])
    assert not (b / "logs").exists() and (a / "logs").exists()  # the loggers did differ


def test_persistent_workers_draw_new_augmentations_every_epoch(synth, tmp_path):
    from audfer.engine.datamodule import loader, make_dataset
    from audfer.engine.resolve import prepare

    cfg = _cfg(synth, tmp_path / "run", "data.cache=null")
    prep = prepare(cfg)
    from audfer.models import create_model

    spec = create_model("former_dfer_small", img_size=32, num_frames=4, width=8).input_spec
    ds = make_dataset(cfg, prep.train, spec, prep.au_labels, train=True)
    dl = loader(ds, 8, train=True, workers=2, seed=0)
    assert dl.persistent_workers
    first = prep.train.table["clip_id"][0]
    sums = []
    for epoch in range(3):
        dl.sampler.set_epoch(epoch)
        for clips, _, _, _, ids in dl:
            if first in ids:
                sums.append(float(clips[ids.index(first)].sum()))
    assert len(sums) == 3 and len(set(sums)) == 3  # the same clip differs from epoch to epoch
    # a worker's draw is the main process's draw for (epoch, index)
    item = ds[(1, ds.ids.index(first))][0]
    item = ds.normalize(item) if ds.normalize is not None else item  # training items leave Normalize to the collate
    assert float(item.sum()) == pytest.approx(sums[1], rel=1e-6)


# ----------------------------------------------------------------------------------------------- pretrained
@pytest.mark.slow
def test_training_one_step_at_lr_0_from_a_checkpoint_keeps_the_checkpoints_weights(synth, tmp_path):
    from audfer.models import create_model

    torch.manual_seed(123)
    donor = create_model("former_dfer_small", au_head=False, img_size=32, num_frames=4, width=8)
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ckpt = tmp_path / "official.pth"  # an official layout: {'state_dict'} with DataParallel's module. prefix
    torch.save({"state_dict": {f"module.{k}": v for k, v in donor.state_dict().items()}}, ckpt)
    lines = []
    run = train(
        _cfg(
            synth,
            tmp_path / "run",
            "train.epochs=1",
            "train.limit_train_batches=1",
            "optim.lr=0.0",
            "optim.warmup_epochs=0",
            f"model.pretrained={ckpt}",
        ),
        log=lines.append,
        evaluate=True,
    )
    state = _state(run)
    for k, v in donor.named_parameters():
        torch.testing.assert_close(state[f"model.{k}"], v.detach(), rtol=0, atol=0, msg=k)
    init = json.loads((run / "init.json").read_text())
    assert init["init"] == "pretrained" and init["load_report"]["loaded"] == len(donor.state_dict())
    assert init["load_report"]["reinitialised"] == ["au_head.bias", "au_head.weight"]
    assert any("initialised from" in m and "tensors loaded" in m for m in lines)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["init"] == "pretrained (official.pth)"
    # an audfer checkpoint initialises a new run too (loss buffers left out, the AU head used)
    from audfer.models import load_checkpoint

    fresh = create_model("former_dfer_small", img_size=32, num_frames=4, width=8)
    report = load_checkpoint(fresh, run / "checkpoints" / "last.ckpt")
    assert report.layout == "audfer training checkpoint" and "criterion.au_loss.knowledge" in report.dropped
    assert report.reinitialised == []


@pytest.mark.slow
def test_a_recipe_with_an_official_init_warns_and_says_from_scratch(synth, tmp_path):
    with pytest.warns(UserWarning, match="FROM SCRATCH"):
        run = train(
            _cfg(
                synth,
                tmp_path / "run",
                "train.epochs=1",
                "train.limit_train_batches=1",
                "model.official_init=torchvision r3d_18 Kinetics-400",
            ),
            log=lambda m: None,
        )
    init = json.loads((run / "init.json").read_text())
    assert init["init"] == "from scratch" and init["official_init"].startswith("torchvision")
    for f in ("selection.json", "eval/metrics.json"):
        text = (run / f).read_text()
        assert "from scratch (official run: torchvision r3d_18 Kinetics-400)" in text
    assert load_config("m3dfel_dfew").model.official_init and load_config("mae_dfer_dfew").model.official_init
    assert load_config("former_dfer_dfew").model.official_init is None  # Former-DFER trains from scratch


# ----------------------------------------------------------------------------------------------- frame order
def _write_frames(folder, names):
    folder.mkdir(parents=True)
    for value, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((8, 8, 3), 10 * (value + 1), np.uint8))


@pytest.mark.parametrize("pattern", ["{}.jpg", "{:05d}.jpg", "00001_{:05d}.jpg", "img_{:05d}.png"])
def test_frames_are_read_in_temporal_order(tmp_path, pattern):
    clip = tmp_path / "clip"
    _write_frames(clip, [pattern.format(i) for i in range(1, 17)])  # written in temporal order, brightness rising
    frames = read_frames(clip)
    means = frames.reshape(16, -1).mean(1)
    assert (np.diff(means) > 0).all(), f"{pattern}: {[p.name for p in frame_paths(clip)]}"


def test_dfew_16f_naming_is_not_sorted_as_text_anywhere(tmp_path):
    from audfer.data.cache import ClipCache
    from audfer.data.datasets import count_frames

    clip = tmp_path / "clip_224x224_16f" / "00001"
    _write_frames(clip, [f"{i}.jpg" for i in range(1, 17)])
    assert [p.name for p in frame_paths(clip)][:3] == ["1.jpg", "2.jpg", "3.jpg"]
    cached = ClipCache(tmp_path / "cache", 8).get(clip)
    assert (np.diff(cached.reshape(16, -1).mean(1)) > 0).all() and count_frames(clip) == 16


def test_mixed_patterns_and_gaps_are_reported(tmp_path):
    from pathlib import Path

    with pytest.raises(AudferError, match="2 naming patterns"):
        order_frames([Path("1.jpg"), Path("img_2.jpg")], "clipA")
    with pytest.raises(AudferError, match="same frame number"):
        order_frames([Path("1.jpg"), Path("01.jpg")], "clipB")
    with pytest.warns(UserWarning, match=r"gaps \(1 frame number"):
        got = order_frames([Path("3.jpg"), Path("1.jpg"), Path("2.jpg"), Path("5.jpg")], "clipC")
    assert [p.name for p in got] == ["1.jpg", "2.jpg", "3.jpg", "5.jpg"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        order_frames([Path(f"{i}.jpg") for i in (10, 9, 11)], "clipD")


# ----------------------------------------------------------------------------------------------- schedules
def _timm_cosine(t, base, lr_min, warmup_lr, warm, total):
    """timm CosineLRScheduler._get_lr with warmup_prefix=False, cycle_limit=1 (written out from its docs)."""
    if t < warm:
        return warmup_lr + t * (base - warmup_lr) / warm
    if t >= total:
        return lr_min
    return lr_min + 0.5 * (base - lr_min) * (1 + math.cos(math.pi * t / total))


def test_m3dfel_schedule_is_timms_cosine_stepped_after_each_iteration():
    from audfer.engine.module import AUDFERModule

    cfg = load_config(
        "m3dfel_dfew",
        [
            "train.epochs=10",
            "optim.warmup_epochs=2",
            "model.name=former_dfer_small",
            "model.kwargs={img_size: 32, num_frames: 4, width: 8}",
            "au.strategy=none",
        ],
    )
    assert cfg.optim.scheduler == "timm-cosine"
    steps_per_epoch = 5
    module = AUDFERModule.from_config(cfg, np.ones((7, 18)).tolist(), None, steps_per_epoch)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    base, total, warm = 5e-4, 50, 10
    for j in range(total):
        # M3DFEL's solver: step j runs with the value timm set after step j - 1 (warmup_lr_init before the first)
        expected = 0.0 if j == 0 else _timm_cosine(j - 1, base, 5e-6, 0.0, warm, total)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15), j
        opt.step()
        sched.step()
    # the cosine spans the whole run: right after warm-up the lr is already below the base
    assert _timm_cosine(warm, base, 5e-6, 0.0, warm, total) < base * 0.98


def test_mae_dfer_schedule_is_its_linspace_warmup_then_restarted_cosine():
    from audfer.engine.schedules import lr_factor

    total, warm, floor = 40, 8, 1e-3
    warmup = np.linspace(0, 1, warm)  # MAE-DFER utils.cosine_scheduler, written out
    rest = [floor + 0.5 * (1 - floor) * (1 + math.cos(math.pi * i / (total - warm))) for i in range(total - warm)]
    expected = np.concatenate([warmup, rest])
    got = [lr_factor("cosine", j, total, warm, floor) for j in range(total)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert load_config("mae_dfer_dfew").optim.scheduler == "cosine"


# ----------------------------------------------------------------------------------------------- selection metrics
def test_validation_uar_counts_only_the_classes_present_like_the_test_uar():
    from audfer.evaluation.metrics import classification_metrics, war_uar

    rng = np.random.default_rng(0)
    y = rng.choice([0, 1, 2, 4], 60)  # classes 3, 5, 6 absent from the split
    pred = np.where(rng.random(60) < 0.6, y, rng.integers(0, 7, 60))
    cm = torch.zeros(7, 7, dtype=torch.long)
    for a, b in zip(y, pred):
        cm[a, b] += 1
    war, uar = war_uar(cm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = balanced_accuracy_score(y, pred)
    assert float(uar) == pytest.approx(ref, abs=1e-6)
    assert float(war) == pytest.approx((y == pred).mean(), abs=1e-6)
    probs = np.eye(7)[pred]
    assert float(uar) == pytest.approx(classification_metrics(probs, y)["uar"], abs=1e-6)


def test_validation_under_ddp_shards_without_duplicates(monkeypatch):
    from audfer.engine import datamodule as engine_data

    seen = []
    for rank in range(3):
        monkeypatch.setattr(engine_data, "rank_world", lambda r=rank: (r, 3))
        shard = list(engine_data.ShardInOrder(10))
        assert len(shard) == len(engine_data.ShardInOrder(10))
        seen += shard
    assert sorted(seen) == list(range(10))  # every clip exactly once: no padded duplicate counted twice


# ----------------------------------------------------------------------------------------------- leakage and mismatches
def test_a_knowledge_matrix_computed_with_test_clips_is_refused(synth, tmp_path):
    from audfer.cli import main

    of, labels = synth / "OpenFace", synth / "clip_labels.csv"
    k_all = tmp_path / "K_all.csv"
    assert main(["knowledge", "--au-dir", str(of), "--labels", str(labels), "--out", str(k_all)]) == 0
    side = json.loads((tmp_path / "K_all.csv.provenance.json").read_text())
    assert side["n_clips"] == 60 and len(side["clip_ids"]) == 60 and len(side["clip_ids_sha256"]) == 64
    with pytest.raises(AudferError, match=r"computed from \d+ clip\(s\) of the synthetic fold 1 test split"):
        train(_cfg(synth, tmp_path / "leak", "train.epochs=1", f"au.knowledge={k_all}"), log=lambda m: None)
    # the same K from fold 1's training clips only is accepted; a deliberate override is recorded
    k_train = tmp_path / "K_train.csv"
    assert (
        main(
            [
                "knowledge",
                "--dataset",
                "dfew",
                "--root",
                str(synth),
                "--fold",
                "1",
                "--au-dir",
                str(of),
                "--out",
                str(k_train),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "K_train.csv.provenance.json").read_text())["split"] == "train"
    from audfer.engine.resolve import prepare

    prep = prepare(_cfg(synth, tmp_path / "ok", f"au.knowledge={k_train}"))
    assert prep.checks["knowledge"]["test_clips"] == 0
    prep = prepare(_cfg(synth, tmp_path / "ok2", f"au.knowledge={k_all}", "au.allow_test_overlap=true"))
    assert prep.checks["knowledge"]["test_clips"] > 0
    # a pos-weight table counted on all clips is refused the same way
    pw = tmp_path / "pw.csv"
    from audfer.method.labels import video_au_labels  # noqa: F401  (the CLI builds them)

    assert main(["au-labels", str(of), "--out", str(tmp_path / "au.csv")]) == 0
    assert (
        main(
            [
                "pos-weights",
                "--au-labels",
                str(tmp_path / "au.csv"),
                "--labels",
                str(labels),
                "--strategy",
                "distinct",
                "--out",
                str(pw),
            ]
        )
        == 0
    )
    with pytest.raises(AudferError, match="pos-weight table was computed from"):
        prepare(_cfg(synth, tmp_path / "pw", f"au.pos_weights={pw}"))


@pytest.mark.slow
def test_per_fold_knowledge_uses_only_the_folds_training_clips(synth, tmp_path):
    from audfer.au.folder import read_openface_dir
    from audfer.data.annotations import dfew_labels
    from audfer.engine.resolve import prepare
    from audfer.method.knowledge import extract_knowledge

    prep = prepare(_cfg(synth, tmp_path / "run", "au.knowledge=per-fold"))
    frames = read_openface_dir(synth / "OpenFace").frames
    ref = extract_knowledge(frames, dfew_labels(synth, 1, "train")).matrix
    np.testing.assert_allclose(prep.knowledge, ref, rtol=1e-12)
    test_ids = set(dfew_labels(synth, 1, "test")["clip_id"].to_list())
    assert not test_ids & set(extract_knowledge(frames, dfew_labels(synth, 1, "train")).clip_ids)


def test_au_labels_that_match_too_few_training_clips_stop_training(synth, tmp_path):
    import polars as pl

    from audfer.cli import main
    from audfer.engine.resolve import prepare

    au = tmp_path / "au.csv"
    assert main(["au-labels", str(synth / "OpenFace"), "--out", str(au)]) == 0
    table = pl.read_csv(au, schema_overrides={"clip_id": pl.String})
    # a spreadsheet stripped the leading zeros: the one clip-id rule still matches them
    table.with_columns(pl.col("clip_id").str.strip_chars_start("0")).write_csv(tmp_path / "stripped.csv")
    prep = prepare(_cfg(synth, tmp_path / "a", f"data.au_labels={tmp_path / 'stripped.csv'}"))
    assert prep.checks["au_coverage"]["share"] == 1.0
    # ids renamed: an error showing ids from both sides; an explicit threshold allows it
    table.with_columns(("clip_" + pl.col("clip_id")).alias("clip_id")).write_csv(tmp_path / "renamed.csv")
    with pytest.raises(AudferError, match=r"AU labels cover 0 of \d+ training clips.*e\.g\. 000\d\d.*e\.g\. clip_000"):
        prepare(_cfg(synth, tmp_path / "b", f"data.au_labels={tmp_path / 'renamed.csv'}"))
    prep = prepare(_cfg(synth, tmp_path / "c", f"data.au_labels={tmp_path / 'renamed.csv'}", "data.min_au_coverage=0"))
    assert prep.checks["au_coverage"]["with_au"] == 0


def test_frame_probabilities_naming_frames_openface_never_wrote_are_an_error(synth, tmp_path):
    import polars as pl

    from audfer.au.folder import read_openface_dir
    from audfer.method.knowledge import extract_knowledge

    frames = read_openface_dir(synth / "OpenFace").frames
    from audfer.io import read_clip_labels

    labels = read_clip_labels(synth / "clip_labels.csv")
    rows = frames.select("clip_id", "frame").with_columns(*[pl.lit(1 / 7).alias(f"p{i}") for i in range(7)])
    extract_knowledge(frames, labels, frame_probs=rows, theta=0.1)  # OpenFace's 1-based frames: fine
    shifted = rows.with_columns(pl.col("frame") - 1)  # 0-based numbering: frame 0 does not exist
    with pytest.raises(AudferError, match=r"not in the OpenFace table \(first: clip \d+, frame 0\)"):
        extract_knowledge(frames, labels, frame_probs=shifted, theta=0.1)


# ----------------------------------------------------------------------------------------------- dry run
@pytest.mark.slow
def test_dry_run_writes_a_checked_plan_and_trains_nothing(synth, tmp_path):
    from audfer.cli import main
    from audfer.data.annotations import dfew_labels
    from audfer.engine.schedules import lr_factor

    out = tmp_path / "plan"
    args = [
        "train",
        "m3dfel_dfew",
        f"data.root={synth}",
        "data.dataset=synthetic",
        "data.frames=null",
        "data.au_labels=null",
        f"out={out}",
        "model.name=former_dfer_small",
        "model.kwargs={img_size: 32, num_frames: 4, width: 8}",
        "train.batch_size=8",
        "train.epochs=10",
        "optim.warmup_epochs=2",
        "--dry-run",
    ]
    with pytest.warns(UserWarning, match="FROM SCRATCH"):
        assert main(args) == 0
    plan = json.loads((out / "plan.json").read_text())
    train_labels = dfew_labels(synth, 1, "train")
    assert (
        plan["clips"]["train"] == train_labels.height and plan["clips"]["test"] == dfew_labels(synth, 1, "test").height
    )
    counts = np.bincount(train_labels["label"].to_numpy(), minlength=7)
    assert list(plan["clips_per_class"]["train"].values()) == counts.tolist()
    assert plan["au"]["au_coverage"]["share"] == 1.0
    steps = train_labels.height // 8
    assert plan["steps_per_epoch"] == steps and plan["total_steps"] == 10 * steps and plan["warmup_steps"] == 2 * steps
    for point in plan["lr"].values():
        expected = 5e-4 * lr_factor("timm-cosine", point["step"], 10 * steps, 2 * steps, 5e-6 / 5e-4, 0.0)
        assert point["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert plan["lr"]["first step"]["lr"] == 0.0 and plan["init_label"].startswith("from scratch")
    assert plan["sampling"]["kind"] == "m3dfel" and any(
        a.startswith("ColorJitter") and "h=0.4" in a for a in plan["augmentation"]
    )
    assert plan["selection"]["rule"] == "last"
    assert plan["augment_on"] == {
        "where": "cpu",
        "loader": ["RandomResizedCrop", "HorizontalFlip"],
        "device": ["ColorJitter", "Normalize"],
    }
    assert not (out / "checkpoints").exists() and not (out / "eval").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.hue=0.7", "data.hue = 0.7"),
        ("data.min_au_coverage=2", "data.min_au_coverage = 2"),
        ("data.randaugment=rand-x7", "data.randaugment"),
        ("data.dataset=list", "data.class_order is not set"),
        ("optim.scheduler=warm", "optim.scheduler"),
    ],
)
def test_new_recipe_options_are_checked(override, message):
    with pytest.raises(AudferError, match=message):
        load_config("m3dfel_dfew", [override])


def test_mae_dfer_classifier_starts_at_init_scale_0001():
    from audfer.models import create_model

    torch.manual_seed(0)
    model = create_model("mae_dfer_small")
    head = model.head.weight.detach()
    # trunc_normal(std 0.02) x 0.001 (MAE-DFER modeling_finetune.py, --init_scale 0.001); other linears keep std 0.02
    assert 0.01e-3 < float(head.std()) < 0.03e-3
    assert 0.015 < float(model.blocks[0].mlp.fc1.weight.detach().std()) < 0.025
