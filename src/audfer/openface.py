"""Reading OpenFace 2.x CSV output into one canonical frames table (input of paper §3.1).

``read_openface`` accepts every layout OpenFace actually writes: FeatureExtraction 2.2
(``", "`` header, ``",  "`` rows), current source builds (plain ``,``), Windows 2.0.x files
(CRLF, ``frame`` always 0), pre-2.0 files without ``face_id``, FaceLandmarkVidMulti output
(``face_id`` = tracker slot), ``-aus``-only runs and FaceLandmarkImg output (``face`` column).

The canonical table has ``frame, timestamp, confidence, success, face_id``, the 17 ``AUxx_r``
intensities (float32) and the 18 ``AUxx_c`` presences (int8), sorted by frame, for one face.

Face choice when a file holds several ``face_id`` values: the face with the most successful
frames (ties: the smallest id), or the one asked for with ``face_id=``.

``read_openface_dir`` reads a folder of per-clip CSVs (clip id = file stem, kept as a string)
in parallel on all cores and caches the result as Parquet; the cache is reused for every CSV
whose size and modification time are unchanged, so editing one file re-reads only that file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from .errors import AudferError, CacheEntryError, ConfigError, InputError
from .io import write_json
from .vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

if TYPE_CHECKING:
    from .au_sources import AUAvailability, AUMapping

__all__ = [
    "read_openface",
    "read_openface_dir",
    "read_au_dir",
    "OpenFaceFolder",
    "OpenFaceWarning",
    "CANONICAL_COLUMNS",
]

META_COLUMNS = ("frame", "timestamp", "confidence", "success", "face_id")
AU_COLUMNS = INTENSITY_COLUMNS + PRESENCE_COLUMNS
CANONICAL_COLUMNS = META_COLUMNS + AU_COLUMNS
_CACHE_VERSION = 3  # 3: the manifest names its Parquet file and that file's size and CRC-32


class OpenFaceWarning(UserWarning):
    """A recoverable defect in an OpenFace file (e.g. a cut-off last row that was dropped)."""


def _bad_cell(path: Path, lines: list[bytes], names: list[str], wanted: list[str]) -> AudferError:
    """Locate the first cell that prevents parsing (slow path, only run after a failure)."""
    index = {n: i for i, n in enumerate(names)}
    for row, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split(b",")
        if len(fields) != len(names):
            return AudferError(f"{path}: row {row}: {len(fields)} fields; the header has {len(names)}")
        for col in wanted:
            cell = fields[index[col]]
            try:
                float(cell)
            except ValueError:
                text = cell.decode("utf-8", "replace")
                return AudferError(f"{path}: row {row}, column {col}: {text!r} is not a number")
    return AudferError(f"{path}: cannot parse the file as OpenFace CSV")


def _parse_fast(raw: bytes, header: bytes, names: list[str], wanted: list[str]) -> pl.DataFrame | None:
    """The common case in one pass: polars reads only the wanted columns (by position) as numbers (its
    float parser skips the separator spaces of OpenFace 2.2). ``None`` when anything looks off (an empty
    cell, text, a ragged or blank row): the careful path then finds and names it."""
    index = [names.index(c) for c in wanted]
    raw_names = header.rstrip(b"\r").decode("utf-8", "replace").split(",")
    try:
        df = pl.read_csv(
            io.BytesIO(raw),
            columns=index,
            schema_overrides={raw_names[i]: pl.Float64 for i in index},
            infer_schema=False,
        )
    except Exception:
        return None
    if [c.strip(" \t\r") for c in df.columns] != [raw_names[i].strip(" \t\r") for i in index]:
        return None
    if any(df.null_count().row(0)) or any(t != pl.Float64 for t in df.dtypes):
        return None
    df.columns = wanted
    return df


def _parse_careful(path: Path, raw: bytes, names: list[str], wanted: list[str]) -> pl.DataFrame:
    """Whitespace removed everywhere, then parsed; on failure the first offending row/cell is named."""
    clean = raw.replace(b"\r", b"").replace(b" ", b"").replace(b"\t", b"")
    lines = clean.split(b"\n")
    body = b",".join(n.encode() for n in names) + clean[len(lines[0]) :]
    try:
        df = pl.read_csv(
            io.BytesIO(body), columns=wanted, schema_overrides={c: pl.Float64 for c in wanted}, infer_schema=False
        )
    except Exception:
        raise _bad_cell(path, lines, names, wanted) from None
    nulls = [c for c in wanted if df[c].null_count()]
    if nulls:
        row = int(df.with_row_index().filter(pl.col(nulls[0]).is_null())["index"][0]) + 2
        raise InputError(f"{path}: row {row}, column {nulls[0]}: empty cell; expected a number")
    return df


def _first_bad_value(path: Path, df: pl.DataFrame, wanted: list[str]) -> AudferError | None:
    """The first bad value, named by file, row and column, or ``None``: non-finite values, intensities outside
    [0, 5], frame numbers that are negative, fractional or repeated (per face), 0/1 columns with other values.
    Vectorised over the whole table (numpy), so checking costs microseconds per file."""
    if not df.height:
        return None
    values = df.select(wanted).to_numpy()
    col = {c: values[:, i] for i, c in enumerate(wanted)}

    def first(mask) -> int | None:
        return int(mask.argmax()) if mask.any() else None

    for c in wanted:
        if (r := first(~np.isfinite(col[c]))) is not None:
            return AudferError(f"{path}: row {r + 2}, column {c}: {float(col[c][r])!r}; expected a finite number")
    for c in INTENSITY_COLUMNS:
        if (r := first((col[c] < 0) | (col[c] > 5))) is not None:
            return AudferError(
                f"{path}: row {r + 2}, column {c}: {float(col[c][r])!r}; expected an intensity in [0, 5]"
            )
    if "frame" in col:
        frame = col["frame"]
        if (r := first((frame < 0) | (frame != np.floor(frame)))) is not None:
            return AudferError(
                f"{path}: row {r + 2}, column frame: {float(frame[r])!r}; expected a frame number (an integer >= 0)"
            )
        if frame.max() > 0:  # Windows 2.0.x writes frame 0 everywhere: numbered from timestamps later
            keys = np.stack([frame, col["face_id"]], axis=1) if "face_id" in col else frame[:, None]
            _, firsts = np.unique(keys, axis=0, return_index=True)
            repeat = np.ones(len(frame), bool)
            repeat[firsts] = False
            if (r := first(repeat)) is not None:
                return AudferError(
                    f"{path}: row {r + 2}, column frame: frame {int(frame[r])} appears twice"
                    f"{' for the same face_id' if 'face_id' in col else ''}; expected one row per frame"
                )
    for c in ("success", *PRESENCE_COLUMNS):
        if c in col and (r := first((col[c] != 0) & (col[c] != 1))) is not None:
            return AudferError(f"{path}: row {r + 2}, column {c}: {float(col[c][r])!r}; expected 0 or 1")
    return None


def read_openface(
    path: str | os.PathLike,
    *,
    face_id: int | None = None,
    strict: bool = False,
) -> pl.DataFrame:
    """Read one OpenFace CSV into the canonical frames table (see module docstring).

    A last row cut off mid-line (no final newline, too few fields) is dropped with an
    ``OpenFaceWarning``; ``strict=True`` raises instead. Missing AU columns, a non-numeric
    cell, a presence that is not 0/1 or an absent requested face raise ``AudferError``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read OpenFace CSV ({exc.strerror})") from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (files saved by Excel/Notepad)
    head_end = raw.find(b"\n")
    header = raw if head_end < 0 else raw[:head_end]
    # Values are numbers: every space, tab and CR is a separator artefact of some OpenFace build.
    names = header.replace(b"\r", b"").replace(b" ", b"").replace(b"\t", b"").decode("utf-8", "replace").split(",")
    if names == [""]:
        raise InputError(f"{path}: empty file; expected an OpenFace CSV with a header row")
    if "face" in names and "frame" not in names:  # FaceLandmarkImg: one row per detected face
        names = ["face_id" if n == "face" else n for n in names]
    missing = [c for c in AU_COLUMNS if c not in names]
    if missing:
        hint = " (a landmarks-only run? rerun OpenFace with -aus)" if len(missing) == len(AU_COLUMNS) else ""
        raise InputError(f"{path}: missing AU column(s) {', '.join(missing)}{hint}")
    if "confidence" not in names:
        raise InputError(f"{path}: missing column confidence; is this an OpenFace CSV?")

    last_start = raw.rfind(b"\n") + 1
    if not raw.endswith(b"\n") and last_start > 0 and raw[last_start:].strip():
        n_fields = raw.count(b",", last_start) + 1
        if n_fields < len(names):
            row = raw.count(b"\n", 0, last_start) + 1
            msg = f"{path}: row {row} is cut off ({n_fields} of {len(names)} fields)"
            if strict:
                raise InputError(msg)
            warnings.warn(msg + "; dropped it", OpenFaceWarning, stacklevel=2)
            raw = raw[:last_start]

    wanted = [c for c in ("frame", "face_id", "timestamp", "confidence", "success") if c in names] + list(AU_COLUMNS)
    df = _parse_fast(raw, header, names, wanted)
    if df is None:  # blank lines, ragged rows, empty cells or text: the careful path names the cell
        df = _parse_careful(path, raw, names, wanted)
    problem = _first_bad_value(path, df, wanted)
    if problem:
        raise problem

    n = df.height
    exprs: list[pl.Expr] = []
    if "frame" in df.columns:
        frame = pl.col("frame").cast(pl.Int64)
        if n > 1 and df["frame"].max() == 0:  # Windows 2.0.x: frame is 0 on every row
            if "timestamp" in df.columns and df["timestamp"].n_unique() > 1:
                frame = pl.col("timestamp").rank("dense").cast(pl.Int64)
            else:
                frame = pl.int_range(1, n + 1, dtype=pl.Int64)
        exprs.append(frame.alias("frame"))
    else:  # FaceLandmarkImg: a single image
        exprs.append(pl.lit(1, dtype=pl.Int64).alias("frame"))
    exprs.append(pl.col("timestamp") if "timestamp" in df.columns else pl.lit(0.0).alias("timestamp"))
    exprs.append(pl.col("confidence"))
    exprs.append(
        pl.col("success").cast(pl.Int8) if "success" in df.columns else pl.lit(1, dtype=pl.Int8).alias("success")
    )
    exprs.append(
        pl.col("face_id").cast(pl.Int64) if "face_id" in df.columns else pl.lit(0, dtype=pl.Int64).alias("face_id")
    )
    exprs += [pl.col(c).cast(pl.Float32) for c in INTENSITY_COLUMNS]
    exprs += [pl.col(c).cast(pl.Int8) for c in PRESENCE_COLUMNS]
    out = df.select(exprs)

    faces = out["face_id"].unique()
    if face_id is not None:
        if face_id not in faces.to_list():
            raise InputError(f"{path}: face_id {face_id} not found; the file has {sorted(faces.to_list())}")
        out = out.filter(pl.col("face_id") == face_id)
    elif len(faces) > 1:
        best = (
            out.group_by("face_id")
            .agg(pl.col("success").cast(pl.Int64).sum().alias("ok"))
            .sort(["ok", "face_id"], descending=[True, False])["face_id"][0]
        )
        out = out.filter(pl.col("face_id") == best)
    return out.sort("frame", maintain_order=True)


# ---------------------------------------------------------------- folders + cache


@dataclass
class OpenFaceFolder:
    """A folder of per-clip OpenFace CSVs read into one table."""

    frames: pl.DataFrame  #: canonical columns plus ``clip_id`` (str) first
    clips: list[str]  #: every clip id (file stem) in the folder, including clips with no rows
    skipped: list[tuple[str, str]] = field(default_factory=list)  #: (clip_id, reason) with on_error="skip"
    from_cache: int = 0  #: how many clips came from the Parquet cache
    sources: dict[str, str] = field(default_factory=dict)  #: clip id -> AU source (``audfer.au_sources``)

    @property
    def availability(self) -> AUAvailability:
        """Which AUs the folder's source(s) give (``au_sources.AUAvailability``); with several sources, an AU
        counts as given when every source gives it."""
        from .au_sources import MAPPINGS, AUAvailability

        names = sorted(set(self.sources.values())) or ["openface"]
        if "table" in names and self.mapping is None:
            raise ConfigError("AU folder read as a table source without its AU mapping (data.au_mapping)")
        mappings = [self.mapping if n == "table" else MAPPINGS[n] for n in names]
        return AUAvailability.combine([m.availability() for m in mappings if m is not None])

    mapping: AUMapping | None = field(default=None, repr=False)  #: the ``au_sources.AUMapping`` of a ``table`` source
    #: with ``read_au_dir(reduce=f)``: ``f`` of the frames, per chunk of clips, concatenated (``frames`` is then empty)
    reduced: pl.DataFrame | None = field(default=None, repr=False)
    n_frames: int = 0  #: frames read (also when ``frames`` was not kept)


def _read_chunk(
    paths: list[str], face_id: int | None, strict: bool, on_error: str, source: str = "openface", mapping=None
):
    from .au_sources import read_au_file

    frames: list[pl.DataFrame] = []
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    sources: dict[str, str] = {}
    for p in paths:
        clip = Path(p).stem
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OpenFaceWarning)
            try:
                df, sources[clip] = read_au_file(p, source, mapping=mapping, face_id=face_id, strict=strict)
            except AudferError as exc:
                if on_error == "raise":
                    return None, [(clip, str(exc))], notes, sources
                skipped.append((clip, str(exc)))
                continue
        notes += [str(w.message) for w in caught if issubclass(w.category, OpenFaceWarning)]
        frames.append(df.select(pl.lit(clip).alias("clip_id"), pl.all()))
    # one table per chunk: a worker sends one contiguous table back instead of thousands of small ones (their
    # per-table overhead and pickling dominated peak memory for folders of many short files)
    joined = [pl.concat(frames, how="vertical", rechunk=True)] if frames else []
    return joined, skipped, notes, sources


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("AUDFER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "audfer"


def read_openface_dir(directory: str | os.PathLike, **options: Any) -> OpenFaceFolder:
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
) -> OpenFaceFolder:
    """Read every ``*.csv`` in ``directory`` (one clip each, clip id = file stem) into one canonical table.

    ``source``: ``openface``, ``pyfeat``, ``libreface``, ``table`` (with ``mapping``, an
    ``au_sources.AUMapping``) or ``auto`` (each file's header decides; ``audfer.au_sources``). A folder
    whose files come from more than one tool is an error unless ``allow_mixed`` (AUs a clip's tool lacks
    are null for that clip). Files are parsed in parallel (``workers`` processes, default: all cores) and
    the table is cached under ``cache_dir`` (default ``$AUDFER_CACHE_DIR`` or ``~/.cache/audfer``), keyed by
    the folder and the reader options; unchanged files (same size and mtime) come from the cache.
    ``on_error="skip"`` skips unreadable files and lists them in ``skipped`` instead of raising.

    ``reduce``: a per-clip summary of the frames (``labels.video_au_labels``) computed without ever holding the
    folder's frames: each chunk of files is reduced as it arrives and written to the cache, the cached clips are
    reduced from a streaming scan of the cache, and ``reduced`` holds the results (``frames`` stays empty), so peak
    memory follows a chunk of files, not the folder (``benchmarks/bench_scale.py``).
    """
    from dataclasses import asdict

    from .au_sources import SOURCES

    if on_error not in ("raise", "skip"):
        raise ConfigError("on_error must be 'raise' or 'skip'")
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: OpenFace folder not found")
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
    if not paths:
        raise InputError(f"{directory}: no OpenFace .csv files found")
    stems = [p.stem for p in paths]
    dup = {s for s in stems if stems.count(s) > 1} if len(set(stems)) != len(stems) else set()
    if dup:
        raise InputError(f"{directory}: clip id {sorted(dup)[0]!r} appears in more than one file")
    stamps = {p.stem: [(st := p.stat()).st_size, st.st_mtime_ns] for p in paths}

    if source not in (*SOURCES, "auto"):
        raise InputError(f"unknown AU source {source!r}; expected one of {', '.join(SOURCES)} or auto")
    if source == "table" and mapping is None:
        raise InputError("--source table needs --mapping (a YAML file naming each AU column)")
    options = {
        "version": _CACHE_VERSION,
        "face_id": face_id,
        "strict": strict,
        "on_error": on_error,
        "source": source,
        "mapping": None if mapping is None else json.loads(json.dumps(asdict(mapping))),
    }
    key = hashlib.sha1(json.dumps([str(directory.resolve()), options]).encode()).hexdigest()[:16]
    cache_path = _cache_root(cache_dir) / "openface" / key
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
                    cached_lazy = _scan_cached_frames(cache_path, manifest).filter(pl.col("clip_id").is_in(list(fresh)))
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
    sink = _CacheSink(cache_path) if cache and todo else None
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
        for frames_part, skip, note, srcs in _read_files(
            todo, workers, face_id, strict, on_error, source, mapping, reduce
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
    schema = {"clip_id": pl.String, **_canonical_schema()}
    frames = pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=schema)
    frames = frames.sort(["clip_id", "frame"], maintain_order=True)
    if sink is not None:
        sink.finish({"options": options, "files": stamps, "skipped": dict(skipped), "sources": sources})
    return OpenFaceFolder(
        frames=frames,
        clips=stems,
        skipped=sorted(skipped),
        from_cache=len(fresh),
        sources=sources,
        mapping=mapping,
        reduced=None if reduce is None else (pl.concat(reduced, how="vertical") if reduced else None),
        n_frames=n_frames if reduce is not None else frames.height,
    )


def _read_files(todo, workers, face_id, strict, on_error, source, mapping, reduce):
    """``_read_chunk`` results for the files ``todo``, in order: in this process, or in ``workers`` spawned
    processes. With ``reduce`` the files go in chunks of 64, handed on one by one, so only a few chunks of frames
    exist at once."""
    if not todo:
        return
    n_workers = min(workers or os.cpu_count() or 1, max(1, len(todo) // 16))
    size = 64 if reduce is not None else -(-len(todo) // n_workers)
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    if n_workers == 1:
        for chunk in chunks:
            yield _read_chunk(chunk, face_id, strict, on_error, source, mapping)
        return
    old = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = "1"
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
            pending = [pool.submit(_read_chunk, c, face_id, strict, on_error, source, mapping) for c in chunks]
            for i in range(len(pending)):  # in order: the same result whatever finishes first
                result = pending[i].result()
                pending[i] = None  # the chunk's frames go once handed on
                yield result
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


def _file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return crc


#: A partial AU-cache file untouched this long was left by a killed process (``_CacheSink.finish`` removes it).
STALE_PART_SECONDS = 3600


class _CacheSink:
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

        table = frames.select("clip_id", *_canonical_schema()).to_arrow()
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
            self.write(pl.DataFrame(schema={"clip_id": pl.String, **_canonical_schema()}))
        if self.failed:
            return
        final = self.cache_path / self.name
        try:
            self.writer.close()
            self.writer = None
            os.replace(self.part, final)
            manifest = {**manifest, "frames_file": self.name, "frames_bytes": final.stat().st_size}
            manifest["frames_crc32"] = _file_crc(final)
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


def _scan_cached_frames(cache_path: Path, manifest: dict[str, Any]) -> pl.LazyFrame:
    """The Parquet file the manifest names, checked against the size, CRC-32 and schema recorded with it (a
    truncated, edited or foreign file raises ``CacheEntryError``: the caller re-reads the AU files), as a lazy scan."""
    path = cache_path / str(manifest["frames_file"])
    if path.stat().st_size != manifest["frames_bytes"] or _file_crc(path) != manifest["frames_crc32"]:
        raise CacheEntryError(f"{path.name} does not match its manifest (size or CRC-32)")
    scan = pl.scan_parquet(path, glob=False)
    want = {"clip_id": pl.String, **_canonical_schema()}
    if dict(scan.collect_schema()) != want:
        raise CacheEntryError(f"{path.name} has another schema than the canonical frames table")
    return scan


def _canonical_schema() -> dict[str, Any]:  # polars dtype classes (pl.Int64 ...), as polars takes them
    schema: dict[str, Any] = {
        "frame": pl.Int64,
        "timestamp": pl.Float64,
        "confidence": pl.Float64,
        "success": pl.Int8,
        "face_id": pl.Int64,
    }
    schema.update({c: pl.Float32 for c in INTENSITY_COLUMNS})
    schema.update({c: pl.Int8 for c in PRESENCE_COLUMNS})
    return schema
