"""One run per folder: ``audfer train`` / ``cv`` / ``ablate`` hold ``<run folder>/.audfer.lock`` while they work.

The lock file names the process (pid, host, command, start time). A second command into the same folder
refuses and names that process; a lock whose process is gone (same host, pid not alive) is taken over with
a message. Folders the lock created are removed again when the command leaves them empty (a run that failed its
first check leaves no empty run folder behind). Lightning's DDP worker processes (``LOCAL_RANK``/``RANK`` > 0)
belong to the locking run and skip the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from audfer.errors import AudferError
from audfer.hints import Log
from audfer.run_layout import LOCK as LOCK_NAME  # noqa: F401  (kept importable: the layout owns the name)
from audfer.run_layout import RunLayout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _worker_of_a_run() -> bool:
    return any(os.environ.get(k, "0") not in ("", "0") for k in ("LOCAL_RANK", "RANK"))


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, *, log: Log = print) -> Iterator[Path | None]:
    """Hold the folder's lock for the duration of the ``with`` block (see the module docstring)."""
    folder = Path(folder)
    if _worker_of_a_run():
        yield None
        return
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # removed again if left empty (a failed start)
    folder.mkdir(parents=True, exist_ok=True)
    path = RunLayout(folder).lock
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(sys.argv) or "python",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(path.read_text())
            except (OSError, ValueError):
                other = {}
            pid, host = other.get("pid"), other.get("host")
            if other.get("pid") == os.getpid() and host == me["host"]:
                yield path  # re-entered by the same process (cv -> train): already ours
                return
            if isinstance(pid, int) and host == me["host"] and not _alive(pid):
                log(f"taking over the lock of {folder}: its process {pid} ({other.get('command', '?')}) is gone")
                path.unlink(missing_ok=True)
                continue
            if not isinstance(pid, int):
                raise AudferError(
                    f"{folder}: unreadable run lock {path.name}; if no audfer command is using this folder, "
                    f"delete {path}"
                )
            raise AudferError(
                f"{folder}: run folder in use by process {pid} on {host} ({other.get('command', '?')}, since "
                f"{other.get('started', '?')}); wait for it, or choose another out="
            )
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:  # pragma: no cover - a third process raced us twice
        raise AudferError(f"{folder}: could not take the run lock {path}")
    try:
        yield path
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
        for made in created:  # innermost first; a folder with anything in it stays
            try:
                made.rmdir()
            except OSError:
                break
