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
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audfer.errors import AudferError

__all__ = ["output_target", "atomic_path", "write_json", "write_bytes", "one_line", "check_text_file", "read_yaml"]


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
    zero = head.find(b"\x00")
    if zero >= 0:
        raise AudferError(f"{path}: not a text file (a NUL byte at byte {zero}); expected {what}")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the 64 KiB boundary
            raise AudferError(
                f"{path}: not UTF-8 text (byte {exc.start} is 0x{head[exc.start]:02x}); expected {what} "
                f"(a spreadsheet's export? save it as CSV UTF-8)"
            ) from None


def read_yaml(path: str | os.PathLike, what: str, error: type[AudferError] = AudferError) -> Any:
    """A YAML file read safely (``yaml.safe_load``: no ``!!python`` tags, nothing imported or called); a missing,
    binary or malformed file is one ``error`` line naming it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        check_text_file(path, what)
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except AudferError as exc:
        raise error(str(exc)) from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({one_line(exc)})") from None
