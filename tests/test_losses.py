"""AULoss / AUDFERLoss against torch.nn.functional computed independently, per sample."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audfer.method.knowledge import paper_knowledge
from audfer.method.labels import official_pos_weights
from audfer.method.losses import AUDFERLoss, AULoss, mix_batch_targets

K = torch.tensor(paper_knowledge(), dtype=torch.float32)
PW = torch.tensor(official_pos_weights("dfew", "distinct"), dtype=torch.float32)


def _batch(b=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 18, generator=g, requires_grad=True)
    labels = torch.randint(0, 7, (b,), generator=g)
    targets = torch.randint(0, 2, (b, 18), generator=g).float()
    return logits, labels, targets


def _reference(logits, labels_or_soft, targets, pw_rows, valid):
    """Per-sample loop with F.binary_cross_entropy_with_logits, averaged over valid B x 18 elements."""
    total = logits.new_zeros(())
    for i in range(logits.shape[0]):
        if not valid[i]:
            continue
        y = labels_or_soft[i]
        k = K[y] if y.ndim == 0 else y @ K
        pw = pw_rows(y)
        total = total + F.binary_cross_entropy_with_logits(
            logits[i], targets[i], weight=5 * k, pos_weight=pw, reduction="sum"
        )
    return total / max(int(valid.sum()), 1) / 18


@pytest.mark.parametrize("form", ["table", "vector", "none"])
def test_hard_labels_value_and_gradient(form):
    logits, labels, targets = _batch()
    pw = {"table": PW, "vector": PW[0], "none": None}[form]
    rows = {"table": lambda y: PW[y] if y.ndim == 0 else y @ PW, "vector": lambda y: PW[0], "none": lambda y: None}[
        form
    ]
    ours = AULoss(K, pw)(logits, labels, targets)
    (g_ours,) = torch.autograd.grad(ours, logits)
    ref = _reference(logits, labels, targets, rows, torch.ones(12, dtype=torch.bool))
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-7)


def test_global_vector_equals_torch_bce_module_mean():
    logits, labels, targets = _batch()
    ref = torch.nn.BCEWithLogitsLoss(weight=5 * K[labels], pos_weight=PW[0])(logits, targets)
    torch.testing.assert_close(AULoss(K, PW[0])(logits, labels, targets), ref)


def test_masks_and_nan_targets_drop_clips():
    logits, labels, targets = _batch()
    mask = torch.tensor([True, False] * 6)
    targets_nan = targets.clone()
    targets_nan[3] = float("nan")
    loss = AULoss(K, PW)
    ours = loss(logits, labels, targets_nan, mask)
    valid = mask.clone()
    valid[3] = False
    ref = _reference(logits, labels, torch.nan_to_num(targets_nan), lambda y: PW[y], valid)
    torch.testing.assert_close(ours, ref)
    (g,) = torch.autograd.grad(ours, logits, retain_graph=True)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)
    assert torch.all(g[~valid] == 0) and torch.all(g[valid].abs().sum(1) > 0)


def test_all_masked_batch_gives_zero_not_nan():
    logits, labels, targets = _batch()
    out = AULoss(K, PW)(logits, labels, targets, torch.zeros(12, dtype=torch.bool))
    assert out.item() == 0.0
    out.backward()
    assert torch.all(logits.grad == 0)


def test_soft_labels_mix_rows():
    logits, labels, targets = _batch()
    g = torch.Generator().manual_seed(1)
    soft = torch.softmax(torch.randn(12, 7, generator=g), dim=1)
    ours = AULoss(K, PW)(logits, soft, targets)
    ref = _reference(logits, soft, targets, lambda y: y @ PW, torch.ones(12, dtype=torch.bool))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    g_ours, g_ref = (torch.autograd.grad(v, logits, retain_graph=True)[0] for v in (ours, ref))
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-7)
    # a one-hot soft label is the hard label
    torch.testing.assert_close(
        AULoss(K, PW)(logits, F.one_hot(labels, 7).float(), targets), AULoss(K, PW)(logits, labels, targets)
    )


def test_eq9_literal_is_18_times_the_mean():
    logits, labels, targets = _batch()
    torch.testing.assert_close(
        AULoss(K, PW, reduction="sum_aus")(logits, labels, targets), 18 * AULoss(K, PW)(logits, labels, targets)
    )


def test_combined_loss_eq10_and_components():
    logits, labels, targets = _batch()
    expr = torch.randn(12, 7, requires_grad=True)
    loss = AUDFERLoss(K, PW, au_weight=0.3, label_smoothing=0.1)
    out = loss.components(expr, logits, labels, targets)
    ce = F.cross_entropy(expr, labels, label_smoothing=0.1)
    au = AULoss(K, PW)(logits, labels, targets)
    torch.testing.assert_close(out.expression, ce)
    torch.testing.assert_close(out.au, au)
    torch.testing.assert_close(out.total, 0.7 * ce + 0.3 * au)
    torch.testing.assert_close(loss(expr, logits, labels, targets), out.total)


def test_mixup_targets_and_loss_with_soft_labels():
    logits, labels, targets = _batch()
    perm = torch.roll(torch.arange(12), 1)
    mask = torch.ones(12, dtype=torch.bool)
    mask[5] = False
    soft, mixed, valid = mix_batch_targets(labels, targets, mask, 0.7, perm)
    torch.testing.assert_close(soft, 0.7 * F.one_hot(labels, 7).float() + 0.3 * F.one_hot(labels[perm], 7).float())
    torch.testing.assert_close(mixed, 0.7 * targets + 0.3 * targets[perm])
    assert valid.shape == (12, 18)  # the mask is per (clip, AU) element
    rows = valid.all(dim=1)
    assert not valid[5].any() and not valid[6].any() and rows.sum() == 10  # clip 6 was mixed with clip 5
    expr = torch.randn(12, 7)
    out = AUDFERLoss(K, PW).components(expr, logits, soft, mixed, valid)
    assert torch.isfinite(out.total)
    torch.testing.assert_close(out.expression, F.cross_entropy(expr, soft))
    # per-sample lambda (cutmix areas)
    lam = torch.linspace(0, 1, 12)
    soft2, mixed2, _ = mix_batch_targets(labels, targets, None, lam, perm)
    torch.testing.assert_close(mixed2, lam[:, None] * targets + (1 - lam[:, None]) * targets[perm])


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="pos_weight"):
        AULoss(K, np.ones(17))
    with pytest.raises(ValueError, match="knowledge"):
        AULoss(np.ones((7, 17)))
    with pytest.raises(ValueError, match="λ"):
        AUDFERLoss(K, None, au_weight=1.5)
