"""User code named in a config or on the command line: ``package.module:attribute``, the one form in which audfer
imports a user's model (``model.name``), dataset (``data.dataset``) or AU tool (``data.au_source``). One importer for
all three (``import_named``); whether a stored config may name code at all is ``audfer.trust``'s decision, taken
before this is called. Standard library only."""

from __future__ import annotations

import importlib
from types import ModuleType

from audfer.errors import AudferError, ConfigError


def is_code_name(name: object) -> bool:
    """``package.module:attribute`` (both parts non-empty); registered names never hold a colon."""
    if not isinstance(name, str):
        return False
    module, _, attr = name.partition(":")
    return bool(module.strip()) and bool(attr.strip())


def import_module_of(name: str, what: str, *, error: type[AudferError] = ConfigError) -> ModuleType:
    """The module part of ``package.module:attribute``, imported (importing it runs its registrations)."""
    module_name = name.partition(":")[0]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{what}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from None


def import_named(name: str, what: str, *, expected: str, error: type[AudferError] = ConfigError) -> object:
    """The object ``package.module:attribute`` names (dots after the colon walk attributes), imported. ``what``
    begins every message (e.g. ``model.name 'pkg.mod:f'``); ``expected`` says what the name should have been."""
    module_name, _, attr = name.partition(":")
    if not is_code_name(name):
        raise error(f"{what}: expected {expected}")
    obj: object = import_module_of(name, what, error=error)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise error(f"{what}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj
