"""Parameters and multiply-accumulates per clip, measured with ``torch.utils.flop_counter``.

``FlopCounterMode`` counts convolutions, matmuls and attention but not ``nn.LSTM``; the LSTM's
MACs are added analytically (4 gates x hidden x (input + hidden) per step, per direction, per layer).
The paper's Table 2 "FLOPs" are listed beside ours with what they really counted (reference §3).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .base import DFERModel


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
            steps = getattr(model, "bag_size", spec.frames)
            macs += lstm_macs(m, steps)
    return int(macs)
