"""Where weights come from: a local file or folder, or a Hugging Face Hub model id (``org/name``, with a revision).

Hub ids go through ``huggingface_hub`` (its cache, revision pinning; ``HF_HUB_OFFLINE=1`` is respected: an id that is
not in the local cache is one line naming it, never a network call). A package folder (``audfer package``) holds
``config.json`` and ``model.safetensors`` (``docs/weights.md``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from audfer.errors import CheckpointError

__all__ = ["PACKAGE_WEIGHTS", "PACKAGE_CONFIG", "is_hub_id", "is_package", "resolve_weights"]

PACKAGE_WEIGHTS = "model.safetensors"
PACKAGE_CONFIG = "config.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def is_package(path: str | os.PathLike[str]) -> bool:
    """A folder written by ``audfer package`` (``config.json`` + ``model.safetensors``)."""
    p = Path(path)
    return p.is_dir() and (p / PACKAGE_WEIGHTS).is_file() and (p / PACKAGE_CONFIG).is_file()


def is_hub_id(source: str | os.PathLike[str]) -> bool:
    """``org/name`` (or ``org/name@revision``) that is not a local path: a Hugging Face Hub model id."""
    text = str(source)
    if "@" in text and not Path(text).exists():
        text = text.rpartition("@")[0]
    return bool(_HUB_ID.match(text)) and not Path(text).exists() and not text.endswith((".ckpt", ".pth", ".pt"))


def resolve_weights(source: str | os.PathLike[str], revision: str | None = None) -> Path:
    """A local path for ``source``: the file or folder itself, or the Hub snapshot of ``org/name`` at ``revision``
    (a branch, tag or commit; default ``main``), downloaded into (or, offline, read from) the Hugging Face cache."""
    text = str(source)
    if revision is None and "@" in text and is_hub_id(text.rpartition("@")[0]):
        source, revision = text.rpartition("@")[0], text.rpartition("@")[2]  # org/name@revision
    if not is_hub_id(source):
        if revision is not None:
            raise CheckpointError(f"{source}: a revision ({revision}) is for Hub ids (org/name), not local files")
        return Path(source)
    repo = str(source)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover - a dependency of audfer
        raise CheckpointError(
            f"{repo}: loading from the Hub needs huggingface_hub (pip install huggingface_hub)"
        ) from None
    where = f"{repo} (revision {revision or 'main'})"
    try:
        return Path(snapshot_download(repo, revision=revision))
    except LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        raise CheckpointError(
            f"{where}: not in the local Hugging Face cache"
            + (
                " and HF_HUB_OFFLINE is set (unset it to download, or download it elsewhere and copy the cache)"
                if offline
                else " and the Hub could not be reached"
            )
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointError(
            f"{where}: no such model repository on the Hub (or it is private: log in first)"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{where}: cannot get it from the Hub: {first}") from None
