"""Former-DFER (Zhao & Liu, ACM MM 2021) with an optional AU head (AU-DFER §3.2).

S-Former: a 2-D ResNet-18 per frame with a 1-layer spatial transformer (49 tokens x 256,
8 heads of 32) after ``layer3``; T-Former: a 3-layer transformer (dim 512, 8 heads of 64,
MLP 1024) over the 16 frame features plus a CLS token, whose output is the 512-d clip feature.
Expects 16 frames x 112 x 112 RGB in [0, 1] (no mean/std). Trained from scratch officially.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from audfer.models.backbones import init_resnet, resnet_stage
from audfer.models.base import DFERModel, InputSpec
from audfer.models.registry import ModelCost, register_model
from audfer.models.transformer import Transformer


class SFormer(nn.Module):
    """Former-DFER's spatial former: ResNet-18 stem and ``layer1-3`` per frame, a spatial transformer over the ``layer3`` tokens, then ``layer4`` and average pooling (one feature per frame)."""

    def __init__(self, width: int = 64, img_size: int = 112, depth: int = 1, heads: int = 8) -> None:
        super().__init__()
        dim = 4 * width
        side = -(-img_size // 16)
        self.pos_embedding = nn.Parameter(torch.randn(1, side * side, dim))
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = resnet_stage(width, width, 1)
        self.layer2 = resnet_stage(width, 2 * width, 2)
        self.layer3 = resnet_stage(2 * width, 4 * width, 2)
        self.layer4 = resnet_stage(4 * width, 8 * width, 2)
        self.spatial_transformer = Transformer(dim, depth, heads, dim // heads, 2 * dim)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        init_resnet(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, 8*width)
        x = self.layer3(self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))))
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2) + self.pos_embedding[:, : h * w]
        x = self.spatial_transformer(tokens).transpose(1, 2).reshape(n, c, h, w)
        return self.avgpool(self.layer4(x)).flatten(1)


class TFormer(nn.Module):
    """Former-DFER's temporal former: a transformer over the frame features plus a CLS token, whose output is the clip feature."""

    def __init__(self, num_frames: int = 16, dim: int = 512, depth: int = 3, heads: int = 8) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames + 1, dim))
        self.spatial_transformer = Transformer(dim, depth, heads, dim // heads, 2 * dim)  # official attribute name

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, dim) -> (B, dim)
        b, n, _ = x.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + self.pos_embedding[:, : n + 1]
        return self.spatial_transformer(x)[:, 0]


class FormerDFER(DFERModel):
    """Former-DFER (S-Former per frame, T-Former over frames) with the expression classifier and the optional AU head (see the module docstring)."""

    sampling = "former_dfer"  # its own recipe: data.sampling=former_dfer
    sampler = "segments"  # audfer.data.sampling.segmented_indices: 8 segments x 2 frames (dataset_DFEW.py)
    sampler_options = {"per_segment": 2}
    paper_table2 = (8.32, "correct (MACs)")
    recipes = (
        "former_dfer_dfew",
        "former_dfer_ferv39k",
        "former_dfer_mafw",
        "former_dfer_dfew_paper",
        "former_dfer_ferv39k_paper",
        "former_dfer_mafw_paper",
    )

    def pretrained_filter(
        self, state: dict[str, torch.Tensor], report: Any
    ) -> tuple[dict[str, torch.Tensor], set[str]]:
        """torchvision's ``resnet18`` into the S-Former's convolutional trunk (its ``fc`` dropped); the spatial
        transformer, position embeddings, T-Former and heads start fresh."""
        if not ("conv1.weight" in state and "layer4.0.conv1.weight" in state):
            return state, set()
        report.dropped = sorted(k for k in state if k.startswith("fc."))
        report.layout += " (torchvision resnet18 -> S-Former trunk)"
        fresh = {
            k for k in self.state_dict() if not k.startswith("s_former.") or "transformer" in k or "pos_embedding" in k
        }
        return {f"s_former.{k}": v for k, v in state.items() if not k.startswith("fc.")}, fresh

    def __init__(
        self,
        num_classes: int = 7,
        au_head: bool = True,
        *,
        num_frames: int = 16,
        img_size: int = 112,
        width: int = 64,
        temporal_depth: int = 3,
        heads: int = 8,
    ) -> None:
        super().__init__()
        self.input_spec = InputSpec(num_frames, img_size)
        self.num_features = 8 * width
        self.s_former = SFormer(width, img_size, heads=heads)
        self.t_former = TFormer(num_frames, 8 * width, temporal_depth, heads)
        self.fc = nn.Linear(8 * width, num_classes)
        self._init_au_head(au_head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        frames = self.s_former(x.reshape(b * t, *x.shape[2:]))
        return self.t_former(frames.reshape(b, t, -1))


# declared: `audfer models` prints these without building the model; tests/test_model_costs.py recomputes them
register_model(
    "former_dfer",
    FormerDFER,
    "Former-DFER (MM 2021): S-Former + T-Former, 16x112x112",
    official=True,
    cost=ModelCost(
        18031943, 18041177, 8296118784, 8296128000, "16 frames x 3 x 112 x 112, RGB, values in [0, 1], no mean/std"
    ),
)
register_model(
    "former_dfer_small",
    FormerDFER,
    "Former-DFER at width 16, 64x64, 1 temporal layer (CPU demo)",
    width=16,
    img_size=64,
    temporal_depth=1,
)
