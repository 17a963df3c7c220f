"""MAE-DFER (Sun et al., ACM MM 2023) fine-tuning model with an optional AU head (AU-DFER §3.2).

LGI-Former encoder: 2x16x16 tubelets (16 x 160 x 160 -> 8 x 10 x 10 = 800 tokens, dim 512), a fixed
sinusoidal position embedding (not a parameter), 16 blocks of 8 heads. The tokens are cut into
regions of 2x5x10 tokens (8 regions), each with one learnable region token. Every block runs
(1) self-attention inside each region (region token included), (2) self-attention among the
region tokens, (3) cross-attention from the local tokens to the region tokens, then an MLP (2048).
Attention projections have q and v biases but no k bias; LayerNorm eps 1e-6; stochastic depth
rises linearly to ``drop_path`` over depth. The clip feature is the LayerNorm of the mean of
the region tokens (512). Expects 16 frames x 160 x 160 RGB, ImageNet mean/std.
"""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Any

import torch
from torch import nn

from audfer.errors import ConfigError
from audfer.models.base import IMAGENET_MEAN, IMAGENET_STD, DFERModel, InputSpec
from audfer.models.registry import ModelCost, register_model

_LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """The fixed sine-cosine position table of "Attention is all you need" (1, n, dim)."""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    idx = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(
        torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(idx, 2, rounding_mode="floor") / dim
    )
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float().unsqueeze(0)


class DropPath(nn.Module):
    """Stochastic depth per sample."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class GeneralAttention(nn.Module):
    """Multi-head attention with separate ``q`` and ``kv`` projections, q/v biases, no k bias."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        ctx = x if context is None else context
        q = nn.functional.linear(x, self.q.weight, self.q_bias).reshape(b, n, self.heads, -1).transpose(1, 2)
        kv_bias = torch.cat([torch.zeros_like(self.v_bias), self.v_bias])
        k, v = (
            nn.functional.linear(ctx, self.kv.weight, kv_bias)
            .reshape(b, ctx.shape[1], 2, self.heads, -1)
            .permute(2, 0, 3, 1, 4)
        )
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """The transformer block's MLP: Linear, GELU, Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LGBlock(nn.Module):
    """One LGI-Former block on ``(B*N, 1+S, C)``: region token first in each region."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.first_attn_norm0 = _LayerNorm(dim)
        self.first_attn = GeneralAttention(dim, heads)
        self.second_attn_norm0 = _LayerNorm(dim)
        self.second_attn = GeneralAttention(dim, heads)
        self.third_attn_norm0 = _LayerNorm(dim)
        self.third_attn_norm1 = _LayerNorm(dim)
        self.third_attn = GeneralAttention(dim, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = _LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        bn, s, c = x.shape
        n = bn // batch
        x = x + self.drop_path(self.first_attn(self.first_attn_norm0(x)))  # (1) inside each region
        region = x[:, 0].reshape(batch, n, c)
        region = region + self.drop_path(self.second_attn(self.second_attn_norm0(region)))  # (2) among regions
        local = x[:, 1:].reshape(batch, n * (s - 1), c)
        local = local + self.drop_path(
            self.third_attn(self.third_attn_norm0(local), self.third_attn_norm1(region))
        )  # (3)
        x = torch.cat([region.reshape(bn, 1, c), local.reshape(bn, s - 1, c)], dim=1)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Tubelet embedding: a Conv3d with kernel = stride = (tubelet, patch, patch), tokens flattened."""

    def __init__(self, dim: int, patch: int, tubelet: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(3, dim, (tubelet, patch, patch), (tubelet, patch, patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, T'H'W', dim)
        return self.proj(x).flatten(2).transpose(1, 2)


class MAEDFER(DFERModel):
    """MAE-DFER's LGI-Former encoder with the expression classifier and the optional AU head (see the module docstring)."""

    sampling = "mae_dfer"  # its own recipe: data.sampling=mae_dfer
    sampler = "strided"  # audfer.data.sampling.strided_indices (kinetics.py), stride from data.stride
    paper_table2 = (26.11, "thop on a depth-12 model; the trained model has depth 16")
    recipes = (
        "mae_dfer_dfew",
        "mae_dfer_ferv39k",
        "mae_dfer_mafw",
        "mae_dfer_dfew_paper",
        "mae_dfer_ferv39k_paper",
        "mae_dfer_mafw_paper",
    )

    def pretrained_filter(
        self, state: dict[str, torch.Tensor], report: Any
    ) -> tuple[dict[str, torch.Tensor], set[str]]:
        """The VoxCeleb2 self-supervised checkpoint (``encoder.`` prefix): the encoder only; the decoder, the
        pre-training head, final norm and the (fixed, recomputed) position table are not used."""
        if not any(k.startswith("encoder.") for k in state):
            return state, set()
        report.dropped = sorted(k for k in state if not k.startswith("encoder."))
        state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        for k in [k for k in state if k.startswith(("head.", "norm.", "fc_norm.")) or k == "pos_embed"]:
            report.dropped.append("encoder." + k)
            del state[k]
        report.layout += " (MAE-DFER pre-training: encoder only)"
        return state, {k for k in self.state_dict() if k.startswith(("head.", "fc_norm."))}

    classifier_name = "head"

    def __init__(
        self,
        num_classes: int = 7,
        au_head: bool = True,
        *,
        num_frames: int = 16,
        img_size: int = 160,
        patch_size: int = 16,
        tubelet_size: int = 2,
        embed_dim: int = 512,
        depth: int = 16,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        region_size: tuple[int, int, int] = (2, 5, 10),
        drop_path: float = 0.1,
        init_scale: float = 0.001,
    ) -> None:
        super().__init__()
        self.input_spec = InputSpec(num_frames, img_size, IMAGENET_MEAN, IMAGENET_STD)
        self.num_features = embed_dim
        grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        if any(g % r for g, r in zip(grid, region_size)):
            raise ConfigError(f"token grid {grid} is not divisible by region size {tuple(region_size)}")
        self.grid, self.region_size = grid, tuple(region_size)
        self.num_regions = math.prod(g // r for g, r in zip(grid, region_size))
        self.patch_embed = PatchEmbed(embed_dim, patch_size, tubelet_size)
        self.register_buffer("pos_embed", sinusoid_table(math.prod(grid), embed_dim), persistent=False)
        self.lg_region_tokens = nn.Parameter(torch.zeros(self.num_regions, embed_dim))
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(LGBlock(embed_dim, heads, mlp_ratio, r) for r in rates)
        self.fc_norm = _LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_au_head(au_head)
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.lg_region_tokens, std=0.02)
        # sunlicai/MAE-DFER modeling_finetune.py, VisionTransformer.__init__: the classifier starts near zero,
        # head.weight and head.bias multiplied by init_scale (run_class_finetuning.py --init_scale 0.001)
        with torch.no_grad():
            self.head.weight.mul_(init_scale)
            self.head.bias.mul_(init_scale)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def num_decay_layers(self) -> int:
        """The LGI-Former blocks."""
        return len(self.blocks)

    def decay_layer(self, name: str) -> int:
        """As sunlicai/MAE-DFER ``optim_factory.py`` (``get_num_layer_for_vit``): ``blocks.i`` is layer i + 1, the patch
        and position embeddings layer 0, everything else (region tokens, norm, heads) the top."""
        found = re.match(r"blocks\.(\d+)\.", name)
        if found:
            return int(found.group(1)) + 1
        if name.startswith(("patch_embed", "pos_embed", "cls_token")):
            return 0
        return len(self.blocks) + 1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = self.patch_embed(x.transpose(1, 2)) + self.pos_embed.to(x.dtype)
        (nt, nh, nw), (t, h, w) = [g // r for g, r in zip(self.grid, self.region_size)], self.region_size
        c = x.shape[-1]
        # tokens (T', H', W') -> regions (nt nh nw) x (t h w)
        x = (
            x.reshape(b, nt, t, nh, h, nw, w, c)
            .permute(0, 1, 3, 5, 2, 4, 6, 7)
            .reshape(b, self.num_regions, t * h * w, c)
        )
        x = torch.cat([self.lg_region_tokens.expand(b, -1, -1).unsqueeze(2), x], dim=2).flatten(0, 1)
        for blk in self.blocks:
            x = blk(x, b)
        region = x[:, 0].reshape(b, self.num_regions, c)
        return self.fc_norm(region.mean(1))


# declared: `audfer models` prints these without building the model; tests/test_model_costs.py recomputes them
register_model(
    "mae_dfer",
    MAEDFER,
    "MAE-DFER (MM 2023): LGI-Former, 16x160x160",
    official=True,
    cost=ModelCost(
        84878343,
        84887577,
        49652305408,
        49652314624,
        "16 frames x 3 x 160 x 160, RGB, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)",
    ),
)
register_model(
    "mae_dfer_small",
    MAEDFER,
    "MAE-DFER dim 64, depth 2, 64x64 (CPU demo)",
    embed_dim=64,
    depth=2,
    heads=4,
    img_size=64,
    region_size=(2, 2, 4),
    drop_path=0.0,
)
