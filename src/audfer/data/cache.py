"""Decoded-clip cache: each clip's frames decoded once, stored as uint8, exactly as the dataset decodes them.

The first epoch decodes every frame of a clip as the uncached path would (as stored under ``data.decode=full``;
JPEG folders at reduced DCT scale under ``reduced``, ``size`` being the input size they must keep) and stores
``(T, H, W, 3)`` uint8 as one ``.clip`` entry (a small header with the shape and a CRC-32, then the raw pixels:
never a pickle; a cut-off or edited entry is detected and rebuilt); later epochs read it and slice the sampled
frames. Sampling, crops, flips and colour jitter still run per epoch on the cached frames, so a run's items are the
same with and without the cache (tested).

Entries are keyed by the clip's absolute path, its modification time and frame count and the cache
size, so edited or re-extracted clips are decoded again. Within a process, entries already read stay
in memory (up to ``memory_mb``, default 1024 MB) and a clip's key is recomputed only when its
modification time changes, so a small dataset costs one stat per clip and epoch after the first. Writes are atomic
(temporary file + rename), so several DataLoader workers or processes can fill one cache. Disk cost: ``T * H * W * 3``
bytes a clip (16 frames at 256 px: 3.1 MB; reduced to 128 px: 0.8 MB).
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from audfer.data.datasets import UnreadableFrame, frame_paths, read_frames
from audfer.errors import CacheEntryError, InputError
from audfer.hints import PathLike

#: An entry: this magic, then little-endian uint32 T, H, W, C and the CRC-32 of the pixels, then the uint8 pixels.
_MAGIC = b"AUDFERCLIP\x01\x00"
_HEADER = struct.Struct("<5I")


def write_entry(entry: Path, frames: np.ndarray) -> None:
    """Store ``frames`` (T, H, W, 3) uint8 at ``entry``: written to a temporary file beside it and renamed into
    place, so a reader sees the old entry, no entry or the whole new one (concurrent fillers, a kill mid-write)."""
    pixels = np.ascontiguousarray(frames, dtype=np.uint8)
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.stem}.", suffix=".part", dir=entry.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + _HEADER.pack(*pixels.shape, zlib.crc32(pixels.data)))
            fh.write(pixels.data)
        os.replace(tmp, entry)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_entry(entry: Path) -> np.ndarray:
    """The frames stored by ``write_entry``; ``CacheEntryError`` when the file is not a whole entry (cut off, edited:
    its CRC-32 differs). Plain bytes, never a pickle."""
    data = entry.read_bytes()
    head = len(_MAGIC) + _HEADER.size
    if len(data) < head or not data.startswith(_MAGIC):
        raise CacheEntryError("not a clip-cache entry")
    t, h, w, c, crc = _HEADER.unpack_from(data, len(_MAGIC))
    if len(data) != head + t * h * w * c:
        raise CacheEntryError(f"{len(data)} bytes, expected {head + t * h * w * c} (cut off?)")
    if c != 3:
        raise CacheEntryError(f"frames {t}x{h}x{w}x{c}, expected 3 channels")
    pixels = np.frombuffer(data, np.uint8, offset=head).reshape(t, h, w, c)
    if zlib.crc32(pixels.data) != crc:
        raise CacheEntryError("CRC-32 mismatch (edited or damaged)")
    return pixels


class ClipCache:
    """``get(path)`` -> the clip's frames ``(T, H, W, 3)`` uint8 as the dataset decodes them (``size``: the input size
    reduced JPEG decoding must keep, ``data.decode=reduced``; ``None``: as stored), read-only."""

    def __init__(self, root: str | os.PathLike, size: int | None, memory_mb: float = 1024) -> None:
        if size is not None and size < 8:
            raise InputError(f"cache size must be at least 8 pixels, got {size}")
        self.root, self.size = Path(root), None if size is None else int(size)  # None: frames as stored
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0
        self.memory_bytes = int(memory_mb * 2**20)
        self._keys: dict[str, tuple[int, Path]] = {}  # path -> (mtime_ns, entry)
        self._held: dict[Path, np.ndarray] = {}  # entry -> frames, in insertion order (oldest dropped first)
        self._held_bytes = 0

    def __getstate__(self) -> dict:  # DataLoader workers start with an empty memory part
        state = dict(self.__dict__)
        state.update(_keys={}, _held={}, _held_bytes=0)
        return state

    def _hold(self, entry: Path, frames: np.ndarray) -> None:
        if frames.nbytes > self.memory_bytes:
            return
        while self._held and self._held_bytes + frames.nbytes > self.memory_bytes:
            old = next(iter(self._held))
            self._held_bytes -= self._held.pop(old).nbytes
        frames.flags.writeable = False
        self._held[entry] = frames
        self._held_bytes += frames.nbytes

    def key(self, path: str | os.PathLike) -> str:
        """The cache key of a clip: SHA-1 of its resolved path, mtime, entry count (folder) or byte size (video) and the
        cached resolution; a changed clip gets a new key."""
        path = Path(path).resolve()
        st = path.stat()
        n = len(list(path.iterdir())) if path.is_dir() else st.st_size
        text = f"{path}|{st.st_mtime_ns}|{n}|{self.size}"
        return hashlib.sha1(text.encode()).hexdigest()

    def entry(self, path: PathLike) -> Path:
        """Where the cached frames of the clip at ``path`` live (``<root>/<key[:2]>/<key>.clip``)."""
        k = self.key(path)
        return self.root / k[:2] / f"{k}.clip"

    def get(self, path: str | os.PathLike, *, on_bad_frame: str = "raise") -> np.ndarray:
        """The clip's uint8 frames as the dataset decodes them: from the cache, or decoded once and
        stored (atomically)."""
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            raise InputError(f"{path}: clip not found") from None
        known = self._keys.get(str(path))
        if known is not None and known[0] == mtime:
            entry = known[1]
            if entry in self._held:
                self.hits += 1
                return self._held[entry]
        else:
            entry = self.entry(path)
            self._keys[str(path)] = (mtime, entry)
        if entry.is_file():
            try:
                frames = read_entry(entry)
                self.hits += 1
                self._hold(entry, frames)
                return frames
            except (CacheEntryError, OSError) as exc:  # truncated, edited, foreign: decode again and replace it
                warnings.warn(f"{entry}: damaged clip-cache entry for {path} ({exc}); rebuilt", UserWarning, 2)
        self.misses += 1
        # exactly what the dataset decodes without a cache (JPEG folders at reduced DCT scale when ``size`` asks
        # for it, videos as stored): a run's items do not depend on the cache (tests/test_cache.py)
        frames = np.ascontiguousarray(self._decode_all(Path(path), on_bad_frame))
        try:
            write_entry(entry, frames)
        except OSError as exc:  # a full disk: the clip is used, only not kept
            warnings.warn(
                f"{entry}: cannot store the decoded clip {path} ({exc.strerror or exc}); training goes on without "
                f"caching it",
                UserWarning,
                stacklevel=2,
            )
        self._hold(entry, frames)
        return frames

    def _decode_all(self, path: Path, on_bad_frame: str) -> np.ndarray:
        if not path.is_dir():
            return read_frames(path)
        files = frame_paths(path)
        while True:
            try:
                return read_frames(path, min_size=self.size, files=files)
            except UnreadableFrame as bad:
                if on_bad_frame == "raise":
                    raise
                warnings.warn(f"skipped {bad.path}: unreadable frame image", UserWarning, stacklevel=3)
                files = [f for f in files if f != bad.path]
                if not files:
                    raise InputError(f"{path}: no readable frame image left") from None

    def __repr__(self) -> str:
        return f"ClipCache({str(self.root)!r}, size={self.size}, hits={self.hits}, misses={self.misses})"
