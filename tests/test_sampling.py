import numpy as np
import pytest

from audfer import AudferError
from audfer.data.sampling import m3dfel_indices, sample_indices, segment_indices, strided_indices, uniform_indices


def test_m3dfel_formula_and_deterministic_test_time():
    n = 66  # a real DFEW clip length
    np.testing.assert_array_equal(m3dfel_indices(n), [int(n * i / 16) for i in range(16)])
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = m3dfel_indices(n, rng=rng)
        off = idx[0]
        assert 0 <= off < 16
        np.testing.assert_array_equal(idx, np.minimum([int(n * i / 16) + off for i in range(16)], n - 1))
    np.testing.assert_array_equal(m3dfel_indices(n), m3dfel_indices(n))


def test_segments_two_consecutive_frames_each():
    idx = segment_indices(80, 8, 2)
    assert len(idx) == 16
    for s in range(8):
        a, b = idx[2 * s], idx[2 * s + 1]
        assert b == a + 1 and 10 * s <= a and b < 10 * (s + 1)
        assert a == 10 * s + 4  # centre at test: span 9 -> start + 4
    rng = np.random.default_rng(1)
    assert len({tuple(segment_indices(80, 8, 2, rng)) for _ in range(10)}) > 1


def test_strided_views_and_padding():
    idx = strided_indices(100, 16, 4)
    np.testing.assert_array_equal(np.diff(idx), 4)
    v0, v1 = strided_indices(100, 16, 4, view=0, views=2), strided_indices(100, 16, 4, view=1, views=2)
    assert v0[0] == 0 and v1[-1] == 99
    short = strided_indices(10, 16, 4)
    assert len(short) == 16 and short.max() <= 9 and np.all(np.diff(short) >= 0)


@pytest.mark.parametrize("kind", ["m3dfel", "former_dfer", "mae_dfer", "uniform"])
@pytest.mark.parametrize("n", [1, 5, 16, 300])
def test_every_sampler_stays_in_range(kind, n):
    rng = np.random.default_rng(n)
    for r in (None, rng):
        idx = sample_indices(kind, n, 16, r)
        assert len(idx) == 16 and idx.min() >= 0 and idx.max() <= n - 1


def test_uniform_and_errors():
    np.testing.assert_array_equal(uniform_indices(32, 16), np.arange(16) * 2 + 1)
    with pytest.raises(AudferError, match="unknown sampling"):
        sample_indices("random", 10)
    with pytest.raises(AudferError, match="at least one frame"):
        sample_indices("uniform", 0)
