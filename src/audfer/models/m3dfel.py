"""M3DFEL (Wang et al., CVPR 2023) with an optional AU head (AU-DFER §3.2, Fig. 2c).

A clip of 16 frames is cut into 4 instances of 4 frames; an R3D-18 (torchvision layout,
Kinetics-400 initialisable) embeds each instance (512); a 2-layer BiLSTM (1024), 8-head
self-attention without output projection, DMIN normalisation and a sigmoid gate weight the
instances; a Conv1d(4, 1, 3) over the feature axis pools them into the 1024-d clip feature.
Expects 16 frames x 112 x 112 RGB in [0, 1] (no mean/std). Unlike the official code, batch
size 1 works (no bare ``squeeze()``).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from audfer.errors import ConfigError
from audfer.models.backbones import init_resnet, r3d18_features
from audfer.models.base import DFERModel, InputSpec
from audfer.models.registry import ModelCost, register_model


class DMIN(nn.Module):
    """Dynamic Multi-Instance Normalisation: learned mix of instance-wise and bag-wise statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, num_features, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1))
        self.mean_weight = nn.Parameter(torch.ones(2))
        self.var_weight = nn.Parameter(torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, n_instances, D)
        x = x.transpose(1, 2)  # (B, D, n)
        mean_in = x.mean(-1, keepdim=True)
        var_in = x.var(-1, keepdim=True)
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = (var_in + mean_in**2).mean(1, keepdim=True) - mean_ln**2
        mw = self.mean_weight.softmax(0)
        vw = self.var_weight.softmax(0)
        mean = mw[0] * mean_in + mw[1] * mean_ln
        var = vw[0] * var_in + vw[1] * var_ln
        x = (x - mean) / (var + self.eps).sqrt() * self.weight + self.bias
        return x.transpose(1, 2)


class M3DFEL(DFERModel):
    """M3DFEL (R3D-18 per 4-frame instance, BiLSTM, attention, DMIN, gated pooling) with the expression classifier and the optional AU head (see the module docstring)."""

    sampling = "m3dfel"  # its own recipe: data.sampling=m3dfel
    sampler = "offsets"  # audfer.data.sampling.offset_indices (TFace dataset_DFEW.py)
    paper_table2 = (1.66, "thop artefact: skips torchvision's Conv3DSimple, i.e. the whole R3D-18 backbone")
    recipes = (
        "m3dfel_dfew",
        "m3dfel_ferv39k",
        "m3dfel_mafw",
        "m3dfel_dfew_paper",
        "m3dfel_ferv39k_paper",
        "m3dfel_mafw_paper",
    )

    def pretrained_filter(
        self, state: dict[str, torch.Tensor], report: Any
    ) -> tuple[dict[str, torch.Tensor], set[str]]:
        """torchvision's ``r3d_18`` (Kinetics-400, the official initialisation): ``stem``/``layer1-4`` into the
        instance backbone ``features.0-4``; its classifier and everything after the backbone start fresh."""
        if "stem.0.weight" not in state:
            return state, set()
        mapped = {}
        for k, v in state.items():
            m = re.match(r"(stem|layer([1-4]))\.(.*)", k)
            if m:
                mapped[f"features.{0 if m.group(1) == 'stem' else m.group(2)}.{m.group(3)}"] = v
            else:
                report.dropped.append(k)
        report.layout += " (torchvision r3d_18 -> backbone)"
        return mapped, {k for k in self.state_dict() if not k.startswith("features.")}

    def __init__(
        self,
        num_classes: int = 7,
        au_head: bool = True,
        *,
        num_frames: int = 16,
        instance_length: int = 4,
        img_size: int = 112,
        width: int = 64,
        heads: int = 8,
    ) -> None:
        super().__init__()
        if num_frames % instance_length:
            raise ConfigError(f"num_frames ({num_frames}) must be a multiple of instance_length ({instance_length})")
        self.input_spec = InputSpec(num_frames, img_size)
        self.bag_size = num_frames // instance_length
        self.instance_length = instance_length
        c = 8 * width  # instance feature (512 at width 64)
        self.num_features = 2 * c
        self.heads = heads
        self.features = r3d18_features(width)
        self.lstm = nn.LSTM(c, c, num_layers=2, batch_first=True, bidirectional=True)
        self.to_qkv = nn.Linear(2 * c, 3 * 2 * c, bias=False)
        self.norm = DMIN(2 * c)
        self.pwconv = nn.Conv1d(self.bag_size, 1, 3, 1, 1)
        self.fc = nn.Linear(2 * c, num_classes)
        self._init_au_head(au_head)
        init_resnet(self.features)

    def recurrent_steps(self) -> int:
        """Its BiLSTM runs over the bag of instances (``num_frames / instance_length``), not over frames."""
        return self.bag_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        x = x.reshape(b * self.bag_size, self.instance_length, c, h, w).transpose(1, 2)  # (B*bag, C, il, H, W)
        x = self.features(x).flatten(1).reshape(b, self.bag_size, -1)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN's CPU LSTM has no primitive for autocast's mixed float32 input / bfloat16 weights (it raises
            # "could not create a primitive descriptor for the LSTM forward"): the LSTM runs in float32 there
            with torch.autocast("cpu", enabled=False):
                x, _ = self.lstm(x.float())  # (B, bag, 2c)
        else:
            x, _ = self.lstm(x)  # (B, bag, 2c)
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(b, self.bag_size, self.heads, -1).transpose(1, 2)

        att = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
        att = att.transpose(1, 2).reshape(b, self.bag_size, -1)
        x = x * torch.sigmoid(self.norm(att))
        return self.pwconv(x).squeeze(1)


# declared: `audfer models` prints these without building the model; tests/test_model_costs.py recomputes them
register_model(
    "m3dfel",
    M3DFEL,
    "M3DFEL (CVPR 2023): R3D-18 instances + BiLSTM + DMIN, 16x112x112",
    official=True,
    cost=ModelCost(
        46823384, 46841834, 43191487488, 43191505920, "16 frames x 3 x 112 x 112, RGB, values in [0, 1], no mean/std"
    ),
)
register_model("m3dfel_small", M3DFEL, "M3DFEL at width 8, 64x64 (CPU demo)", width=8, img_size=64)
