"""Decoded-clip cache, reduced-scale JPEG decoding and the unreadable-frame option."""

import os
import shutil
import time
import warnings

import cv2
import numpy as np
import polars as pl
import pytest
import torch

from audfer import AudferError
from audfer.data.cache import ClipCache
from audfer.data.datasets import ClipDataset, ClipIndex, read_frames
from audfer.data.transforms import Resize


def _clip(folder, n=10, size=64, ext=".png", seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    for t in range(n):
        cv2.imwrite(str(folder / f"{t + 1:05d}{ext}"), np.roll(base, t, axis=1))
    return folder


def _index(*folders):
    return ClipIndex(
        pl.DataFrame(
            {
                "clip_id": [f.name for f in folders],
                "label": pl.Series([1] * len(folders), dtype=pl.Int8),
                "path": [str(f) for f in folders],
            }
        ),
        skipped=[],
    )


def test_cache_fills_once_then_serves_the_same_frames(tmp_path):
    folder = _clip(tmp_path / "c1")
    cache = ClipCache(tmp_path / "cache", 64)
    first = np.array(cache.get(folder))
    again = cache.get(folder)
    assert (cache.misses, cache.hits) == (1, 1)
    assert not again.flags.writeable  # served from memory, shared: nobody may change it
    np.testing.assert_array_equal(first, read_frames(folder))
    fresh = ClipCache(tmp_path / "cache", 64, memory_mb=0)  # another process: from disk, holds nothing in memory
    np.testing.assert_array_equal(fresh.get(folder), first)
    assert (fresh.misses, fresh.hits, fresh._held_bytes) == (0, 1, 0)
    cv2.imwrite(str(folder / "00011.png"), np.zeros((64, 64, 3), np.uint8))  # re-extracted clip -> new entry
    assert len(cache.get(folder)) == 11 and cache.misses == 2


def test_cached_dataset_gives_the_same_items_as_the_uncached_one(tmp_path):
    index = _index(_clip(tmp_path / "a", 12), _clip(tmp_path / "b", 20, seed=1))
    kw = dict(num_frames=8, sampling="m3dfel", train=True, seed=5)
    plain = ClipDataset(index, Resize(64), **kw)
    cached = ClipDataset(index, Resize(64), cache=ClipCache(tmp_path / "cache", 64), **kw)
    for epoch in range(2):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(2):
            torch.testing.assert_close(plain[i][0], cached[i][0], rtol=0, atol=0)


def test_large_jpegs_are_decoded_at_reduced_scale(tmp_path):
    folder = _clip(tmp_path / "big", 3, size=224, ext=".jpg")
    full = read_frames(folder)
    small = read_frames(folder, min_size=112)
    assert full.shape[1:3] == (224, 224) and small.shape[1:3] == (112, 112)
    ref = np.stack([cv2.resize(f, (112, 112), interpolation=cv2.INTER_AREA) for f in full])
    assert np.abs(small.astype(int) - ref).mean() < 3
    assert read_frames(folder, min_size=113).shape[1:3] == (224, 224)  # 1/2 scale would be too small
    cache = ClipCache(tmp_path / "cache", 100)
    np.testing.assert_array_equal(cache.get(folder), read_frames(folder, min_size=100))  # what the dataset decodes


@pytest.mark.parametrize("decode", ["full", "reduced"])
def test_training_items_do_not_depend_on_the_cache_with_random_crops(tmp_path, decode):
    """``data.cache`` is incidental: with the recipes' random resized crops and both decodes, a run's items are
    bit-identical with and without the cache (the cache stores exactly what the dataset decodes)."""
    from audfer.data.transforms import Compose as C
    from audfer.data.transforms import HorizontalFlip, RandomResizedCrop

    index = _index(
        _clip(tmp_path / "a", 12, size=224, ext=".jpg"), _clip(tmp_path / "b", 20, size=224, ext=".jpg", seed=1)
    )
    kw = dict(num_frames=8, sampling="m3dfel", train=True, seed=5, decode_size=None if decode == "full" else 64)
    make = lambda cache: ClipDataset(index, C(RandomResizedCrop(64), HorizontalFlip()), cache=cache, **kw)  # noqa: E731
    plain, cached = make(None), make(ClipCache(tmp_path / "cache", None if decode == "full" else 64))
    for epoch in range(2):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(2):
            torch.testing.assert_close(plain[i][0], cached[i][0], rtol=0, atol=0)


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    folder = _clip(tmp_path / "c")
    cache = ClipCache(tmp_path / "cache", 64)
    cache.get(folder)
    cache.entry(folder).write_bytes(b"not an array")
    np.testing.assert_array_equal(cache.get(folder), read_frames(folder))


@pytest.mark.parametrize("cached", [False, True])
def test_unreadable_frame_raises_naming_it_or_is_skipped_and_listed(tmp_path, cached):
    folder = _clip(tmp_path / "c", 10)
    bad = folder / "00004.png"
    bad.write_bytes(b"\x89PNG garbage")
    index = _index(folder)
    make = lambda mode: ClipDataset(
        index,
        Resize(64),
        num_frames=10,
        sampling="uniform",
        on_bad_frame=mode,
        cache=ClipCache(tmp_path / f"cache-{mode}", 64) if cached else None,
    )
    with pytest.raises(AudferError, match="00004.png: unreadable frame image"):
        make("raise")[0]
    ds = make("skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = ds[0][0]
    assert clip.shape == (10, 3, 64, 64)
    assert any("00004.png" in str(w.message) for w in caught)
    if not cached:
        assert ds.skipped_frames == [str(bad)]
    with pytest.raises(AudferError, match="on_bad_frame"):
        ClipDataset(index, Resize(64), on_bad_frame="ignore")


def _rewrite_in_place(path, pixels, keep_mtime_ns):
    """Write new pixels into the same file (same inode, same byte size: raw BMP), then put its modification time back
    (what ``touch -r`` or a careful editor does)."""
    data = cv2.imencode(".bmp", pixels)[1].tobytes()
    assert len(data) == path.stat().st_size
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(keep_mtime_ns, keep_mtime_ns))


@pytest.mark.parametrize("restore_file_mtime", [False, True])
def test_frames_rewritten_in_place_are_decoded_again_with_and_without_the_cache(tmp_path, restore_file_mtime):
    """``ffmpeg -y`` or an editor rewrites frames in place: the folder's mtime and entry count and every file size stay
    as they were; the cached items still equal the uncached ones (new pixels), in this process (memory) and another."""
    folder = _clip(tmp_path / "c", 6, size=32, ext=".bmp")
    index = _index(folder)
    kw = dict(num_frames=6, sampling="uniform")
    cache = ClipCache(tmp_path / "cache", None)
    cached = ClipDataset(index, Resize(32), cache=cache, **kw)
    before = cached[0][0].clone()
    folder_mtime = folder.stat().st_mtime_ns
    time.sleep(0.01)
    for f in sorted(folder.iterdir())[::2]:
        old = f.stat().st_mtime_ns
        _rewrite_in_place(f, 255 - cv2.imread(str(f)), old if restore_file_mtime else old + 10**9)
    os.utime(folder, ns=(folder_mtime, folder_mtime))
    assert folder.stat().st_mtime_ns == folder_mtime and len(list(folder.iterdir())) == 6
    plain = ClipDataset(index, Resize(32), **kw)[0][0]
    assert not torch.equal(plain, before)  # the frames did change
    torch.testing.assert_close(cached[0][0], plain, rtol=0, atol=0)  # same process: not served from memory
    assert cache.misses == 2
    other = ClipDataset(index, Resize(32), cache=ClipCache(tmp_path / "cache", None), **kw)  # another process
    torch.testing.assert_close(other[0][0], plain, rtol=0, atol=0)
    assert other.cache.hits == 1


def test_an_entry_holding_another_clips_frames_is_detected_and_rebuilt(tmp_path):
    """A whole, CRC-valid entry of clip ``b`` copied over clip ``a``'s (same shape) is not served as ``a``."""
    a, b = _clip(tmp_path / "a", 8, size=32, seed=0), _clip(tmp_path / "b", 8, size=32, seed=1)
    cache = ClipCache(tmp_path / "cache", None, memory_mb=0)
    np.testing.assert_array_equal(cache.get(a), read_frames(a))
    np.testing.assert_array_equal(cache.get(b), read_frames(b))
    shutil.copyfile(cache.entry(b), cache.entry(a))
    fresh = ClipCache(tmp_path / "cache", None)
    with pytest.warns(UserWarning, match="another clip"):
        got = fresh.get(a)
    np.testing.assert_array_equal(got, read_frames(a))
    assert (fresh.hits, fresh.misses) == (0, 1)
    np.testing.assert_array_equal(ClipCache(tmp_path / "cache", None).get(a), read_frames(a))  # rebuilt: a hit now


def test_the_cache_key_changes_with_any_frame_files_identity_and_ignores_non_frames(tmp_path):
    folder = _clip(tmp_path / "c", 4, size=16)
    cache = ClipCache(tmp_path / "cache", None)
    k = cache.key(folder)
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".DS_Store").write_bytes(b"\0")
    assert cache.key(folder) == k  # files that are not frames do not matter
    frame = folder / "00002.png"
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert cache.key(folder) != k
