"""A GPU-ready smoke run of every recipe: a few training steps at the recipe's real input size on synthetic clips.

For each recipe (base repository and paper variants share their pipeline, so the three base recipes are measured),
on DFEW-like frame folders (``audfer synth`` at 256 px, DFEW's stored frame size), with the recipe's own sampler,
augmentation, batch size, optimiser and precision, one run prints clips/s of:
  pipeline  the training DataLoader alone (decode + the recipe's augmentation + collate), ``--workers`` processes
  model     forward + backward + optimiser step on batches already on the device (AMP where the recipe uses it)
  together  both, as training runs them
and ``together / model``: below 1, the input pipeline, not the model, sets the speed.

    python benchmarks/bench_recipes.py [--device cuda --steps 20 --workers 8]
    python benchmarks/bench_recipes.py --small   # CPU-sized: *_small models, 64 px frames, batch 4 (what the tests run)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch

RECIPES = ("m3dfel_dfew", "former_dfer_dfew", "mae_dfer_dfew")


def _overrides(recipe: str, synth: Path, out: Path, small: bool, workers: int) -> list[str]:
    over = [
        "data.dataset=synthetic",
        f"data.root={synth}",
        "data.frames=null",
        "data.au_labels=null",
        f"out={out / recipe}",
        f"data.num_workers={workers}",
        "train.progress=false",
    ]
    if small:
        model = recipe.split("_dfew")[0]
        over += [f"model.name={model}_small", "model.kwargs={}", "train.batch_size=4"]  # the *_small sizes: 64 px
    return over


def measure(recipe: str, synth: Path, out: Path, *, steps: int, device: str, small: bool, workers: int) -> dict:
    """Clips/s of the pipeline, the model step and both for one recipe (see the module docstring)."""
    from audfer.config import load_config
    from audfer.engine.datamodule import ClipDataModule, steps_per_epoch
    from audfer.engine.module import AUDFERModule
    from audfer.engine.resolve import prepare

    cfg = load_config(recipe, _overrides(recipe, synth, out, small, workers))
    prep = prepare(cfg)
    module = AUDFERModule.from_config(
        cfg,
        prep.knowledge.tolist(),
        None if prep.pos_weight is None else prep.pos_weight.tolist(),
        steps_per_epoch(len(prep.train), cfg.train),
    )
    spec = module.model.input_spec
    data = ClipDataModule(cfg, spec, prep)
    loader = data.train_dataloader()
    dev = torch.device(device)
    amp = cfg.train.precision in ("16-mixed", "bf16-mixed") and dev.type == "cuda"
    dtype = torch.float16 if cfg.train.precision == "16-mixed" else torch.bfloat16
    model = module.to(dev)
    model.train()
    opt_cfg = module.configure_optimizers()
    opt = opt_cfg["optimizer"] if isinstance(opt_cfg, dict) else opt_cfg
    scaler = torch.amp.GradScaler("cuda") if amp and dtype == torch.float16 else None

    def batches(n):
        it = iter(loader)
        got = []
        while len(got) < n:
            try:
                got.append(next(it))
            except StopIteration:
                it = iter(loader)
        return got

    def step(batch):
        clips, labels, au, mask, _ = batch
        clips, labels, au, mask = (t.to(dev, non_blocking=True) for t in (clips, labels, au, mask))
        ctx = torch.autocast(dev.type, dtype=dtype) if amp else contextlib.nullcontext()
        with ctx:
            o = module.model(clips)
            loss = module.criterion.components(o.logits, o.au_logits, labels, au, mask).total
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return clips.shape[0]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    batches(1)  # warm-up: worker start, first decode
    t0 = time.perf_counter()
    held = batches(steps)
    t_pipe = time.perf_counter() - t0
    n = sum(b[0].shape[0] for b in held)
    step(held[0])  # warm-up: kernels, cudnn autotune
    sync()
    t0 = time.perf_counter()
    for b in held:
        step(b)
    sync()
    t_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    done, it = 0, iter(loader)
    for _ in range(steps):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        done += step(b)
    sync()
    t_both = time.perf_counter() - t0
    return {
        "recipe": recipe,
        "model": cfg.model.name,
        "input": list(held[0][0].shape[1:]),
        "spec": [spec.frames, 3, spec.size, spec.size],
        "batch": cfg.train.batch_size,
        "clips": n,
        "device": dev.type,
        "amp": str(dtype).replace("torch.", "") if amp else "off",
        "workers": workers,
        "pipeline": n / t_pipe,
        "model_step": n / t_model,
        "together": done / t_both,
    }


def run(*, steps: int, device: str, small: bool, workers: int, clips: int, recipes=RECIPES, log=print) -> list[dict]:
    """Render the clips once, measure every recipe, print one line each; returns the rows."""
    from audfer.synth.dataset import SynthConfig, generate

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        size = 64 if small else 256
        synth = generate(Path(tmp) / "synth", SynthConfig(clips=clips, size=size, frames=32, seed=0), workers=1)
        log(f"{clips} synthetic clips of 32 frames at {size} px; {steps} steps per measure; device {device}")
        for recipe in recipes:
            r = measure(recipe, synth, Path(tmp) / "runs", steps=steps, device=device, small=small, workers=workers)
            rows.append(r)
            log(
                f"{recipe:18s} {r['model']:17s} input {'x'.join(map(str, r['input']))} batch {r['batch']:3d} "
                f"amp {r['amp']:8s} pipeline {r['pipeline']:8.1f}  model {r['model_step']:8.1f}  together "
                f"{r['together']:8.1f} clips/s  together/model {r['together'] / r['model_step']:.2f}"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--clips", type=int, default=0, help="synthetic clips (default: enough for the steps)")
    ap.add_argument("--small", action="store_true", help="CPU-sized models and frames")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    clips = args.clips or max(40, 2 * args.steps * (4 if args.small else 64))
    rows = run(steps=args.steps, device=args.device, small=args.small, workers=args.workers, clips=clips)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
