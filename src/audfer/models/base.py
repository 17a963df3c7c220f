"""What every audfer model shares: the typed output, the input spec and the AU head (§3.2).

A model splits ``forward_features`` (clip -> pooled feature, D-dim) from ``forward_head``
(feature -> expression logits, plus AU logits when the AU head is on). The AU head is one
``Linear(D, 18)`` named ``au_head`` beside the expression classifier; it only adds D*18+18
parameters and is unused at inference when only expressions are wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from audfer.errors import InputError
from audfer.vocab import AUS


@dataclass(frozen=True)
class InputSpec:
    """The clips a model expects: ``(B, frames, 3, size, size)`` float, RGB in [0, 1] then normalised."""

    frames: int
    size: int
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def describe(self) -> str:
        """The spec in words: frames, size and normalisation."""
        norm = (
            "values in [0, 1], no mean/std"
            if self.std == (1.0, 1.0, 1.0) and self.mean == (0.0, 0.0, 0.0)
            else f"mean {self.mean}, std {self.std}"
        )
        return f"{self.frames} frames x 3 x {self.size} x {self.size}, RGB, {norm}"


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelOutput:
    logits: torch.Tensor  #: (B, num_classes)
    au_logits: torch.Tensor | None  #: (B, 18) when the AU head is on
    features: torch.Tensor  #: (B, D) pooled feature both heads read


class DFERModel(nn.Module):
    """Base class: subclasses define ``forward_features`` and the expression classifier.

    What is specific to a model lives in its own file, as these class attributes and hooks, so that the engine,
    the checkpoint loader, the cost table and the CLI never test a model's name:

    - ``sampling``: the ``data.sampling`` name of its temporal sampling recipe, used unless the config sets
      ``data.sampling``: its own registered name (the shipped models), another model's (that model's recipe),
      or a sampler registered by name (``uniform``, ``audfer.data.sampling.register_sampler``);
    - ``sampler`` / ``sampler_options``: its own recipe, which ``data.sampling: <its name>`` picks: a sampler of
      ``audfer.data.sampling.BEHAVIOURS`` by behaviour (``offsets``, ``segments``, ``strided``, ``uniform``) and the
      options it fixes (Former-DFER's two frames per segment);
    - ``pretrained_filter``: how its released checkpoints map onto its keys (as timm's ``pretrained_filter_fn``);
    - ``paper_table2``: what the paper's Table 2 says it costs, and what that figure really counted;
    - ``recipes``: the shipped configs of its official recipe (``audfer train --list``);
    - ``num_decay_layers`` / ``decay_layer``: its layers for layer-wise lr decay (as timm's ``group_matcher``);
    - ``no_weight_decay``: which parameters ``optim.no_decay_norms`` exempts from weight decay (as timm's
      ``no_weight_decay``);
    - ``recurrent_steps``: the time steps its recurrent layers run per clip (the cost count adds their MACs, which
      the flop counter misses).
    """

    input_spec: InputSpec
    num_features: int
    classifier_name: str = "fc"
    sampling: str = "uniform"
    sampler: str = "uniform"
    sampler_options: ClassVar[dict[str, int]] = {}
    paper_table2: tuple[float, str] | None = None
    recipes: tuple[str, ...] = ()

    #: set by ``create_model``: the registered (or ``package.module:factory``) name and the kwargs it was built with
    model_name: str
    model_config: dict[str, Any]

    def pretrained_filter(
        self, state: dict[str, torch.Tensor], report: Any
    ) -> tuple[dict[str, torch.Tensor], set[str]]:
        """Map a foreign checkpoint's ``state`` onto this model's keys: ``(state, keys allowed to stay fresh)``;
        notes go into ``report`` (a ``LoadReport``: ``dropped``, ``layout``, ``messages``). Default: as is."""
        return state, set()

    def num_decay_layers(self) -> int:
        """How many stacked blocks layer-wise lr decay counts (``optim.layer_decay``). Default 0: no layers, every
        parameter at the top (decay scale 1)."""
        return 0

    def decay_layer(self, name: str) -> int:
        """The layer of parameter ``name`` for layer-wise lr decay: 0 the input embedding, 1..L the blocks,
        L + 1 (L = ``num_decay_layers()``) the rest; its lr is scaled by ``layer_decay ** (L + 1 - layer)``."""
        return self.num_decay_layers() + 1

    def no_weight_decay(self, name: str, param: nn.Parameter) -> bool:
        """Whether parameter ``name`` has no weight decay under ``optim.no_decay_norms``. Default: biases, norm
        weights and every other vector (``ndim <= 1``), and learned tokens (a name with ``token``: class, region
        tokens), the rule of sunlicai/MAE-DFER ``optim_factory.py`` (``get_parameter_groups``: 1-D tensors, biases
        and the names its model's ``no_weight_decay`` lists). A model with other such parameters overrides it."""
        return param.ndim <= 1 or name.endswith(".bias") or "token" in name

    def recurrent_steps(self) -> int:
        """The time steps each of its ``nn.LSTM`` layers runs per clip (``models.complexity.clip_macs`` adds their
        MACs by hand). Default: one per input frame."""
        return self.input_spec.frames

    def _init_au_head(self, au_head: bool) -> None:
        self.au_head = nn.Linear(self.num_features, len(AUS)) if au_head else None

    def _check_input(self, x: torch.Tensor) -> None:
        spec = self.input_spec
        if x.ndim != 5 or x.shape[1] != spec.frames or x.shape[2] != 3:
            raise InputError(f"{type(self).__name__} expects clips (B, {spec.frames}, 3, H, W); got {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The pooled clip feature ``(B, num_features)`` of clips ``(B, T, 3, H, W)``: what the expression classifier and the AU head (§3.2) both read."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> ModelOutput:
        """Expression logits and AU logits (None without the AU head) from the pooled feature."""
        logits = getattr(self, self.classifier_name)(features)
        au = self.au_head(features) if self.au_head is not None else None
        return ModelOutput(logits, au, features)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        self._check_input(x)
        return self.forward_head(self.forward_features(x))
