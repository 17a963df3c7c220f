"""A folder of per-clip AU files (clip id = file stem, kept as a string) read into one canonical table, in parallel on
all cores, through the Parquet cache (``audfer.au.cache``): a file whose size and modification time are unchanged
comes from the cache, so editing one file re-reads only that file (its status-change time is part of the stamp, so
a rewrite that puts size and modification time back is re-read too)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from audfer.au.cache import CACHE_VERSION, CacheSink, scan_cached_frames
from audfer.au.labels_cache import cache_root
from audfer.au.schema import OpenFaceWarning, canonical_schema, collecting_notes
from audfer.au.sources import AUAvailability, AUMapping, read_au_file
from audfer.au.tools import get_au_tool, import_tool_modules, list_au_tools, tool_modules
from audfer.errors import AudferError, ConfigError, InputError
from audfer.progress import bar

__all__ = ["read_au_dir", "read_openface_dir", "AUFolder", "OpenFaceFolder"]


@dataclass
class AUFolder:
    """A folder of per-clip AU CSVs (any registered tool, ``audfer.au.tools``) read into one table."""

    frames: pl.DataFrame  #: canonical columns plus ``clip_id`` (str) first
    clips: list[str]  #: every clip id (file stem) in the folder, including clips with no rows
    skipped: list[tuple[str, str]] = field(default_factory=list)  #: (clip_id, reason) with on_error="skip"
    from_cache: int = 0  #: how many clips came from the Parquet cache
    sources: dict[str, str] = field(default_factory=dict)  #: clip id -> AU source (``audfer.au.sources``)

    @property
    def availability(self) -> AUAvailability:
        """Which AUs the folder's source(s) give (``au_sources.AUAvailability``); with several sources, an AU
        counts as given when every source gives it."""
        names = sorted(set(self.sources.values())) or ["openface"]
        tools = [get_au_tool(n, error=ConfigError) for n in names]
        if any(t.needs_mapping for t in tools) and self.mapping is None:
            raise ConfigError("AU folder read as a table source without its AU mapping (data.au_mapping)")
        mappings = [self.mapping if t.needs_mapping else t.mapping for t in tools]
        return AUAvailability.combine([m.availability() for m in mappings if m is not None])

    mapping: AUMapping | None = field(default=None, repr=False)  #: the ``au_sources.AUMapping`` of a ``table`` source
    #: with ``read_au_dir(reduce=f)``: ``f`` of the frames, per chunk of clips, concatenated (``frames`` is then empty)
    reduced: pl.DataFrame | None = field(default=None, repr=False)
    n_frames: int = 0  #: frames read (also when ``frames`` was not kept)


#: The former name (a folder of any tool's files, not only OpenFace's), kept for code that imports it.
OpenFaceFolder = AUFolder


def _read_chunk(
    paths: list[str],
    face_id: int | None,
    strict: bool,
    on_error: str,
    source: str = "openface",
    mapping=None,
    modules: tuple[str, ...] = (),
):
    import_tool_modules(modules)  # a spawned worker: the user's AU tools register themselves here too
    frames: list[pl.DataFrame] = []
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    sources: dict[str, str] = {}
    for p in paths:
        clip = Path(p).stem
        with collecting_notes() as caught:
            try:
                df, sources[clip] = read_au_file(p, source, mapping=mapping, face_id=face_id, strict=strict)
            except AudferError as exc:
                if on_error == "raise":
                    return None, [(clip, str(exc))], notes, sources
                skipped.append((clip, str(exc)))
                continue
        notes += caught
        frames.append(df.select(pl.lit(clip).alias("clip_id"), pl.all()))
    # one table per chunk: a worker sends one contiguous table back instead of thousands of small ones (their
    # per-table overhead and pickling dominated peak memory for folders of many short files)
    joined = [pl.concat(frames, how="vertical", rechunk=True)] if frames else []
    return joined, skipped, notes, sources


def read_openface_dir(directory: str | os.PathLike, **options: Any) -> AUFolder:
    """``read_au_dir`` with ``source="openface"`` unless another source is given."""
    options.setdefault("source", "openface")
    return read_au_dir(directory, **options)


def read_au_dir(
    directory: str | os.PathLike,
    *,
    source: str = "auto",
    mapping: AUMapping | None = None,
    allow_mixed: bool = False,
    face_id: int | None = None,
    strict: bool = False,
    on_error: str = "raise",
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    reduce: Callable[[pl.LazyFrame], pl.DataFrame] | None = None,
) -> AUFolder:
    """Read every ``*.csv`` in ``directory`` (one clip each, clip id = file stem) into one canonical table.

    ``source``: a registered AU tool (``audfer.au.tools``: ``openface``, ``pyfeat``, ``libreface``, ``table`` with
    ``mapping``, an ``au_sources.AUMapping``, ...), a user's ``package.module:attribute``, or ``auto`` (each file's
    header decides, ``audfer.au.tools.detect_au_tool``). A folder
    whose files come from more than one tool is an error unless ``allow_mixed`` (AUs a clip's tool lacks
    are null for that clip). Files are parsed in parallel (``workers`` threads, default: all cores) and
    the table is cached under ``cache_dir`` (default ``$AUDFER_CACHE_DIR`` or ``~/.cache/audfer``), keyed by
    the folder and the reader options; unchanged files (same size, mtime and ctime) come from the cache.
    ``on_error="skip"`` skips unreadable files and lists them in ``skipped`` instead of raising.

    ``reduce``: a per-clip summary of the frames (``labels.video_au_labels``) computed without ever holding the
    folder's frames: each chunk of files is reduced as it arrives and written to the cache, the cached clips are
    reduced from a streaming scan of the cache, and ``reduced`` holds the results (``frames`` stays empty), so peak
    memory follows a chunk of files, not the folder (``benchmarks/bench_scale.py``).
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError("on_error must be 'raise' or 'skip'")
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: AU folder not found")
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
    if not paths:
        raise InputError(f"{directory}: no AU .csv files found")
    stems = [p.stem for p in paths]
    dup = {s for s in stems if stems.count(s) > 1} if len(set(stems)) != len(stems) else set()
    if dup:
        raise InputError(f"{directory}: clip id {sorted(dup)[0]!r} appears in more than one file")
    # size, modification and status-change time of each file: an in-place rewrite that puts size and mtime back
    # (``touch -r``) still moves ``st_ctime_ns``, which only the kernel sets
    stamps = {p.stem: [(st := p.stat()).st_size, st.st_mtime_ns, st.st_ctime_ns] for p in paths}

    tool = None if source == "auto" else get_au_tool(source)  # a user's module:attribute is imported here
    if tool is not None and tool.needs_mapping and mapping is None:
        raise InputError(f"--source {tool.name} needs --mapping (a YAML file naming each AU column)")
    options = {
        "version": CACHE_VERSION,
        "face_id": face_id,
        "strict": strict,
        "on_error": on_error,
        "source": source,
        "mapping": None if mapping is None else json.loads(json.dumps(asdict(mapping))),
    }
    key = hashlib.sha1(json.dumps([str(directory.resolve()), options]).encode()).hexdigest()[:16]
    cache_path = cache_root(cache_dir) / "openface" / key
    cached = pl.DataFrame()
    cached_lazy: pl.LazyFrame | None = None
    fresh: set[str] = set()
    old_skipped: dict[str, str] = {}
    old_sources: dict[str, str] = {}
    if cache and (cache_path / "manifest.json").is_file():
        try:
            manifest = json.loads((cache_path / "manifest.json").read_text())
            if manifest.get("options") == options:
                fresh = {c for c, s in manifest["files"].items() if stamps.get(c) == s}
                old_skipped = {c: r for c, r in manifest.get("skipped", {}).items() if c in fresh}
                old_sources = {c: r for c, r in manifest.get("sources", {}).items() if c in fresh}
                if fresh:
                    cached_lazy = scan_cached_frames(cache_path, manifest).filter(pl.col("clip_id").is_in(list(fresh)))
                    cached = pl.DataFrame() if reduce is not None else cached_lazy.collect()
        except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            if not isinstance(exc, FileNotFoundError):
                warnings.warn(
                    f"{cache_path}: damaged AU cache ({exc}); re-reading the files", OpenFaceWarning, stacklevel=2
                )
            fresh, cached, cached_lazy, old_skipped, old_sources = set(), pl.DataFrame(), None, {}, {}

    todo = [str(p) for p in paths if p.stem not in fresh]
    parts: list[pl.DataFrame] = [cached] if cached.height else []
    reduced: list[pl.DataFrame] = []
    skipped = sorted(old_skipped.items())
    notes: list[str] = []
    sources = dict(old_sources)
    sink = CacheSink(cache_path) if cache and todo else None
    n_frames = 0
    try:
        if sink is not None and fresh:  # the unchanged clips go into the new cache file as they are
            assert cached_lazy is not None
            for batch in _batches(cached_lazy) if reduce is not None else [cached]:
                sink.write(batch)
        if reduce is not None and fresh:
            assert cached_lazy is not None
            reduced.append(reduce(cached_lazy))
            n_frames += int(cached_lazy.select(pl.len()).collect().item())
        errors = []
        modules = tool_modules([tool.name] if tool is not None else list_au_tools())
        for frames_part, skip, note, srcs in _read_files(
            todo, workers, face_id, strict, on_error, source, mapping, reduce, modules
        ):
            notes += note
            sources.update(srcs)
            if frames_part is None:
                errors += skip
                continue
            skipped += skip
            for part in frames_part:
                n_frames += part.height
                if sink is not None:
                    sink.write(part)
                if reduce is not None:
                    reduced.append(reduce(part.lazy()))
                else:
                    parts.append(part)
        if errors:
            raise InputError(sorted(errors)[0][1])
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    kinds = sorted(set(sources.values()))
    if len(kinds) > 1 and not allow_mixed:
        by = {k: sorted(c for c, v in sources.items() if v == k) for k in kinds}
        shown = "; ".join(f"{k}: {len(v)} file(s), e.g. {', '.join(v[:2])}" for k, v in by.items())
        raise InputError(
            f"{directory}: AU files from {len(kinds)} different tools ({shown}); AUs one tool lacks "
            f"would be unknown for some clips only: use one tool, or allow mixing explicitly "
            f"(--allow-mixed / data.au_allow_mixed=true)"
        )
    for msg in notes:
        warnings.warn(msg, OpenFaceWarning, stacklevel=2)
    schema = {"clip_id": pl.String, **canonical_schema()}
    frames = pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=schema)
    frames = frames.sort(["clip_id", "frame"], maintain_order=True)
    if sink is not None:
        sink.finish({"options": options, "files": stamps, "skipped": dict(skipped), "sources": sources})
    return AUFolder(
        frames=frames,
        clips=stems,
        skipped=sorted(skipped),
        from_cache=len(fresh),
        sources=sources,
        mapping=mapping,
        reduced=None if reduce is None else (pl.concat(reduced, how="vertical") if reduced else None),
        n_frames=n_frames if reduce is not None else frames.height,
    )


#: Mean file size from which a folder is read by threads rather than processes: polars parses a large file with the
#: GIL released, so threads run in parallel with nothing to start or pickle; many small files are Python-bound (the
#: GIL), where spawned processes are faster (``benchmarks/bench_openface.py``, ``bench_scale.py``).
THREADS_FROM_BYTES = 1 << 20


def _read_files(todo, workers, face_id, strict, on_error, source, mapping, reduce, modules=()):
    """``_read_chunk`` results for the files ``todo``, in order: in this thread, or in ``workers`` threads (large
    files) or spawned processes (small ones; ``THREADS_FROM_BYTES``); the result is the same either way (tested). With
    ``reduce`` the files go in chunks of 64, handed on one by one, and only a few chunks are read ahead of the
    consumer, so only a few chunks of frames exist at once."""
    if not todo:
        return
    with bar(total=len(todo), desc="AU files", unit="file") as shown:  # stderr, only on a terminal (audfer.progress)
        for chunk, result in _read_chunks(todo, workers, face_id, strict, on_error, source, mapping, reduce, modules):
            shown.update(len(chunk))
            yield result


def _read_chunks(todo, workers, face_id, strict, on_error, source, mapping, reduce, modules=()):
    """``(chunk, _read_chunk result)`` pairs for ``_read_files``."""
    n_workers = min(workers or os.cpu_count() or 1, max(1, len(todo) // 16))
    size = 64 if reduce is not None else -(-len(todo) // n_workers)
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    if n_workers == 1:
        for chunk in chunks:
            yield chunk, _read_chunk(chunk, face_id, strict, on_error, source, mapping, modules)
        return
    mean_bytes = sum(os.path.getsize(f) for f in todo) / len(todo)
    old = os.environ.get("POLARS_MAX_THREADS")
    try:
        if mean_bytes >= THREADS_FROM_BYTES:
            pool: Any = ThreadPoolExecutor(n_workers)
        else:
            os.environ["POLARS_MAX_THREADS"] = "1"  # each spawned worker: one core
            pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"))
        with pool:
            ahead = n_workers + 1  # chunks read ahead of the consumer: memory follows a few chunks, not the folder
            args = (face_id, strict, on_error, source, mapping, modules)
            pending = [pool.submit(_read_chunk, c, *args) for c in chunks[:ahead]]
            for i in range(len(chunks)):  # in order: the same result whatever finishes first
                result = pending[i].result()
                pending[i] = None  # the chunk's frames go once handed on
                if i + ahead < len(chunks):
                    pending.append(pool.submit(_read_chunk, chunks[i + ahead], *args))
                yield chunks[i], result
    finally:
        if old is None:
            os.environ.pop("POLARS_MAX_THREADS", None)
        else:
            os.environ["POLARS_MAX_THREADS"] = old


def _batches(lazy: pl.LazyFrame, rows: int = 200_000) -> Iterator[pl.DataFrame]:
    """A lazy table in slices of ``rows`` (the cached clips copied into a new cache file without holding them all)."""
    offset = 0
    while True:
        part = lazy.slice(offset, rows).collect()
        if not part.height:
            return
        yield part
        offset += rows
