"""Parameters and multiply-accumulates per clip, measured with ``torch.utils.flop_counter``.

``FlopCounterMode`` counts convolutions, matmuls and attention but not ``nn.LSTM``; the LSTM's
MACs are added analytically (4 gates x hidden x (input + hidden) per step, per direction, per layer).
The paper's Table 2 "FLOPs" are listed beside ours with what they really counted (reference §3). ``cost_table`` is ``audfer models``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from audfer.models.base import DFERModel
from audfer.models.registry import ModelCost, create_model, list_models, model_entry
from audfer.progress import bar


def lstm_macs(lstm: nn.LSTM, steps: int, batch: int = 1) -> int:
    """MACs of one ``nn.LSTM`` forward over ``steps`` time steps."""
    dirs = 2 if lstm.bidirectional else 1
    total = 0
    for layer in range(lstm.num_layers):
        inp = lstm.input_size if layer == 0 else lstm.hidden_size * dirs
        total += 4 * lstm.hidden_size * (inp + lstm.hidden_size) * steps * dirs
    return total * batch


def count_parameters(model: nn.Module, *, au_head: bool = True) -> int:
    """Parameters of ``model``, with or without the AU head."""
    return sum(p.numel() for n, p in model.named_parameters() if au_head or not n.startswith("au_head."))


@torch.no_grad()
def clip_macs(model: DFERModel, *, with_au_head: bool = True) -> int:
    """MACs for one clip of the model's expected input (flop counter / 2, plus LSTMs by hand)."""
    spec = model.input_spec
    x = torch.zeros(1, spec.frames, 3, spec.size, spec.size)
    was_training = model.training
    model.eval()
    saved = model.au_head
    if not with_au_head:
        model.au_head = None
    try:
        counter = FlopCounterMode(display=False)
        # the CPU flash-attention kernel is not in the counter's table; the math path is
        with counter, sdpa_kernel(SDPBackend.MATH):
            model(x)
        macs = counter.get_total_flops() // 2
    finally:
        model.au_head = saved
        model.train(was_training)
    for m in model.modules():
        if isinstance(m, nn.LSTM):
            macs += lstm_macs(m, model.recurrent_steps())
    return int(macs)


def measure_cost(name: str) -> ModelCost:
    """Build the registered model ``name`` and measure what ``audfer models`` prints (``ModelCost``): what each
    official model's registration declares, recomputed by the test that keeps the declarations true."""
    m = create_model(name)
    return ModelCost(
        count_parameters(m, au_head=False),
        count_parameters(m),
        clip_macs(m, with_au_head=False),
        clip_macs(m),
        m.input_spec.describe(),
    )


def cost_table(names: list[str] | None = None) -> list[str]:
    """``audfer models``: one line per model (parameters and GMACs per clip without / with the AU head, the AU
    head's share, and what the paper's Table 2 says, as the model's file declares it), then its input spec. Declared
    figures (``ModelCost`` in the registration) are printed as declared; other models are built and measured (a
    progress bar on stderr counts them, on a terminal)."""
    names = names or [n for n in list_models() if model_entry(n).official]
    for n in names:
        model_entry(n)  # unknown name -> clear error before any work
    lines = [
        f"{'model':18s} {'params':>12s} {'+AU head':>12s} {'GMACs':>8s} {'+AU head':>9s} {'AU cost':>9s}  paper Table 2"
    ]
    for n in bar(names, desc="models", unit="model"):
        entry = model_entry(n)
        cost = entry.cost or measure_cost(n)
        paper = getattr(entry.builder, "paper_table2", None) if entry.official else None
        note = f"{paper[0]:.2f} G ({paper[1]})" if paper else "-"
        g0, g1 = cost.macs, cost.macs_au
        lines.append(
            f"{n:18s} {cost.params:>12,d} {cost.params_au:>12,d} {g0 / 1e9:>8.2f} {g1 / 1e9:>9.2f} "
            f"{100 * (g1 - g0) / g0:>8.4f}%  {note}"
        )
        lines.append(f"{'':18s} input: {cost.input}; {entry.description}")
    others = [m for m in list_models() if m not in names]
    if others:
        lines.append(f"also registered: {', '.join(others)}")
    return lines
