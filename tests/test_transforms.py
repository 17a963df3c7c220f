import numpy as np
import torch
import torch.nn.functional as F

from audfer.data.transforms import ColorJitter, HorizontalFlip, Normalize, RandomResizedCrop, Resize, build_transform
from audfer.models import create_model


def _clip(t=4, h=40, w=50, seed=0):
    return torch.randint(0, 256, (t, 3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_same_augmentation_on_every_frame():
    frame = _clip(1)
    clip = frame.repeat(6, 1, 1, 1)  # six identical frames must stay identical after augmentation
    tf = build_transform(create_model("m3dfel_small").input_spec, train=True)
    for seed in range(5):
        out = tf(clip, np.random.default_rng(seed))
        assert out.shape == (6, 3, 64, 64) and out.dtype == torch.float32
        assert torch.equal(out[0], out[5])


def test_seeded_and_deterministic_at_test_time():
    clip = _clip()
    tf = build_transform(create_model("mae_dfer_small").input_spec, train=True)
    assert torch.equal(tf(clip, np.random.default_rng(3)), tf(clip, np.random.default_rng(3)))
    assert not torch.equal(tf(clip, np.random.default_rng(3)), tf(clip, np.random.default_rng(4)))
    test = build_transform(create_model("mae_dfer_small").input_spec, train=False)
    assert torch.equal(test(clip), test(clip))


def test_crop_box_inside_and_flip():
    rrc = RandomResizedCrop(32)
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = rrc.box(40, 50, rng)
        assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 50
        assert 0.08 * 2000 * 0.9 <= h * w <= 2000
    clip = _clip()
    flips = [torch.equal(HorizontalFlip(1.0)(clip, rng), clip.flip(-1)) for _ in range(3)]
    assert all(flips) and torch.equal(HorizontalFlip(1.0)(clip, None), clip)


def test_resize_and_normalise_against_torch():
    clip = _clip()
    ref = F.interpolate(clip.float(), size=(20, 20), mode="bilinear", antialias=True).round().clamp(0, 255)
    torch.testing.assert_close(Resize(20)(clip).float(), ref)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = Normalize(mean, std)(clip)
    torch.testing.assert_close(out[:, 1], (clip[:, 1].float() / 255 - 0.456) / 0.224)


def test_colour_jitter_keeps_range_and_changes_pixels():
    clip = _clip()
    out = ColorJitter()(clip, np.random.default_rng(5))
    assert out.dtype == torch.uint8 and not torch.equal(out, clip)
    gray = torch.full((2, 3, 4, 4), 128, dtype=torch.uint8)  # saturation/contrast leave flat gray alone
    assert torch.equal(ColorJitter(0, 0.4, 0.4)(gray, np.random.default_rng(1)), gray)


def test_randaugment_and_erasing_are_seeded_and_identical_across_frames():
    import numpy as np
    import torch

    from audfer.data.transforms import RandAugment, RandomErasing, build_transform
    from audfer.models.base import InputSpec

    frame = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8))
    clip = frame.repeat(6, 1, 1, 1)
    ra = RandAugment(7, 4)
    changed = 0
    for seed in range(10):
        a = ra(clip, np.random.default_rng(seed))
        b = ra(clip, np.random.default_rng(seed))
        assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == clip.shape
        assert all(torch.equal(a[0], a[t]) for t in range(6))  # one draw per clip
        changed += int(not torch.equal(a, clip))
    assert changed >= 8
    assert torch.equal(ra(clip, None), clip)  # test time: untouched
    er = RandomErasing(1.0)
    x = clip.float()
    y = er(x, np.random.default_rng(1))
    diff = (y != x).any(dim=1)
    assert diff.any() and all(torch.equal(diff[0], diff[t]) for t in range(6))
    spec = InputSpec(6, 32)
    t = build_transform(spec, True, jitter=0.0, randaugment=(7, 4), erasing=0.25)
    assert [type(s).__name__ for s in t.steps] == ["RandomResizedCrop", "HorizontalFlip", "RandAugment", "Normalize", "RandomErasing"]
