"""RandAugment on the CPU: uint8 tables for the pointwise ops, integer sums for Sharpness, and the shears and
translations as 4-tap line resampling, all giving the pixels of the float batch path (what the training device runs)
bit for bit; and the geometric ops' semantics (bicubic, taps outside the frame read timm's fill 128) checked against an
independent float64 computation and against PIL's own bicubic affine transform (timm's op)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audfer.data.transforms import RandAugment
from audfer.data.transforms import randaugment as ra_mod


def _frames(t: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth frames with edges (a face-sized blob and stripes over a gradient), the first a constant grey frame, the
    second with only two levels per channel: the cases where the frame statistics degenerate."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(t):
        if i == 0:
            out.append(np.full((size, size, 3), 97.0))
            continue
        if i == 1:
            out.append(np.where(rng.random((size, size, 3)) < 0.5, 12.0, 201.0))
            continue
        base = 40 + 150 * xx[..., None] * rng.uniform(0.5, 1.0, 3) + 40 * np.sin(9 * yy)[..., None]
        blob = 60 * np.exp(-(((xx - 0.5) ** 2 + (yy - 0.45) ** 2) / 0.03))[..., None]
        out.append(base + blob + rng.normal(0, 4, (size, size, 3)))
    x = np.clip(np.rint(np.stack(out)), 0, 255).astype(np.uint8)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_op_on_the_cpu_is_the_float_batch_path_bit_for_bit(sign):
    """``apply_params`` on a CPU uint8 clip (tables, integer sums, line resampling) against ``apply_batch`` (the float
    path the device runs), every op at several magnitudes, alone and chained, on frames whose statistics degenerate."""
    ra = RandAugment(m=7, n=4, mstd=0.5)
    clip = _frames(t=4, size=48)
    for op in ra.ops:
        for mag in (0.0, 3.3, 7.0, 9.1, 10.0):
            got = ra.apply_params(clip, [(op, mag, sign)])
            want = ra.apply_batch(clip[None], [[(op, mag, sign)]])[0]
            assert got.dtype == torch.uint8 and torch.equal(got, want), (op, mag)
    rng = np.random.default_rng(1)
    for _ in range(30):
        params = [
            (ra.ops[int(i)], float(rng.uniform(0, 10)), float(rng.choice([-1.0, 1.0]))) for i in rng.integers(0, 15, 4)
        ]
        assert torch.equal(ra.apply_params(clip, params), ra.apply_batch(clip[None], [params])[0]), params


def test_line_resampling_is_the_same_on_the_cpu_and_gathered():
    """The CPU's band-by-band line resampling and the gathered form used off the CPU give the same values, for shifts
    inside, across and beyond the frame, integer or not, constant (translations) or growing by row (shears)."""
    x = _frames(t=2, size=40).float()
    h, w = x.shape[-2:]
    rows = np.arange(h) + 0.5
    for shifts in (
        np.full(h, 7.3),
        np.full(h, -55.2),
        np.full(h, 0.0),
        0.21 * rows,
        -0.3 * rows + 3.7,
        np.full(h, 99.0),
    ):
        k = np.clip(np.floor(shifts), -(w + 2), w + 2).astype(np.int64)
        weights = torch.tensor(ra_mod._cubic_weights(shifts - np.floor(shifts)), dtype=torch.float32)
        assert torch.equal(ra_mod._shift_lines(x, shifts), ra_mod._shift_lines_gathered(x, k, weights))


def test_line_resampling_is_bicubic_with_the_fill_outside():
    """Against an independent float64 computation of bicubic convolution (Keys, A = -0.75) with every tap outside the
    frame reading 128; an integer shift moves the pixels exactly and fills the uncovered columns with 128."""
    x = _frames(t=1, size=32).float()
    w = x.shape[-1]

    def keys(u: float) -> float:
        u, a = abs(u), -0.75
        if u <= 1:
            return (a + 2) * u**3 - (a + 3) * u**2 + 1
        return a * u**3 - 5 * a * u**2 + 8 * a * u - 4 * a if u < 2 else 0.0

    src = x.double().numpy()
    for shift in (2.37, -5.81, 0.5):
        got = ra_mod._shift_lines(x, np.full(x.shape[-2], shift)).numpy()
        want = np.zeros_like(src)
        for c in range(w):
            pos = c + shift
            base = int(np.floor(pos))
            for tap in range(base - 1, base + 3):
                v = src[..., tap] if 0 <= tap < w else 128.0
                want[..., c] += keys(pos - tap) * v
        np.testing.assert_allclose(got, want, atol=2e-3)
    moved = ra_mod._shift_lines(x, np.full(x.shape[-2], 5.0))
    assert torch.equal(moved[..., : w - 5], x[..., 5:]) and bool((moved[..., w - 5 :] == 128).all())


def test_the_geometric_ops_are_near_pils_bicubic_affine():
    """timm's ops are PIL's ``Image.transform``/``rotate`` with BICUBIC and fillcolor 128 (sunlicai/MAE-DFER
    ``rand_augment.py``, ``shear_x`` ... ``rotate``). audfer's bicubic is torch's (A = -0.75, not PIL's kernel), so
    pixels differ by rounding inside and at the frame's edge: on smooth frames the mean difference stays below one
    level and 97 % of the pixels are within 2 levels."""
    from PIL import Image

    clip = _frames(t=3, size=96)[2:]
    frame = Image.fromarray(clip[0].permute(1, 2, 0).numpy())
    ra = RandAugment()
    for op, data in (
        ("ShearX", (1, 0.21, 0, 0, 1, 0)),
        ("ShearY", (1, 0, 0, -0.21, 1, 0)),
        ("TranslateXRel", (1, 0, 0.315 * 96, 0, 1, 0)),
        ("TranslateYRel", (1, 0, 0, 0, 1, -0.315 * 96)),
        ("Rotate", None),
    ):
        sign = -1.0 if op in ("ShearY", "TranslateYRel") else 1.0
        got = ra.apply_params(clip, [(op, 7.0, sign)])[0].permute(1, 2, 0).numpy().astype(int)
        if data is None:
            pil = frame.rotate(21.0, resample=Image.BICUBIC, fillcolor=(128, 128, 128))
        else:
            pil = frame.transform(frame.size, Image.AFFINE, data, resample=Image.BICUBIC, fillcolor=(128, 128, 128))
        diff = np.abs(got - np.asarray(pil).astype(int))
        assert diff.mean() < 1.0 and (diff <= 2).mean() > 0.97, (op, diff.mean(), (diff <= 2).mean())
