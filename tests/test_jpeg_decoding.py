"""JPEG frames are decoded by libjpeg-turbo directly (simplejpeg) with OpenCV's pixels, bit for bit, at every DCT
scale ``data.decode=reduced`` uses; what TurboJPEG does not read (CMYK, EXIF-rotated frames, other formats) is decoded
by OpenCV as before; a cut-off or corrupt JPEG is an error naming the file, whichever decoder reads it."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
from PIL import Image

from audfer import AudferError
from audfer.data import datasets as ds
from audfer.data.cache import ClipCache
from audfer.data.datasets import ClipDataset, ClipIndex, read_frames
from audfer.data.transforms import Resize

pytest.importorskip("simplejpeg")

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def _face_like(h=250, w=190, seed=0):
    """Smooth shading, hard edges and sensor noise: every DCT frequency and chroma subsampling edge case gets used."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([120 + 80 * np.sin(x / 17), 90 + 0.5 * y, 200 - 0.4 * (x + y)], axis=-1)
    img[h // 4 : h // 2, w // 3 : w // 2] = (250, 20, 40)  # a saturated block with sharp borders
    img += np.random.default_rng(seed).normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_kinds(folder: Path) -> dict[str, Path]:
    rgb = _face_like()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    kinds = {
        "baseline_420": (bgr, []),
        "baseline_444": (bgr, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
        "baseline_422": (bgr, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]),
        "progressive_420": (bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "optimized_restarts": (bgr, [cv2.IMWRITE_JPEG_OPTIMIZE, 1, cv2.IMWRITE_JPEG_RST_INTERVAL, 3]),
        "grayscale": (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 80]),
    }
    paths = {}
    for name, (img, params) in kinds.items():
        paths[name] = folder / f"{name}.jpg"
        assert cv2.imwrite(str(paths[name]), img, params)
    pil = Image.fromarray(rgb)  # another encoder: PIL's libjpeg, progressive 4:4:4 and 4:2:0 at quality 95
    for name, sub in (("pil_progressive_444", 0), ("pil_progressive_420", 2)):
        paths[name] = folder / f"{name}.jpg"
        pil.save(paths[name], quality=95, subsampling=sub, progressive=True)
    return paths


def _opencv(path: Path, factor: int) -> np.ndarray:
    """What audfer decoded before: ``cv2.imread`` at OpenCV's reduced flag, BGR -> RGB."""
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}
    img = cv2.imread(str(path), flag.get(factor, cv2.IMREAD_REDUCED_COLOR_8))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_jpeg_pixels_equal_opencv_bit_for_bit_at_every_dct_scale(tmp_path, factor):
    for name, path in _write_kinds(tmp_path).items():
        new = ds._decode_jpeg(path, path.read_bytes(), factor)
        assert new is not None, f"{name}: left to OpenCV, so the comparison would test nothing"
        ref = _opencv(path, factor)
        assert new.shape == ref.shape == (-(-250 // factor), -(-190 // factor), 3), name
        assert new.dtype == np.uint8 and new.flags.c_contiguous, name
        np.testing.assert_array_equal(new, ref, err_msg=name)


def test_reduced_decoding_of_a_folder_equals_opencvs_and_the_cache_keeps_it(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in range(1, 5):
        Image.fromarray(_face_like(256, 320, seed=t)).save(folder / f"{t:05d}.jpg", quality=90)
    files = sorted(folder.iterdir())
    for min_size, factor in ((None, 1), (112, 2), (64, 4), (32, 8), (200, 1)):
        frames = read_frames(folder, min_size=min_size)
        np.testing.assert_array_equal(frames, np.stack([_opencv(f, factor) for f in files]))
    cache = ClipCache(tmp_path / "cache", size=112)
    first, again = cache.get(folder), ClipCache(tmp_path / "cache", size=112).get(folder)
    np.testing.assert_array_equal(first, read_frames(folder, min_size=112))
    np.testing.assert_array_equal(again, first)


def test_jpegs_in_the_shared_fixtures_equal_opencv():
    found = sorted(p for p in FIXTURES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")) if FIXTURES.is_dir() else []
    if not found:
        pytest.skip(f"no JPEG files under {FIXTURES} (the comparison runs on the ones written by the test above)")
    for path in found:
        for factor in (1, 2):
            new = ds._decode_jpeg(path, path.read_bytes(), factor)
            if new is not None:
                np.testing.assert_array_equal(new, _opencv(path, factor), err_msg=str(path))


def test_cmyk_and_exif_rotated_jpegs_are_left_to_opencv_with_todays_pixels(tmp_path):
    rgb = _face_like(64, 48)
    cmyk, rotated = tmp_path / "cmyk.jpg", tmp_path / "rotated.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk, quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display", which cv2.imread applies
    Image.fromarray(rgb).save(rotated, quality=90, exif=exif)
    for path in (cmyk, rotated):
        assert ds._decode_jpeg(path, path.read_bytes(), 1) is None
        np.testing.assert_array_equal(ds._read_image(path, 1), _opencv(path, 1))
    assert ds._read_image(rotated, 1).shape == (48, 64, 3)  # upright, as OpenCV gave it
    assert ds._exif_orientation(rotated.read_bytes()) == 6
    assert ds._exif_orientation(tmp_path.joinpath("cmyk.jpg").read_bytes()) == 1


def _clip_with(tmp_path, damage) -> Path:
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in range(1, 4):
        Image.fromarray(_face_like(64, 48, seed=t)).save(folder / f"{t}.jpg", quality=90)
    path = folder / "2.jpg"
    path.write_bytes(damage(path.read_bytes()))
    return folder


def _cut(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _stray_marker(data: bytes) -> bytes:  # a restart marker where none belongs: the scan's data ends early
    return data[: len(data) // 2] + b"\xff\xd0" + data[len(data) // 2 :]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(_cut, r"Premature end of JPEG file"), (_stray_marker, r"Corrupt JPEG data: premature end of data segment")],
)
def test_a_cut_off_or_corrupt_jpeg_is_an_error_naming_it_not_grey_padding(tmp_path, damage, reason):
    folder = _clip_with(tmp_path, damage)
    cv2_img = cv2.imread(str(folder / "2.jpg"))
    assert cv2_img is not None  # what OpenCV did: an image (padded or patched), only a libjpeg warning on stderr
    with pytest.raises(AudferError, match=rf"clip/2\.jpg: cut off or corrupt JPEG \({reason}"):
        read_frames(folder)
    with pytest.raises(AudferError, match=r"clip/2\.jpg: cut off or corrupt JPEG"):
        read_frames(folder, min_size=16)


def test_a_cut_off_jpeg_is_named_when_opencv_decodes_it_too(tmp_path, monkeypatch):
    folder = _clip_with(tmp_path, _cut)
    monkeypatch.setattr(ds, "_simplejpeg", lambda: None)  # simplejpeg missing: OpenCV decodes every frame
    np.testing.assert_array_equal(read_frames(folder, [0]), _opencv(folder / "1.jpg", 1)[None])
    with pytest.raises(AudferError, match=r"clip/2\.jpg: cut off JPEG \(no end-of-image marker\)"):
        read_frames(folder)
    assert not ds._jpeg_cut_off((folder / "1.jpg").read_bytes())


def test_the_sampler_skips_a_cut_off_frame_with_a_warning_naming_it(tmp_path):
    folder = _clip_with(tmp_path, _cut)
    index = ClipIndex(
        pl.DataFrame({"clip_id": ["clip"], "label": pl.Series([0], dtype=pl.Int8), "path": [str(folder)]}),
        skipped=[],
    )
    dataset = ClipDataset(index, Resize(32), num_frames=4, on_bad_frame="skip")
    with pytest.warns(UserWarning, match=r"skipped .*clip/2\.jpg: cut off or corrupt JPEG \(Premature end"):
        clip = dataset[0][0]
    assert clip.shape == (4, 3, 32, 32) and dataset.skipped_frames == [str(folder / "2.jpg")]


def test_a_png_named_jpg_and_other_formats_keep_opencvs_behaviour(tmp_path):
    rgb = _face_like(40, 32)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    for folder, name, reduced in ((tmp_path / "named_jpg", "1.jpg", 4), (tmp_path / "png", "1.png", 1)):
        folder.mkdir()
        (folder / name).write_bytes(buf.getvalue())  # a PNG, once under a .jpg name
        np.testing.assert_array_equal(read_frames(folder), rgb[None])
        # min_size=8: a 1/4 decode, which OpenCV does for a .jpg name (by resizing the PNG), not for a .png
        np.testing.assert_array_equal(read_frames(folder, min_size=8), _opencv(folder / name, reduced)[None])
