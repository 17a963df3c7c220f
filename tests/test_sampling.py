import numpy as np
import pytest

from audfer import AudferError
from audfer.data.sampling import (
    BEHAVIOURS,
    SAMPLERS,
    offset_indices,
    resolve_sampler,
    sample_indices,
    segment_indices,
    segmented_indices,
    strided_indices,
    uniform_indices,
)


def test_m3dfel_formula_gives_every_frame_its_own_offset_and_a_deterministic_test_time():
    n = 66  # a real DFEW clip length
    base = np.array([int(n * i / 16) for i in range(16)])
    # test: the centre of the training offsets 0..15 (mean 7.5), rounded down to a frame: 7
    np.testing.assert_array_equal(offset_indices(n), np.minimum(base + 7, n - 1))
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(50):
        idx = offset_indices(n, rng=rng)
        off = idx - np.array([int(n * i / 16) for i in range(16)])
        assert (0 <= off).all() and (off < 16).all()
        offsets.append(off[:-1])  # the last frame may be clamped
    offsets = np.array(offsets)
    # one offset per frame (TFace dataset_DFEW.py draws random() inside the frame loop), not one per clip
    assert (offsets.std(axis=1) > 0).mean() > 0.9
    np.testing.assert_array_equal(offset_indices(n), offset_indices(n))
    # the test position sits at the training clips' mean position (within the half frame of rounding), not 7.5 before
    mean_train = np.mean([offset_indices(n, rng=rng) for _ in range(4000)], axis=0)
    assert np.abs((offset_indices(n) - mean_train)[:-2]).max() < 0.7


def test_m3dfel_on_16_frame_folders_is_refused_unless_the_bug_is_asked_for():
    from audfer.config import load_config

    with pytest.raises(
        AudferError, match=r"53 % of the sampled frames the clip's last .*reproduce_bugs=\[m3dfel-16f\]"
    ):
        load_config("m3dfel_dfew", ["data.frames=clip_224x224_16f"])
    cfg = load_config("m3dfel_dfew", ["data.frames=clip_224x224_16f", "data.reproduce_bugs=[m3dfel-16f]"])
    assert cfg.data.reproduce_bugs == ("m3dfel-16f",)
    # what the bug does: of 16 frames, on average 8.5 are the clip's last (136 of 256 offset/frame pairs)
    rng = np.random.default_rng(0)
    share = np.mean([(offset_indices(16, rng=rng) == 15).mean() for _ in range(4000)])
    assert share == pytest.approx(136 / 256, abs=0.01)
    load_config("former_dfer_dfew", ["data.frames=clip_224x224_16f"])  # not M3DFEL's sampler: no such effect


def test_m3dfel_on_a_16_frame_clip_never_collapses_to_copies_of_the_last_frame():
    rng = np.random.default_rng(3)
    distinct = [len(set(offset_indices(16, rng=rng).tolist())) for _ in range(200)]
    assert min(distinct) >= 3  # one shared offset of 15 (1 in 16 draws) gives a single distinct frame


@pytest.mark.parametrize(
    "n, test, first, last",
    [
        # hand-worked from Former-DFER's VideoDataset (duration 2, 8 segments):
        # n = 8: avg = 7 // 8 = 0 and n > 8 fails -> all offsets 0; test: n > 9 fails -> all 0
        (8, [0, 1] * 8, None, None),
        # n = 16: avg = 15 // 8 = 1 -> offsets i + randint(1) = i: frames 0..8 only; test tick 15 / 8 = 1.875
        (
            16,
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8],
            8,
        ),
        # n = 77: avg = 76 // 8 = 9 -> offsets 9 i + randint(9): frames 0..72 at most; test tick 9.5
        (77, [4, 5, 14, 15, 23, 24, 33, 34, 42, 43, 52, 53, 61, 62, 71, 72], None, 72),
    ],
)
def test_former_dfer_indices_are_the_official_loaders(n, test, first, last):
    np.testing.assert_array_equal(segment_indices(n, 8, 2), test)
    rng = np.random.default_rng(n)
    draws = np.array([segment_indices(n, 8, 2, rng) for _ in range(500)])
    if first is not None:
        np.testing.assert_array_equal(draws[0], first)  # avg 1: randint(1) is always 0
    if n == 8:
        assert (draws == np.array([0, 1] * 8)).all()
    if last is not None:
        assert draws.max() == last  # only the first 8 * avg + 1 frames are ever used
    assert (draws[:, 1::2] == np.minimum(draws[:, ::2] + 1, n - 1)).all()  # two consecutive frames each
    if n == 77:
        avg = 9
        starts = draws[:, ::2]
        assert ((starts >= np.arange(8) * avg) & (starts < np.arange(8) * avg + avg)).all()
        assert len({tuple(d) for d in draws}) > 1


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


@pytest.mark.parametrize("kind", [*SAMPLERS, *BEHAVIOURS])
@pytest.mark.parametrize("n", [1, 5, 16, 300])
def test_every_sampler_stays_in_range(kind, n):
    rng = np.random.default_rng(n)
    for r in (None, rng):
        idx = sample_indices(kind, n, 16, r) if kind in SAMPLERS else BEHAVIOURS[kind](n, 16, rng=r)
        assert len(idx) == 16 and idx.min() >= 0 and idx.max() <= n - 1


def test_each_shipped_models_recipe_is_the_sampler_its_class_declares():
    """``data.sampling: m3dfel`` etc. keep their meaning, now read from the model's declaration through the registry:
    the same functions and options as the hand-written table and the Former-DFER special case they replace."""
    assert list(SAMPLERS) == ["m3dfel", "former_dfer", "mae_dfer", "uniform"]
    assert resolve_sampler("m3dfel") == (offset_indices, {})
    assert resolve_sampler("former_dfer") == (segmented_indices, {"per_segment": 2})
    assert resolve_sampler("mae_dfer") == (strided_indices, {})
    for n in (8, 11, 16, 77):
        np.testing.assert_array_equal(sample_indices("former_dfer", n, 16), segment_indices(n, 8, 2))
        a, b = np.random.default_rng(n), np.random.default_rng(n)
        np.testing.assert_array_equal(sample_indices("former_dfer", n, 16, a), segment_indices(n, 8, 2, b))
        np.testing.assert_array_equal(sample_indices("mae_dfer", n, 16, stride=2), strided_indices(n, 16, 2))
    with pytest.raises(AudferError, match="15 frames is not a multiple of 2 per segment"):
        sample_indices("former_dfer", 40, 15)


def test_uniform_and_errors():
    np.testing.assert_array_equal(uniform_indices(32, 16), np.arange(16) * 2 + 1)
    with pytest.raises(AudferError, match="unknown sampling"):
        sample_indices("random", 10)
    with pytest.raises(AudferError, match="at least one frame"):
        sample_indices("uniform", 0)
