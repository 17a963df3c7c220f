"""The Parquet cache of a read AU folder: one frames file per cache written chunk by chunk, published with a manifest
naming it, its size and CRC-32 (``docs/architecture.md``, "OpenFace reading")."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import polars as pl

from audfer.au.schema import OpenFaceWarning, canonical_schema
from audfer.errors import AudferError, CacheEntryError
from audfer.files import write_json

__all__ = ["CACHE_VERSION", "STALE_PART_SECONDS", "CacheSink", "scan_cached_frames"]

CACHE_VERSION = 4  # 3: the manifest names its Parquet file and that file's size and CRC-32; 4: file stamps hold ctime


def file_crc(path: Path) -> int:
    """CRC-32 of a file, read in 4 MiB blocks."""
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return crc


#: A partial AU-cache file untouched this long was left by a killed process (``CacheSink.finish`` removes it).
STALE_PART_SECONDS = 3600


class CacheSink:
    """The folder cache written as one unit, chunk by chunk: frames go to a new Parquet file (row group by row
    group, never the whole folder in memory), then the manifest naming that file, its size and CRC-32 replaces the
    old one (atomically), then older Parquet files go. A process killed at any point, or two processes filling one
    cache, leave a manifest that matches the file it names; a full disk leaves the old cache as it was (warned)."""

    def __init__(self, cache_path: Path) -> None:
        self.cache_path = cache_path
        self.name = f"frames-{os.getpid()}-{time.time_ns()}.parquet"
        self.part = cache_path / f".{self.name}.part"
        self.writer: Any = None
        self.failed: str | None = None

    def write(self, frames: pl.DataFrame) -> None:
        """Append a table of frames (canonical schema with ``clip_id``)."""
        if self.failed:
            return
        import pyarrow.parquet as pq

        table = frames.select("clip_id", *canonical_schema()).to_arrow()
        try:
            if self.writer is None:
                self.cache_path.mkdir(parents=True, exist_ok=True)
                self.writer = pq.ParquetWriter(str(self.part), table.schema)
            self.writer.write_table(table)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.failed = str(exc.strerror or exc)
        self.abort()
        warnings.warn(
            f"could not write the AU cache at {self.cache_path}: {self.failed}", OpenFaceWarning, stacklevel=3
        )

    def abort(self) -> None:
        """Drop the partial file (an error while reading, or a full disk)."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.writer = None
        self.part.unlink(missing_ok=True)

    def finish(self, manifest: dict[str, Any]) -> None:
        """Close the file, then publish it with its manifest."""
        if self.writer is None and not self.failed:  # nothing was read: an empty table
            self.write(pl.DataFrame(schema={"clip_id": pl.String, **canonical_schema()}))
        if self.failed:
            return
        final = self.cache_path / self.name
        try:
            self.writer.close()
            self.writer = None
            os.replace(self.part, final)
            manifest = {**manifest, "frames_file": self.name, "frames_bytes": final.stat().st_size}
            manifest["frames_crc32"] = file_crc(final)
            write_json(manifest, self.cache_path / "manifest.json")
        except (OSError, AudferError) as exc:
            final.unlink(missing_ok=True)
            self._fail(exc if isinstance(exc, OSError) else OSError(str(exc)))
            return
        for old in self.cache_path.glob("frames*.parquet"):
            if old.name != self.name:
                old.unlink(missing_ok=True)
        for part in self.cache_path.glob(".frames-*.part"):  # left by a killed filler; a live one writes every chunk
            with contextlib.suppress(OSError):
                if time.time() - part.stat().st_mtime > STALE_PART_SECONDS:
                    part.unlink()


def scan_cached_frames(cache_path: Path, manifest: dict[str, Any]) -> pl.LazyFrame:
    """The Parquet file the manifest names, checked against the size, CRC-32 and schema recorded with it (a
    truncated, edited or foreign file raises ``CacheEntryError``: the caller re-reads the AU files), as a lazy scan."""
    path = cache_path / str(manifest["frames_file"])
    if path.stat().st_size != manifest["frames_bytes"] or file_crc(path) != manifest["frames_crc32"]:
        raise CacheEntryError(f"{path.name} does not match its manifest (size or CRC-32)")
    scan = pl.scan_parquet(path, glob=False)
    want = {"clip_id": pl.String, **canonical_schema()}
    if dict(scan.collect_schema()) != want:
        raise CacheEntryError(f"{path.name} has another schema than the canonical frames table")
    return scan
