"""Plain files, without the table libraries (so that light paths, ``audfer --help`` or a cached ``audfer au-labels``,
load no polars): atomic writes (every output goes to a temporary file in the destination folder and is renamed into
place, so an interrupted or failing step never leaves a half-written file, and a full disk names the path and keeps
the previous file), text-file checks, and the one safe YAML reader."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from audfer.errors import AudferError

__all__ = [
    "output_target",
    "atomic_path",
    "write_json",
    "write_bytes",
    "one_line",
    "check_text_file",
    "table_bytes",
    "out_of_room",
    "writing",
    "load_yaml_text",
    "read_yaml",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_target(path: str | os.PathLike) -> Path:
    """Where writing ``path`` really lands: a symlink is followed to its target (so the link stays a link and
    the file it points to is replaced); a folder, a device, a FIFO or a socket at the path is an error naming
    the user's path."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise AudferError(f"{path}: cannot write here ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudferError(f"{path}: is a folder; expected a file path to write")
    if not stat.S_ISREG(st.st_mode):
        raise AudferError(f"{path}: is not a regular file (a device, FIFO or socket); refusing to replace it")
    return target


#: errno values that mean "the disk cannot take this file" (full, over quota, too large, read-only, failing)
_OUT_OF_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def _errno_of(exc: OSError) -> int | None:
    """The errno of an OSError; polars' (Rust) errors carry it only in their text, as ``(os error 28)``."""
    if exc.errno is not None:
        return exc.errno
    found = re.search(r"os error (\d+)", str(exc))
    return int(found.group(1)) if found else None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``'s target; rename it onto the target only on success.

    Through a symlink the target file is replaced (in the target's folder, so the rename stays atomic) and
    the link is kept; a folder or a device at ``path`` is refused. The new file gets the usual permissions
    (0666 minus the umask, or the mode of the file it replaces), not ``mkstemp``'s 0600. Errors name
    ``path``, never the temporary file; a full disk (or quota, read-only file system) while writing is one
    ``AudferError`` naming ``path`` and saying the previous file is intact."""
    user = Path(path)
    target = output_target(user)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix or target.suffix or ".tmp", dir=target.parent
        )
    except OSError as exc:
        raise AudferError(f"{user}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as exc:
            code = _errno_of(exc)
            if code not in _OUT_OF_ROOM:
                raise
            kept = "the previous file is intact" if target.exists() else "nothing was written"
            raise AudferError(f"{user}: cannot write here ({os.strerror(code)}); {kept}") from None
        try:
            mode = os.stat(target).st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
            os.chmod(tmp_path, mode)
            os.replace(tmp_path, target)
        except OSError as exc:
            raise AudferError(f"{user}: cannot write here ({exc.strerror})") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def out_of_room(exc: BaseException) -> str | None:
    """What a failed write says when the disk cannot take the file (full, over quota, over the size limit,
    read-only, failing), or None: an ``OSError`` with such an errno, or torch's zip writer failing mid-file (its
    ``RuntimeError`` carries no errno: ``inline_container.cc ... unexpected pos`` / ``file write failed``)."""
    if isinstance(exc, OSError):
        code = _errno_of(exc)
        return os.strerror(code) if code in _OUT_OF_ROOM else None
    text = str(exc)
    if isinstance(exc, RuntimeError) and "inline_container" in text and ("unexpected pos" in text or "write" in text):
        return "the file could not be written whole (a full disk?)"
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike, what: str = "", kept: str | None = None) -> Iterator[None]:
    """A write that does not go through ``atomic_path`` (a library writing several files: Lightning's logs and
    checkpoints, a dataset folder) still fails in one line naming ``path``: an ``OSError`` that names no file (a
    ``write()`` on a full disk) or says the disk is full, or torch's writer failing mid-file, becomes an
    ``AudferError`` naming ``path`` (or the file the error names) and what was kept (``kept``)."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        why = out_of_room(exc)
        if why is None and not (isinstance(exc, OSError) and exc.filename is None):
            raise
        where = getattr(exc, "filename", None) or path
        why = why or (exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc))
        raise AudferError(f"{where}: cannot write {what or 'here'} ({why})" + (f"; {kept}" if kept else "")) from None


def write_json(obj: object, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON atomically (a crash never leaves a partial file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def one_line(text: object, limit: int = 160) -> str:
    """The first line of an error text, printable characters only, cut at ``limit``: a library's message about
    a binary file quotes its bytes, which must not spill over the terminal."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    clean = "".join(c if c.isprintable() else "?" for c in first)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def check_text_file(path: Path, what: str) -> None:
    """Refuse, in one line, a file that is not UTF-8 text (a binary file, an image, an archive given where a CSV
    or YAML belongs), naming the byte where it stops being text."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise AudferError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if head.startswith(_UTF16_BOMS) and not head.startswith(b"\xff\xfe\x00\x00"):
        return  # UTF-16 text with its byte-order mark: the reader decodes it (``table_bytes``)
    zero = head.find(b"\x00")
    if zero >= 0:
        hint = ""
        if len(head) >= 4 and (head[1::2].count(0) > len(head) // 4 or head[0::2].count(0) > len(head) // 4):
            hint = " (UTF-16 text without a byte-order mark? save it as CSV UTF-8)"
        raise AudferError(f"{path}: not a text file (a NUL byte at byte {zero}{hint}); expected {what}")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the 64 KiB boundary
            raise AudferError(
                f"{path}: not UTF-8 text (byte {exc.start} is 0x{head[exc.start]:02x}); expected {what} "
                f"(a spreadsheet's export? save it as CSV UTF-8)"
            ) from None


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SEP_LINE = re.compile(rb'^\s*"?sep=(.)"?[,;\t]*\s*$', re.IGNORECASE)


def _utf16(path: Path, raw: bytes, what: str) -> bytes:
    """UTF-16 text with a byte-order mark (a spreadsheet's "Unicode text" export) as UTF-8 bytes, said in a
    warning; not a UTF-32 mark (``ff fe 00 00``)."""
    import warnings

    if not raw.startswith(_UTF16_BOMS) or raw.startswith(b"\xff\xfe\x00\x00"):
        return raw
    try:
        text = raw.decode("utf-16")
    except UnicodeDecodeError as exc:
        raise AudferError(
            f"{path}: starts with a UTF-16 byte-order mark but is not UTF-16 text ({exc.reason})"
        ) from None
    if "\x00" in text:
        raise AudferError(f"{path}: not a text file (a NUL character in its UTF-16 text); expected {what}")
    warnings.warn(f"{path}: read as UTF-16 text (its byte-order mark says so)", UserWarning, stacklevel=3)
    return text.encode("utf-8")


def table_bytes(path: str | os.PathLike, raw: bytes, what: str) -> tuple[bytes, str | None, int]:
    """A table file's bytes as a CSV reader wants them, read as the user meant: UTF-16 with a byte-order mark
    decoded (a warning says so), a UTF-8 byte-order mark dropped, CR-only line ends (old Mac, Excel for Mac) made
    ``\\n``, and Excel's ``sep=;`` first line taken as the separator. Returns ``(bytes, separator or None, lines
    skipped before the header)``: errors then name the file's own rows (the header is row ``1 + skipped``)."""
    path = Path(path)
    raw = _utf16(path, raw, what).removeprefix(b"\xef\xbb\xbf")
    head = raw[: 1 << 16]
    if b"\r" in head and b"\n" not in head:
        raw = raw.replace(b"\r", b"\n")
    end = raw.find(b"\n")
    sep = _SEP_LINE.match(raw if end < 0 else raw[:end].rstrip(b"\r"))
    if sep:
        return raw[end + 1 :] if end >= 0 else b"", sep.group(1).decode("latin-1"), 1
    return raw, None, 0


#: Bounds on every YAML audfer reads (configs, studies, knowledge configs, AU mappings, stored run configs): far
#: above any real file, far below what hangs or crashes the reader (an alias bomb, thousands of nested lists).
MAX_YAML_BYTES = 8 * 2**20
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 1000
MAX_YAML_NODES = 1_000_000  # nodes of the document with every alias expanded


def _bounded_loader(where: str) -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses a document deeper than ``MAX_YAML_DEPTH``, with more than
        ``MAX_YAML_ALIASES`` aliases, or larger than ``MAX_YAML_NODES`` nodes once its aliases are expanded."""

        depth = aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise AudferError(f"{where}: more than {MAX_YAML_ALIASES} YAML aliases (an alias bomb?)")
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise AudferError(f"{where}: line {mark.line + 1}: YAML nested more than {MAX_YAML_DEPTH} levels deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_document(self, node):
            sizes: dict[int, int] = {}

            def size(n) -> int:  # memoised: linear in the composed graph
                if id(n) not in sizes:
                    sizes[id(n)] = 0  # a recursive alias counts once
                    kids = n.value if isinstance(n.value, list) else []
                    total = 1
                    for kid in kids:
                        total += sum(size(k) for k in kid) if isinstance(kid, tuple) else size(kid)
                        if total > MAX_YAML_NODES:
                            break
                    sizes[id(n)] = total
                return sizes[id(n)]

            if self.aliases and size(node) > MAX_YAML_NODES:
                raise AudferError(
                    f"{where}: more than {MAX_YAML_NODES:,} values once its YAML aliases are expanded (an alias bomb?)"
                )
            return super().construct_document(node)

    return BoundedLoader


def load_yaml_text(text: str, where: str) -> Any:
    """YAML text read safely and within bounds (``MAX_YAML_*``: size, nesting depth, aliases, expanded size): a
    hostile document is one ``AudferError`` naming ``where``, never a hang or a ``RecursionError``. Malformed
    YAML raises ``yaml.YAMLError`` (the caller words it)."""

    if len(text) > MAX_YAML_BYTES:
        raise AudferError(f"{where}: {len(text):,} characters of YAML; expected at most {MAX_YAML_BYTES:,}")
    loader = _bounded_loader(where)(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike, what: str, error: type[AudferError] = AudferError) -> Any:
    """A YAML file read safely (``yaml.safe_load``'s loader: no ``!!python`` tags, nothing imported or called) and
    within bounds (``load_yaml_text``: size, depth, aliases); UTF-16 with a byte-order mark is decoded. A missing,
    binary, malformed or hostile file is one ``error`` line naming it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise AudferError(f"{path}: {size:,} bytes; expected {what} of at most {MAX_YAML_BYTES:,} bytes")
        check_text_file(path, what)
        raw = _utf16(path, path.read_bytes(), what)
        return load_yaml_text(raw.decode("utf-8-sig"), str(path))
    except AudferError as exc:
        raise error(str(exc)) from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); expected {what}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({one_line(exc)})") from None


# ------------------------------------------------------------------------------ output folders (--overwrite)

#: The file audfer writes into every folder it creates whole (``replace_output_dir``): its kind and the entries it
#: wrote. ``--overwrite`` replaces a folder only when this file (or a kind's own older evidence) says audfer wrote
#: everything in it.
OUTPUT_MARKER = ".audfer-output.json"


def _real_folder(out: Path) -> Path:
    """``out``, a symlink followed to its target (the link stays; the folder it points to is replaced)."""
    return Path(os.path.realpath(out)) if out.is_symlink() else out


def output_dir_entries(folder: str | os.PathLike, kind: str) -> set[str] | None:
    """The entries audfer wrote into ``folder`` as an output of ``kind`` (``OUTPUT_MARKER``), or None when the folder
    has no marker of that kind."""
    try:
        meta = json.loads((Path(folder) / OUTPUT_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("written_by") != "audfer" or meta.get("kind") != kind:
        return None
    entries = meta.get("entries")
    return {str(e) for e in entries} if isinstance(entries, list) else None


def check_output_dir(
    out: str | os.PathLike,
    *,
    kind: str,
    what: str,
    overwrite: bool,
    legacy: Callable[[Path], set[str] | None] | None = None,
    evidence: str = OUTPUT_MARKER,
    protect: Iterable[str | os.PathLike] = (),
    error: type[AudferError] = AudferError,
) -> Path:
    """The real folder an output ``out`` of ``kind`` goes to, refused in one line unless it is absent, empty, or
    (with ``overwrite``) a folder audfer wrote as ``what``: its ``OUTPUT_MARKER`` (or ``legacy(folder)``, the entries
    an older audfer's output of this kind holds, recognised by ``evidence``) lists every entry in it, and no
    ``protect`` path (the output's own source) lies in it. A symlink is followed to its target."""
    user = Path(out)
    target = _real_folder(user)
    if not target.exists():
        return target
    if not target.is_dir():
        raise error(f"{user}: exists and is not a folder; choose another --out")
    if not any(target.iterdir()):
        return target
    if not overwrite:
        raise error(f"{user}: exists and is not empty; choose another --out or pass --overwrite (it replaces {what})")
    real = target.resolve()
    for p in protect:
        src = Path(p).resolve()
        if src == real or src.is_relative_to(real):
            raise error(
                f"{user}: holds {p}, the source of this output; --overwrite never replaces it: choose another --out"
            )
    entries = output_dir_entries(target, kind)
    if entries is None and legacy is not None:
        entries = legacy(target)
    if entries is None:
        raise error(
            f"{user}: --overwrite replaces only {what}, and this folder has no {evidence} of one; choose another --out"
        )
    foreign = sorted(p.name for p in target.iterdir() if p.name not in entries and p.name != OUTPUT_MARKER)
    if foreign:
        raise error(
            f"{user}: holds files audfer did not write as {what} ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); --overwrite would delete them: move them or choose another --out"
        )
    return target


@contextlib.contextmanager
def replace_output_dir(
    out: str | os.PathLike,
    *,
    kind: str,
    what: str,
    overwrite: bool = False,
    legacy: Callable[[Path], set[str] | None] | None = None,
    evidence: str = OUTPUT_MARKER,
    protect: Iterable[str | os.PathLike] = (),
    error: type[AudferError] = AudferError,
) -> Iterator[Path]:
    """Build an output folder whole: yield an empty temporary folder beside ``out``'s real folder, then (on success)
    write ``OUTPUT_MARKER`` into it and put it in place of the old folder, which goes only then. ``out`` is checked
    first (``check_output_dir``: absent, empty, or with ``overwrite`` a folder audfer wrote as ``what``); a symlink
    keeps pointing at its target, whose content is replaced. On failure the old folder is intact, the temporary one
    gone, and a full disk is one line naming ``out``."""
    user = Path(out)
    opts: dict[str, Any] = dict(kind=kind, what=what, legacy=legacy, evidence=evidence, protect=protect, error=error)
    target = check_output_dir(user, overwrite=overwrite, **opts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise error(f"{user}: cannot write here ({exc.strerror})") from None
    try:
        try:
            yield tmp
            entries = sorted(p.name for p in tmp.iterdir())
            write_json({"written_by": "audfer", "kind": kind, "entries": entries}, tmp / OUTPUT_MARKER)
            check_output_dir(user, overwrite=overwrite, **opts)  # still ours
            if target.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, trash / target.name)
                os.replace(tmp, target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except OSError as exc:
            code = _errno_of(exc)
            kept = "the previous folder is intact" if target.exists() else "nothing was written"
            raise error(f"{user}: cannot write here ({os.strerror(code) if code else exc}); {kept}") from None
        except AudferError as exc:  # an atomic write inside names the temporary folder: name the output instead
            if str(tmp) not in str(exc):
                raise
            raise type(exc)(str(exc).replace(str(tmp), str(user))) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ += ["OUTPUT_MARKER", "output_dir_entries", "check_output_dir", "replace_output_dir"]


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (read in 1 MiB blocks): its identity wherever it is copied."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ += ["file_sha256"]
