"""Training throughput of the demo's model: the real data pipeline against tensors already in memory.

All figures come from one run on the same synthetic clips (``audfer synth`` at the demo's size), the demo's
config (``synthetic_small``: model, batch size, augmentation, clip cache) and the same number of steps:

1. limit: forward + backward + AdamW step on batches already in memory (decoded, augmented, stacked);
2. pipeline: the same steps fed by the real ``DataLoader`` (clip cache warm, as from the demo's second
   epoch on: frame sampling, random resized crop, flip, colour jitter, normalisation, collation);
3. data only: the ``DataLoader`` alone, no model (what the pipeline costs by itself).

Goal: the pipeline costs at most 10 % on top of the limit (``pipeline / limit - 1 <= 0.10``).

    python benchmarks/bench_train_throughput.py [--clips 1000 --epochs 2 --threads 1 --workers 0]

With ``--workers 1`` the pipeline runs in a loader process beside the step: on a spare core it hides
behind the step, but the demo's two runs side by side leave no spare core, so the default measures the
pipeline in the training process, where its cost is real.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--clips", type=int, default=1500, help="clips rendered (4/5 are the training fold; the demo: 1500)"
    )
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs of each kind (medians are printed)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: what each of the demo's runs side by side uses)",
    )
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the config's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from audfer.config import load_config
    from audfer.engine.datamodule import loader, make_dataset, steps_per_epoch
    from audfer.engine.module import AUDFERModule
    from audfer.engine.resolve import prepare
    from audfer.synth.dataset import SynthConfig, generate
    from audfer.tasks.demo import DEMO_SYNTH

    with tempfile.TemporaryDirectory() as tmp:
        synth = Path(tmp) / "synth"
        generate(
            synth, SynthConfig(clips=args.clips, **{k: v for k, v in DEMO_SYNTH.items() if k != "clips"}), workers=1
        )
        cfg = load_config(
            "synthetic_small",
            [f"data.root={synth}", f"out={tmp}/run", "au.strategy=none"]
            + ([f"data.num_workers={args.workers}"] if args.workers is not None else []),
        )
        t = cfg.train
        prep = prepare(cfg)
        module = AUDFERModule.from_config(cfg, prep.knowledge.tolist(), None, steps_per_epoch(len(prep.train), t))
        model, criterion = module.model, module.criterion
        opt = module.configure_optimizers()["optimizer"]  # the run's own optimiser (param groups, foreach)
        ds = make_dataset(cfg, prep.train, model.input_spec, prep.au_labels, train=True)
        dl = loader(ds, t.batch_size, train=True, workers=cfg.data.num_workers, seed=t.seed)

        def step(batch) -> None:
            clips, labels, au, mask, _ = batch
            out = model(clips)
            loss = criterion.components(out.logits, out.au_logits, labels, au, mask).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def epoch_of(epoch: int):
            dl.sampler.set_epoch(epoch)
            return iter(dl)

        model.train()
        batches = list(epoch_of(0))  # fills the clip cache; kept as the in-memory batches of the limit
        for b in batches[:2]:  # warm-up (allocator, kernels)
            step(b)

        # epochs alternate between the kinds (limit, pipeline, data only, limit, ...), so that a slow spell of the
        # machine hits all three alike; each figure is the median epoch of its kind
        times: dict[str, list[float]] = {"limit": [], "pipeline": [], "data": []}
        for e in range(args.epochs):
            t0 = time.perf_counter()
            for b in batches:
                step(b)
            times["limit"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for b in epoch_of(1 + e):
                step(b)
            times["pipeline"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in epoch_of(1 + e):
                pass
            times["data"].append(time.perf_counter() - t0)
        limit, pipeline, data_only = (statistics.median(times[k]) for k in ("limit", "pipeline", "data"))
        n_clips = sum(len(b[0]) for b in batches)

    print(
        f"{cfg.model.name} {dict(cfg.model.kwargs)}, batch {t.batch_size}, {len(batches)} steps an epoch, median of "
        f"{args.epochs} epochs each, {torch.get_num_threads()} threads, {cfg.data.num_workers} loader workers"
    )
    print(f"{'':34s}{'s/epoch':>9s}{'clips/s':>10s}")
    for name, sec in (
        ("1. limit (batches in memory)", limit),
        ("2. real pipeline + step", pipeline),
        ("3. data pipeline alone", data_only),
    ):
        print(f"{name:34s}{sec:9.2f}{n_clips / sec:10.0f}")
    over = pipeline / limit - 1
    print(
        f"pipeline overhead on the limit: {100 * over:+.1f} % (goal <= +10 %): {'met' if over <= 0.10 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
