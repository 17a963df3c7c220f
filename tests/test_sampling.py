import numpy as np
import pytest

from audfer import AudferError
from audfer.data.sampling import m3dfel_indices, sample_indices, segment_indices, strided_indices, uniform_indices


def test_m3dfel_formula_gives_every_frame_its_own_offset_and_a_deterministic_test_time():
    n = 66  # a real DFEW clip length
    np.testing.assert_array_equal(m3dfel_indices(n), [int(n * i / 16) for i in range(16)])
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(50):
        idx = m3dfel_indices(n, rng=rng)
        off = idx - np.array([int(n * i / 16) for i in range(16)])
        assert (0 <= off).all() and (off < 16).all()
        offsets.append(off[:-1])  # the last frame may be clamped
    offsets = np.array(offsets)
    # one offset per frame (TFace dataset_DFEW.py draws random() inside the frame loop), not one per clip
    assert (offsets.std(axis=1) > 0).mean() > 0.9
    np.testing.assert_array_equal(m3dfel_indices(n), m3dfel_indices(n))


def test_m3dfel_on_a_16_frame_clip_never_collapses_to_copies_of_the_last_frame():
    rng = np.random.default_rng(3)
    distinct = [len(set(m3dfel_indices(16, rng=rng).tolist())) for _ in range(200)]
    assert min(distinct) >= 3  # one shared offset of 15 (1 in 16 draws) gives a single distinct frame


def test_segments_two_consecutive_frames_each():
    idx = segment_indices(80, 8, 2)
    assert len(idx) == 16
    for s in range(8):
        a, b = idx[2 * s], idx[2 * s + 1]
        assert b == a + 1 and 10 * s <= a and b < 10 * (s + 1)
        assert a == 10 * s + 4  # centre at test: span 9 -> start + 4
    rng = np.random.default_rng(1)
    assert len({tuple(segment_indices(80, 8, 2, rng)) for _ in range(10)}) > 1


def test_strided_test_views_follow_the_official_loader():
    # kinetics.py test mode: every 4th frame, then view starts int(view * (len - 16) / (views - 1))
    every = np.arange(0, 100, 4)  # 25 frames
    v0, v1 = strided_indices(100, 16, 4, view=0, views=2), strided_indices(100, 16, 4, view=1, views=2)
    np.testing.assert_array_equal(v0, every[:16])
    np.testing.assert_array_equal(v1, every[9:25])
    np.testing.assert_array_equal(np.diff(strided_indices(100, 16, 4)), 4)
    short = strided_indices(10, 16, 4, view=1, views=2)  # 0, 4, 8 then 8 repeated
    np.testing.assert_array_equal(short, [0, 4, 8] + [8] * 13)


def test_strided_training_window_and_short_clip_padding_as_the_official_loader():
    rng = np.random.default_rng(0)
    for _ in range(30):
        idx = strided_indices(200, 16, 4, rng=rng)
        start = idx[0]
        expected = np.clip(np.linspace(start, start + 64, 16), start, start + 63).astype(int)
        np.testing.assert_array_equal(idx, expected)
        assert 0 <= start <= 200 - 64 - 1
    # a 16-frame clip at stride 4: linspace(0, 16, 4) then the last frame repeated (clamped to 15)
    np.testing.assert_array_equal(strided_indices(16, 16, 4, rng=rng), [0, 5, 10, 15] + [15] * 12)
    np.testing.assert_array_equal(
        strided_indices(64, 16, 4, rng=rng), np.clip(np.linspace(0, 64, 16), 0, 63).astype(int)
    )


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
