"""Decoded-clip cache: each clip's frames decoded once, stored as uint8, exactly as the dataset decodes them.

The first epoch decodes every frame of a clip as the uncached path would (as stored under ``data.decode=full``;
JPEG folders at reduced DCT scale under ``reduced``, ``size`` being the input size they must keep) and stores
``(T, H, W, 3)`` uint8 as one ``.clip`` entry (a small header with the shape and a CRC-32, then the raw pixels:
never a pickle; a cut-off or edited entry is detected and rebuilt); later epochs read it and slice the sampled
frames. Sampling, crops, flips and colour jitter still run per epoch on the cached frames, so a run's items are the
same with and without the cache (tested).

Entries are keyed by the clip's absolute path, the identity of every file it is decoded from (a frame folder: each
frame image's name, size, modification time and status-change time, ``st_ctime_ns``; a video: the file's) and the
cache size, so frames rewritten in place (``ffmpeg -y``, an editor), even with the folder's own time and entry count
unchanged or the file's size and modification time put back (``touch -r``: the kernel still moves the status-change
time), are decoded again. Each entry stores the key it was written for, so an entry holding another clip's frames
(copied or renamed over it, a whole valid entry with a valid CRC) is detected and rebuilt, never used. Within a
process, entries already read stay in memory (up to ``memory_mb``, default 1024 MB); every read still takes the
clip's key (one ``stat`` per frame file, no file opened), so an in-memory entry is never stale. Writes are atomic
(temporary file + rename), so several DataLoader workers or processes can fill one cache; a clip whose files change
while it is decoded is used but not stored. Disk cost: ``T * H * W * 3`` bytes a clip (16 frames at 256 px: 3.1 MB;
reduced to 128 px: 0.8 MB).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from audfer.data.datasets import IMAGE_SUFFIXES, UnreadableFrame, frame_paths, read_frames
from audfer.errors import CacheEntryError, InputError
from audfer.hints import PathLike

#: An entry (version 2): this magic, the 20-byte key it was written for (``ClipCache.key``: the clip's path and the
#: identity of its files), little-endian uint32 T, H, W, C and the CRC-32 of key and pixels, then the uint8 pixels.
_MAGIC = b"AUDFERCLIP\x02\x00"
_KEY_BYTES = 20
_HEADER = struct.Struct("<5I")


def write_entry(entry: Path, frames: np.ndarray, key: str) -> None:
    """Store ``frames`` (T, H, W, 3) uint8 at ``entry`` with the ``key`` (40 hex digits) of the clip they belong to:
    written to a temporary file beside it and renamed into place, so a reader sees the old entry, no entry or the
    whole new one (concurrent fillers, a kill mid-write)."""
    pixels = np.ascontiguousarray(frames, dtype=np.uint8)
    ident = bytes.fromhex(key)
    if len(ident) != _KEY_BYTES:
        raise CacheEntryError(f"a clip-cache key is {_KEY_BYTES} bytes, got {len(ident)}")
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.stem}.", suffix=".part", dir=entry.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + ident + _HEADER.pack(*pixels.shape, zlib.crc32(pixels.data, zlib.crc32(ident))))
            fh.write(pixels.data)
        os.replace(tmp, entry)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_entry(entry: Path, key: str | None = None) -> np.ndarray:
    """The frames stored by ``write_entry`` for the clip whose key is ``key`` (default: the entry's file name, which
    ``ClipCache`` makes its key); ``CacheEntryError`` when the file is not a whole entry (cut off, edited: its CRC-32 differs, an older format) or was written for another key (another
    clip's entry copied over it, or another version of this clip). Plain bytes, never a pickle."""
    data = entry.read_bytes()
    head = len(_MAGIC) + _KEY_BYTES + _HEADER.size
    if len(data) < head or not data.startswith(_MAGIC):
        raise CacheEntryError("not a clip-cache entry of this audfer version")
    ident = data[len(_MAGIC) : len(_MAGIC) + _KEY_BYTES]
    t, h, w, c, crc = _HEADER.unpack_from(data, len(_MAGIC) + _KEY_BYTES)
    if len(data) != head + t * h * w * c:
        raise CacheEntryError(f"{len(data)} bytes, expected {head + t * h * w * c} (cut off?)")
    if c != 3:
        raise CacheEntryError(f"frames {t}x{h}x{w}x{c}, expected 3 channels")
    pixels = np.frombuffer(data, np.uint8, offset=head).reshape(t, h, w, c)
    if zlib.crc32(pixels.data, zlib.crc32(ident)) != crc:
        raise CacheEntryError("CRC-32 mismatch (edited or damaged)")
    if key is None:
        key = entry.stem
    if ident.hex() != key:
        raise CacheEntryError(f"it holds the frames of another clip (key {ident.hex()[:12]}..., not {key[:12]}...)")
    return pixels


def clip_identity(path: Path) -> str:
    """The identity of the files a clip is decoded from, without opening any: for a frame folder, every frame
    image's ``(name, size, mtime_ns, ctime_ns)`` (the files ``frame_paths`` would pick: image suffix, not hidden), sorted;
    for a video, its own. ``st_ctime_ns`` is set by the kernel on every write or rename and cannot be put back by
    ``touch``/``os.utime``, so a file rewritten in place with its size and modification time restored still counts
    as changed. ``OSError`` when the clip is missing."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    parts = []
    with os.scandir(path) as it:
        for e in it:
            name = e.name
            if name[0] == "." or name[name.rfind(".") :].lower() not in IMAGE_SUFFIXES:
                continue
            try:
                s = e.stat()  # follows a symlinked frame to the file it names
            except OSError:  # a dangling link: decoding names it
                s = e.stat(follow_symlinks=False)
            parts.append((name, s.st_size, s.st_mtime_ns, s.st_ctime_ns))
    parts.sort()
    return repr(parts)


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
        self._resolved: dict[str, Path] = {}  # path as given -> absolute path (resolved once per process)
        self._held: dict[Path, np.ndarray] = {}  # entry -> frames, in insertion order (oldest dropped first)
        self._held_bytes = 0

    def __getstate__(self) -> dict:  # DataLoader workers start with an empty memory part
        state = dict(self.__dict__)
        state.update(_resolved={}, _held={}, _held_bytes=0)
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
        """The cache key of a clip (40 hex digits): SHA-1 of its resolved path, the identity of every file it is
        decoded from (``clip_identity``) and the cached resolution; a clip any file of which changed gets a new key."""
        resolved = self._resolved.get(str(path))
        if resolved is None:
            resolved = self._resolved[str(path)] = Path(path).resolve()
        text = f"{resolved}|{clip_identity(resolved)}|{self.size}"
        return hashlib.sha1(text.encode()).hexdigest()

    def entry(self, path: PathLike) -> Path:
        """Where the cached frames of the clip at ``path`` live (``<root>/<key[:2]>/<key>.clip``)."""
        return self._entry_of(self.key(path))

    def _entry_of(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.clip"

    def get(self, path: str | os.PathLike, *, on_bad_frame: str = "raise") -> np.ndarray:
        """The clip's uint8 frames as the dataset decodes them: from the cache, or decoded once and
        stored (atomically)."""
        try:
            key = self.key(path)
        except FileNotFoundError:
            raise InputError(f"{path}: clip not found") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read the clip ({exc.strerror})") from None
        entry = self._entry_of(key)
        if entry in self._held:
            self.hits += 1
            return self._held[entry]
        if entry.is_file():
            try:
                frames = read_entry(entry, key)
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
            changed = self.key(path) != key
        except OSError:
            changed = True
        if changed:  # rewritten while it was decoded: these frames belong to no single state of the clip
            return frames
        try:
            write_entry(entry, frames, key)
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
