"""The AU loss (paper Eq. 9) and the combined AU-DFER loss (Eq. 10).

What the authors trained with (Cross-Innovation-Lab/AU-DFER: each base model's AU copy builds
``BCEWithLogitsLoss(weight=5 * K[y], pos_weight=PW)`` beside the expression loss), vectorised:

    L_AU = mean over valid (clip, AU) elements of  -scale * K[y]_a * (pw_a * t_a * log σ(x_a) + (1 - t_a) * log(1 - σ(x_a)))
    L    = (1 - λ) * CE(expr_logits, y) + λ * L_AU                         (λ = ``au_weight``)

``K[y]`` is the knowledge row of the clip's expression (``scale`` = 5 brings it to OpenFace's
0-5 range, §3.1); ``pw`` the positive-class weight (Eq. 6-8): an 18-vector (global), a 7 x 18 table
(distinct/minor: row chosen by label) or None. ``reduction="sum_aus"`` reads Eq. 9 literally (sum over
the 18 AUs, mean over clips) and is 18x the default. Eq. 5's ``log(5p)`` differs from CE by a constant.

Soft labels (mixup/cutmix/label smoothing as a distribution ``y`` over classes) use
``K_row = Σ_c y_c K_c`` and ``pw_row = Σ_c y_c PW_c``; ``mix_batch_targets`` mixes the AU targets
and masks with the same coefficients as the clips. Unknown labels add no AU loss: ``au_mask`` is per clip
(B,) or per element (B, 18) (an AU the clip's AU tool does not measure, ``audfer.au.sources``), and NaN
targets are unknown too. The mean is over the known (clip, AU) elements (``sum_aus``: over clips with at
least one known AU); an all-masked batch gives an AU loss of 0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from audfer.errors import ConfigError
from audfer.io import expression_matrix
from audfer.vocab import AUS, EXPRESSIONS

__all__ = ["AULoss", "AUDFERLoss", "AUDFERLossOutput", "mix_batch_targets", "element_mask"]


def _as_tensor(x: object, what: str = "table") -> torch.Tensor:
    """A tensor, array, 7 x 18 table or its CSV path (``audfer.io.expression_matrix``: K.csv, pos-weights CSV,
    ``PosWeights``, ``KnowledgeResult``) -> a float64 tensor."""
    return (
        x.detach().clone().double() if isinstance(x, torch.Tensor) else torch.as_tensor(expression_matrix(x, what=what))
    )


def element_mask(au_targets: torch.Tensor, au_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 18) bool: which (clip, AU) elements carry a label. ``au_mask`` is per clip (B,) or per element
    (B, 18); NaN targets are unknown too."""
    valid = ~torch.isnan(au_targets)
    if au_mask is not None:
        m = au_mask.to(torch.bool)
        valid = valid & (m[:, None] if m.ndim == 1 else m)
    return valid


class AULoss(nn.Module):
    """Knowledge-weighted BCE on the AU head's logits (Eq. 9)."""

    knowledge: torch.Tensor
    pos_weight: torch.Tensor

    def __init__(
        self, knowledge: object, pos_weight: object = None, scale: float = 5.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        k = _as_tensor(knowledge, "knowledge matrix").float()
        if k.ndim != 2 or k.shape[1] != len(AUS):
            raise ConfigError(f"knowledge must be (num_classes, {len(AUS)}), got {tuple(k.shape)}")
        if reduction not in ("mean", "sum_aus"):
            raise ConfigError("reduction must be 'mean' (the authors' code) or 'sum_aus' (Eq. 9 literally)")
        self.register_buffer("knowledge", k)
        self.scale = float(scale)
        self.reduction = reduction
        if pos_weight is None:
            self.pos_weight_mode = "none"
            self.register_buffer("pos_weight", torch.ones(len(AUS)))
        else:
            pw = _as_tensor(pos_weight, "pos-weight table").float()
            if pw.shape == (len(AUS),):
                self.pos_weight_mode = "vector"
            elif pw.shape == k.shape:
                self.pos_weight_mode = "table"
            else:
                raise ConfigError(f"pos_weight must be ({len(AUS)},) or {tuple(k.shape)}, got {tuple(pw.shape)}")
            self.register_buffer("pos_weight", pw)

    def _rows(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if labels.ndim == 1:  # hard labels: index rows
            k = self.knowledge[labels]
            pw = self.pos_weight[labels] if self.pos_weight_mode == "table" else self.pos_weight.expand_as(k)
        else:  # soft labels (B, C): mix rows
            y = labels.to(self.knowledge.dtype)
            k = y @ self.knowledge
            pw = y @ self.pos_weight if self.pos_weight_mode == "table" else self.pos_weight.expand_as(k)
        return k, pw

    def forward(
        self,
        au_logits: torch.Tensor,
        labels: torch.Tensor,
        au_targets: torch.Tensor,
        au_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        targets = au_targets.to(au_logits.dtype)
        valid = element_mask(targets, au_mask)
        targets = torch.nan_to_num(targets, nan=0.0)
        k, pw = self._rows(labels)
        # -(pw*t*logσ(x) + (1-t)*logσ(-x)), computed stably like BCEWithLogits
        elem = -(pw * targets * F.logsigmoid(au_logits) + (1 - targets) * F.logsigmoid(-au_logits))
        elem = torch.where(valid, elem * (self.scale * k), torch.zeros_like(elem))
        per = valid.sum() if self.reduction == "mean" else valid.any(dim=1).sum()
        return elem.sum() / per.clamp(min=1).to(elem.dtype)


class AUDFERLossOutput(NamedTuple):
    total: torch.Tensor
    expression: torch.Tensor
    au: torch.Tensor


class AUDFERLoss(nn.Module):
    """(1 - λ) * CE + λ * L_AU (Eq. 10). ``forward`` returns the total; ``components`` all three."""

    def __init__(
        self,
        knowledge: object,
        pos_weight: object = None,
        au_weight: float = 0.25,
        label_smoothing: float = 0.0,
        scale: float = 5.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if not 0.0 <= au_weight <= 1.0:
            raise ConfigError(f"au_weight (λ) must be in [0, 1], got {au_weight}")
        self.au_loss = AULoss(knowledge, pos_weight, scale, reduction)
        self.au_weight = float(au_weight)
        self.label_smoothing = float(label_smoothing)

    def components(
        self,
        expr_logits: torch.Tensor,
        au_logits: torch.Tensor | None,
        labels: torch.Tensor,
        au_targets: torch.Tensor,
        au_mask: torch.Tensor | None = None,
    ) -> AUDFERLossOutput:
        """Eq. 10 split into its parts: ``expression`` (CE), ``au`` (the K-weighted BCE of Eq. 9) and ``total`` = (1 - λ) CE + λ L_AU."""
        ce = F.cross_entropy(expr_logits, labels, label_smoothing=self.label_smoothing)
        if au_logits is None or self.au_weight == 0.0:
            au = expr_logits.new_zeros(())
        else:
            au = self.au_loss(au_logits, labels, au_targets, au_mask)
        return AUDFERLossOutput((1 - self.au_weight) * ce + self.au_weight * au, ce, au)

    def forward(
        self,
        expr_logits: torch.Tensor,
        au_logits: torch.Tensor | None,
        labels: torch.Tensor,
        au_targets: torch.Tensor,
        au_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.components(expr_logits, au_logits, labels, au_targets, au_mask).total


def mix_batch_targets(
    labels: torch.Tensor,
    au_targets: torch.Tensor,
    au_mask: torch.Tensor | None,
    lam: float | torch.Tensor,
    index: torch.Tensor,
    num_classes: int = len(EXPRESSIONS),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets of a mixed batch ``lam * x + (1 - lam) * x[index]`` (mixup; cutmix with lam = kept area).

    Returns soft labels (B, C), mixed AU targets (B, 18) and the (B, 18) AU mask (known only where both
    mixed clips know that AU). ``lam`` may be a scalar or a per-sample (B,) tensor.
    """
    lam = torch.as_tensor(lam, dtype=torch.float32, device=au_targets.device)
    lam_col = lam.reshape(-1, 1) if lam.ndim else lam
    y = F.one_hot(labels, num_classes).float() if labels.ndim == 1 else labels.float()
    soft = lam_col * y + (1 - lam_col) * y[index]
    t = au_targets.float()
    valid = element_mask(t, au_mask)
    t = torch.nan_to_num(t, nan=0.0)
    mixed = lam_col * t + (1 - lam_col) * t[index]
    return soft, mixed, valid & valid[index]
