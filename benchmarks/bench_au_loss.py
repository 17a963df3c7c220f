"""AU loss cost, measured in one run.

1. One training step (forward, loss, backward, AdamW) of the same model with the AU loss
   (Eq. 10, λ = 0.25, distinct pos-weights) and without it (plain CE). Goal: ratio <= 1.03.
2. The loss alone at batch 64: audfer's vectorised AULoss vs a per-sample Python loop in the
   style of the authors' code (one BCEWithLogitsLoss per clip with its knowledge row). Goal: >= 20x.

    python benchmarks/bench_au_loss.py [--model former_dfer_small --batch 16 --steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from audfer.method.knowledge import paper_knowledge
from audfer.method.labels import official_pos_weights
from audfer.method.losses import AUDFERLoss, AULoss
from audfer.models import create_model


def _time(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="former_dfer_small")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    k = torch.tensor(paper_knowledge(), dtype=torch.float32)
    pw = torch.tensor(official_pos_weights("dfew", "distinct"), dtype=torch.float32)

    model = create_model(args.model)
    spec = model.input_spec
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, spec.frames, 3, spec.size, spec.size)
    y = torch.randint(0, 7, (args.batch,))
    t = torch.randint(0, 2, (args.batch, 18)).float()
    au_loss = AUDFERLoss(k, pw, au_weight=0.25)

    def step(with_au):
        opt.zero_grad()
        out = model(x)
        loss = au_loss(out.logits, out.au_logits, y, t) if with_au else F.cross_entropy(out.logits, y)
        loss.backward()
        opt.step()

    base, with_au = [], []
    for _ in range(args.steps):  # interleaved so drift hits both equally
        base.append(_time(lambda: step(False), 1))
        with_au.append(_time(lambda: step(True), 1))
    b, a = statistics.median(base), statistics.median(with_au)
    print(
        f"training step {args.model} batch {args.batch}: CE only {b * 1e3:.1f} ms, CE + AU loss {a * 1e3:.1f} ms, "
        f"ratio {a / b:.3f} (goal <= 1.03) {'OK' if a / b <= 1.03 else 'ABOVE GOAL'}"
    )

    n = 64
    logits = torch.randn(n, 18, requires_grad=True)
    labels = torch.randint(0, 7, (n,))
    targets = torch.randint(0, 2, (n, 18)).float()
    vec = AULoss(k, pw)

    def vectorised():
        vec(logits, labels, targets).backward()

    def per_sample():  # the authors' style: a criterion per clip, chosen by its label
        total = 0.0
        for i in range(n):
            crit = torch.nn.BCEWithLogitsLoss(weight=5 * k[labels[i]], pos_weight=pw[labels[i]])
            total = total + crit(logits[i], targets[i])
        (total / n).backward()

    tv, tl = _time(vectorised, 50), _time(per_sample, 10)
    print(
        f"AU loss alone, batch {n} (forward + backward): vectorised {tv * 1e6:.0f} us, per-sample loop {tl * 1e6:.0f} us, "
        f"speed-up {tl / tv:.1f}x (goal >= 20x) {'OK' if tl / tv >= 20 else 'BELOW GOAL'}"
    )


if __name__ == "__main__":
    main()
