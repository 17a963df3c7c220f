"""Whether a stored config may import code: the one gate every door that reads a model goes through.

A config may name code to import and call: ``model.name: package.module:factory`` (a user's model,
``models.custom``), called with ``model.kwargs``, ``data.dataset: package.module:name`` (a user's dataset module,
``data.registry``) or ``data.au_source: package.module:tool`` (a user's AU tool, ``audfer.au.tools``). Written by
the user, that is their own code; stored in a file
someone else wrote (a training checkpoint, a model package's ``config.json``, a Hub snapshot, an experiment or study
file inside a package), importing it would run a stranger's code (``os:system`` with ``model.kwargs``). So a stored
config that names code is refused, naming the file and the code, before anything is imported, unless the user says
the file is trusted (``--trust-pickle``, ``trust_pickle=True``, ``model.trust_pickle=true``; docs/weights.md,
"What is trusted when"). Standard library only: the torch-free config loader uses it too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from audfer.errors import CheckpointError

__all__ = ["CODE_KEYS", "TRUST_HINT", "named_code", "check_stored_config", "check_package", "in_package"]

#: How the user says a file is trusted (every door takes one of these).
TRUST_HINT = (
    "pass --trust-pickle (trust_pickle=True, model.trust_pickle=true) only if you trust the file and that module"
)


#: The options through which a config names code to import (``package.module:attribute``): a user's model
#: (``audfer.models.custom``), a user's dataset (``audfer.data.registry``) and a user's AU tool (``audfer.au.tools``).
CODE_KEYS = ("model.name", "data.dataset", "data.au_source")


def _named(cfg: object) -> tuple[str, str] | None:
    for dotted in CODE_KEYS:
        section, key = dotted.split(".")
        part = cfg.get(section) if isinstance(cfg, Mapping) else None
        name = part.get(key) if isinstance(part, Mapping) else None
        if isinstance(name, str) and ":" in name:
            return dotted, name
    return None


def named_code(cfg: object) -> str | None:
    """The code a config names to import and run (``model.name``, ``data.dataset`` or ``data.au_source`` of the form
    ``package.module:attribute``), or None for registered names only. Works on the plain (stored) form: nothing is
    built or imported to answer."""
    found = _named(cfg)
    return found[1] if found else None


def check_stored_config(
    cfg: object, source: str | os.PathLike[str], *, trusted: bool, error: type[Exception] = CheckpointError
) -> None:
    """Refuse (``error``, one line naming ``source`` and the code) a stored config that names code to import, unless
    ``trusted``. Call it before anything builds a model or a ``Config`` from ``cfg``: both import the code."""
    found = _named(cfg)
    if found is None or trusted:
        return
    key, code = found
    kwargs = cfg["model"].get("kwargs") if isinstance(cfg, Mapping) and key == "model.name" else None
    args = f" with model.kwargs={dict(kwargs)!r}" if isinstance(kwargs, Mapping) and kwargs else ""
    raise error(
        f"{source}: refused: its config names code to import and run ({key}={code!r}{args}); {TRUST_HINT} "
        f"(docs/weights.md)"
    )


def _hub_cache() -> Path | None:
    """The Hugging Face cache folder (where Hub ids are downloaded): ``huggingface_hub``'s own setting once it is
    loaded, else the environment as it reads it."""
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None and getattr(hub, "HF_HUB_CACHE", None):
        return Path(hub.HF_HUB_CACHE)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def in_package(path: str | os.PathLike[str]) -> Path | None:
    """The model package (a folder with ``config.json`` and ``model.safetensors``) or Hugging Face cache that
    ``path`` lies in, or None: a file taken from there was written by the package's author, not by the user."""
    p = Path(path).absolute()
    for folder in p.parents:
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
    cache = _hub_cache()
    try:
        if cache is not None and p.resolve().is_relative_to(cache.resolve()):
            return cache
    except OSError:
        return None
    return None


def check_package(folder: str | os.PathLike[str], *, trusted: bool) -> None:
    """A model package's ``config.json`` through ``check_stored_config``: its run config and its ``model`` entry
    (either would be built). An unreadable file is left to the reader that needs it (it names the problem)."""
    import json

    path = Path(folder) / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, Mapping):
        check_stored_config(data.get("config"), path, trusted=trusted)
        check_stored_config(data, path, trusted=trusted)
