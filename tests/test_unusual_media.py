"""Frame folders and videos of the kinds real datasets hold: grayscale, alpha, 16-bit, stray and hidden files, mixed
sizes, a corrupt or empty frame, one-frame clips, long videos. Each works (converted to RGB uint8) or fails with one
line naming the file; memory follows the frames asked for, not the video's length."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import polars as pl
import pytest
import torch

from audfer import AudferError
from audfer.data import datasets as ds
from audfer.data.cache import ClipCache
from audfer.data.datasets import ClipDataset, ClipIndex, count_frames, frame_paths, read_frames
from audfer.data.sampling import SAMPLERS
from audfer.data.transforms import Resize


def _gradient(h=48, w=40):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6, y * 5, (x + y) * 3], axis=-1).astype(np.uint8)


def _video(path, n, size=(40, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    for t in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[..., 1] = t % 256
        writer.write(frame)
    writer.release()
    return path


def test_grayscale_alpha_and_16_bit_frames_become_rgb_uint8(tmp_path):
    rgb = _gradient()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    folders = {}
    for kind in ("gray", "alpha", "sixteen"):
        folder = tmp_path / kind
        folder.mkdir()
        for t in range(1, 4):
            if kind == "gray":
                cv2.imwrite(str(folder / f"{t}.png"), gray)
            elif kind == "alpha":
                bgra = np.dstack([rgb[..., ::-1], np.full(gray.shape, 128, np.uint8)])
                cv2.imwrite(str(folder / f"{t}.png"), bgra)
            else:
                cv2.imwrite(str(folder / f"{t}.png"), rgb[..., ::-1].astype(np.uint16) * 257)
        folders[kind] = folder
    frames = {k: read_frames(f) for k, f in folders.items()}
    for k, f in frames.items():
        assert f.shape == (3, 48, 40, 3) and f.dtype == np.uint8, k
    np.testing.assert_array_equal(frames["gray"][0], np.repeat(gray[..., None], 3, axis=-1))
    np.testing.assert_array_equal(frames["alpha"][0], rgb)  # colour kept, alpha dropped
    np.testing.assert_array_equal(frames["sixteen"][0], rgb)  # 16-bit scaled to 8-bit


def test_stray_and_hidden_files_are_not_frames(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in range(1, 4):
        cv2.imwrite(str(folder / f"{t:05d}.jpg"), _gradient())
    (folder / "notes.txt").write_text("annotator: A")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "._00001.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # a macOS resource fork
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    assert [p.name for p in frame_paths(folder)] == ["00001.jpg", "00002.jpg", "00003.jpg"]
    assert read_frames(folder).shape == (3, 48, 40, 3)


def test_a_frame_of_another_size_is_named(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in range(1, 5):
        cv2.imwrite(str(folder / f"{t}.png"), _gradient(48 if t != 3 else 50))
    with pytest.raises(AudferError, match=r"clip/3\.png: frame of 40x50 pixels, but 1\.png is 40x48"):
        read_frames(folder)


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 cut off"])
def test_an_empty_or_corrupt_frame_is_named(tmp_path, content):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in range(1, 4):
        cv2.imwrite(str(folder / f"{t}.jpg"), _gradient())
    (folder / "2.jpg").write_bytes(content)
    with pytest.raises(AudferError, match=r"clip/2\.jpg: unreadable frame image"):
        read_frames(folder)


def _index(paths):
    return ClipIndex(
        pl.DataFrame(
            {
                "clip_id": [p.stem for p in paths],
                "label": pl.Series([0] * len(paths), dtype=pl.Int8),
                "path": [str(p) for p in paths],
            }
        ),
        skipped=[],
    )


@pytest.mark.parametrize("sampling", sorted(SAMPLERS))
def test_one_frame_clips_give_a_full_clip_for_every_sampler(tmp_path, sampling):
    folder = tmp_path / "one"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), _gradient())
    video = _video(tmp_path / "one.avi", 1)
    for train in (False, True):
        data = ClipDataset(_index([folder, video]), Resize(32), num_frames=16, sampling=sampling, train=train)
        for i in range(2):
            clip = data[i][0]
            assert clip.shape == (16, 3, 32, 32) and torch.isfinite(clip.float()).all()


def test_a_long_video_is_read_in_bounded_memory_and_never_cached_whole(tmp_path, monkeypatch):
    video = _video(tmp_path / "long.avi", 3000, size=(64, 64))
    whole = 3000 * 64 * 64 * 3
    tracemalloc.start()
    frames = read_frames(video, [2999, 0, 1500, 1500])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    got = np.array([f[..., 1].mean() for f in frames])
    np.testing.assert_allclose(got, [2999 % 256, 0, 1500 % 256, 1500 % 256], atol=3)  # MJPG is lossy
    assert peak < whole / 20, f"peak {peak} bytes for 4 frames of a {whole}-byte video"
    assert count_frames(video) == 3000

    monkeypatch.setattr(ds, "CACHE_MAX_VIDEO_FRAMES", 100)
    cache = ClipCache(tmp_path / "cache", 32)
    data = ClipDataset(_index([video]), Resize(32), num_frames=4, sampling="uniform", cache=cache)
    assert data[0][0].shape == (4, 3, 32, 32)
    assert cache.misses == 0 and not list((tmp_path / "cache").rglob("*.clip"))


def _rotated_mp4(path):
    """An mp4 whose track header says "rotate 90°" (as phones write portrait video): the tkhd matrix set by hand."""
    import struct

    plain = path.with_name("plain.mp4")
    writer = cv2.VideoWriter(str(plain), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    for _ in range(10):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :16] = 255  # a white band along the left edge as stored
        writer.write(frame)
    writer.release()
    data = bytearray(plain.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data[at + 4] == 0  # a version-0 track header
    matrix = at + 4 + 4 + 4 * 5 + 8 + 8
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    return path


def test_rotation_metadata_is_applied_so_faces_come_upright(tmp_path):
    from audfer.predict.video import iter_frames

    video = _rotated_mp4(tmp_path / "portrait.mp4")
    frames = read_frames(video)
    assert frames.shape == (10, 64, 48, 3)  # rotated as the player shows it
    assert frames[0, :8].mean() > 200 and frames[0, 20:].mean() < 50  # the band is now along the top
    streamed = np.stack(list(iter_frames(video)))
    np.testing.assert_array_equal(streamed, frames)
    assert count_frames(video) == 10


def _variable_rate_mp4(path):
    """A 10-frame mp4 whose first 5 frames last 40 ms and last 5 frames 80 ms (a phone's variable frame rate): the
    sample-time table (stts) and the durations rewritten by hand, the boxes above it grown to fit."""
    import struct

    plain = path.with_name("cfr.mp4")
    writer = cv2.VideoWriter(str(plain), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    for t in range(10):
        writer.write(np.full((48, 64, 3), 20 * t, np.uint8))
    writer.release()
    d = bytearray(plain.read_bytes())
    assert d.find(b"mdat") < d.find(b"moov")  # growing moov moves no sample data
    i = d.find(b"stts")
    timescale = struct.unpack(">I", d[d.find(b"mdhd") + 16 : d.find(b"mdhd") + 20])[0]
    tick = timescale // 25
    d[i - 4 : i + 20] = struct.pack(">I4sIIIIII", 32, b"stts", 0, 2, 5, tick, 5, 2 * tick)
    for name in (b"stbl", b"minf", b"mdia", b"trak", b"moov"):
        j = d.find(name)
        d[j - 4 : j] = struct.pack(">I", struct.unpack(">I", d[j - 4 : j])[0] + 8)
    m, v = d.find(b"mdhd"), d.find(b"mvhd")
    d[m + 20 : m + 24] = struct.pack(">I", 15 * tick)
    movie = round(15 * tick / timescale * struct.unpack(">I", d[v + 16 : v + 20])[0])
    for box, off in ((b"mvhd", 20), (b"tkhd", 24), (b"elst", 12)):
        j = d.find(box)
        if j > 0:
            d[j + off : j + off + 4] = struct.pack(">I", movie)
    path.write_bytes(bytes(d))
    return path


def test_a_variable_frame_rate_video_gets_its_frames_real_times(tmp_path):
    from audfer.models import create_model
    from audfer.predict.predictor import predict_video
    from audfer.predict.video import iter_frames

    video = _variable_rate_mp4(tmp_path / "vfr.mp4")
    stamps: list[float] = []
    frames = list(iter_frames(video, times=stamps))
    assert len(frames) == 10
    np.testing.assert_allclose(stamps, [0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.28, 0.36, 0.44, 0.52], atol=1e-6)
    model = create_model("former_dfer_small").eval()
    result = predict_video(video, model, window=4, stride=3, face="full")
    times = result.windows.select("start_frame", "start_time", "end_time").rows()
    # frame 6 starts at 0.28 s, not at 6 / (declared average rate); the last window ends after the last frame's 80 ms
    assert times == [(0, 0.0, 0.16), (3, 0.12, 0.36), (6, 0.28, 0.6)]
