"""The AU-tool plug-in type and its registry (``audfer.au.tools`` re-exports them and loads the built-in tools)."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from audfer.au.mapping import AUMapping, header_of
from audfer.errors import AudferError, InputError
from audfer.files import check_text_file, one_line
from audfer.plugins import import_named, is_code_name

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "AUTool",
    "register_au_tool",
    "list_au_tools",
    "get_au_tool",
    "detect_au_tool",
    "is_au_tool_name",
    "tool_modules",
    "import_tool_modules",
    "SourceChoices",
]

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class AUTool:
    """One AU tool's per-frame file: subclass it, set the attributes, override the hooks its files need.

    ``read`` is the generic reader (``audfer.au.reader.read_mapped``: numbers checked per row and column, unknown
    AUs null, presence and intensity by the rules of ``audfer.au.sources``) on ``mapping``; a tool whose files it
    cannot read overrides ``read`` (``openface``)."""

    name: str = ""  #: what ``--source`` and ``data.au_source`` call it (lower case, no colon)
    summary: str = ""  #: the file it reads, one line (``docs/au-sources.md``'s tool list)
    header_hint: str = ""  #: its header in words, for an unrecognised header's error ("" for a tool never detected)
    expected: str = ""  #: what a file missing mapped columns should have been ("py-feat 2.x Detector output")
    priority: int = 100  #: detection order: lower asks first (a tool whose header another tool's rule also matches)
    mapping: AUMapping | None = None  #: its columns (None: the user's mapping file, ``needs_mapping``)
    needs_mapping: bool = False  #: the columns come from a mapping file (``--mapping``, ``data.au_mapping``)

    def detect(self, header: Sequence[str]) -> bool:
        """Whether a file with these column names (stripped) is this tool's."""
        return False

    def mapping_for(self, path: Path, mapping: AUMapping | None) -> AUMapping:
        """The mapping a file is read with: the tool's own, or the user's for a ``needs_mapping`` tool."""
        if self.needs_mapping:
            if mapping is None:
                raise InputError(f"{path}: --source {self.name} needs --mapping (a YAML file naming each AU column)")
            return mapping
        if self.mapping is None:
            raise InputError(f"AU tool {self.name!r} declares no mapping and no reader of its own")
        return self.mapping

    def read(
        self, path: Path, *, mapping: AUMapping | None = None, face_id: int | None = None, strict: bool = False
    ) -> pl.DataFrame:
        """One clip's file -> the canonical frames table (``audfer.au.openface.read_openface``'s columns)."""
        from audfer.au.reader import read_mapped, read_raw
        from audfer.io import rows_below

        use = self.mapping_for(path, mapping)
        df, skipped = read_raw(path)
        with rows_below(skipped):
            return read_mapped(path, df, self, use)

    def frame_numbers(self, path: Path, df: pl.DataFrame, mapping: AUMapping) -> np.ndarray | None:
        """Hook: 1-based frame numbers of the rows when the tool numbers frames its own way; None: the mapping's
        ``frame`` column (or row order)."""
        return None

    def keep_one_face(
        self, path: Path, df: pl.DataFrame, frame: np.ndarray, confidence: np.ndarray
    ) -> np.ndarray | None:
        """Hook: for a file with several rows per frame (several faces), the row indices to keep, one per frame, in
        frame order; None (the default): a repeated frame is an error naming the row."""
        return None

    def __repr__(self) -> str:
        return f"<AU tool {self.name}>"


_REGISTRY: dict[str, AUTool] = {}
_BUILTIN_MODULES = ("openface", "pyfeat", "libreface", "table")


def register_au_tool(tool: AUTool | type[AUTool]) -> AUTool | type[AUTool]:
    """Register ``tool`` (an ``AUTool`` or a subclass, then instantiated) under its ``name``; returns it, so it also
    decorates a class. Each tool registers itself at the end of its own module; registering a name again replaces
    the earlier tool (a module imported twice)."""
    obj = tool() if isinstance(tool, type) else tool
    if not isinstance(obj, AUTool):
        raise AudferError(f"register_au_tool: {tool!r} is not an audfer.au.tools.AUTool")
    if not isinstance(obj.name, str) or not _NAME.match(obj.name) or obj.name == "auto":
        raise AudferError(
            f"register_au_tool: name {obj.name!r}; expected lower-case letters, digits, '_' or '-' (not 'auto')"
        )
    if obj.mapping is None and not obj.needs_mapping and type(obj).read is AUTool.read:
        raise AudferError(f"register_au_tool: {obj.name!r} needs a mapping, needs_mapping=True or a read method")
    _REGISTRY[obj.name] = obj
    return tool


def list_au_tools() -> list[str]:
    """Every registered tool's name, in detection order (``priority``, then name)."""
    return [t.name for t in sorted(_REGISTRY.values(), key=lambda t: (t.priority, t.name))]


def is_au_tool_name(name: object) -> bool:
    """A registered tool, ``auto``, or a ``package.module:attribute`` naming a user's tool (not imported here)."""
    return isinstance(name, str) and (name == "auto" or name in _REGISTRY or is_code_name(name))


def _import_tool(name: str, error: type[AudferError]) -> AUTool:
    """The tool named ``package.module:attribute`` (an ``AUTool`` or subclass; registered if its module did not)."""
    attr = name.partition(":")[2]
    obj = import_named(name, f"AU source {name!r}", expected="'package.module:attribute'", error=error)
    if isinstance(obj, type) and issubclass(obj, AUTool):
        registered = _REGISTRY.get(obj.name)
        obj = registered if isinstance(registered, obj) else obj()
    if not isinstance(obj, AUTool):
        raise error(f"AU source {name!r}: {attr!r} is not an audfer.au.tools.AUTool (or a subclass)")
    if _REGISTRY.get(obj.name) is not obj:
        register_au_tool(obj)
    return obj


def get_au_tool(name: str, *, error: type[AudferError] = InputError) -> AUTool:
    """The registered tool ``name``, or a user's ``package.module:attribute`` (imported, then registered)."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    if isinstance(name, str) and is_code_name(name):
        return _import_tool(name, error)
    raise error(
        f"unknown AU source {name!r}; expected one of {', '.join(list_au_tools())}, auto, or a tool of your own as "
        f"package.module:attribute (docs/au-sources.md)"
    )


def tool_modules(names: Sequence[str]) -> tuple[str, ...]:
    """The modules defining the tools ``names`` that are not built in: a worker process imports them (their
    registration runs there too) before it reads a file."""
    out = []
    for n in names:
        tool = _REGISTRY.get(n)
        module = type(tool).__module__ if tool is not None else None
        if module and not module.startswith("audfer.au.tools.") and module != "__main__" and module not in out:
            out.append(module)
    return tuple(out)


def import_tool_modules(modules: Sequence[str]) -> None:
    """``tool_modules``' modules imported (in a worker process)."""
    for m in modules:
        importlib.import_module(m)


def detect_au_tool(path: str | os.PathLike, header: list[str] | None = None) -> AUTool:
    """The first registered tool (``priority`` order) whose ``detect`` takes the file's header; an unknown header is
    an error listing what each tool expects."""
    path = Path(path)
    names = header if header is not None else header_of(path)
    for tool_name in list_au_tools():
        tool = _REGISTRY[tool_name]
        if tool.detect(names):
            return tool
    check_text_file(path, "an AU CSV (a binary file in the AU folder?)")  # a binary file: say so, not its bytes
    shown = one_line(", ".join(names[:8]) + (", ..." if len(names) > 8 else ""), 120)
    hints = [_REGISTRY[n].header_hint for n in list_au_tools() if _REGISTRY[n].header_hint]
    mapped = [n for n in list_au_tools() if _REGISTRY[n].needs_mapping]
    tail = f", or use --source {mapped[0]} with --mapping for any other per-frame table" if mapped else ""
    raise InputError(f"{path}: unrecognised AU file header ({shown}); expected {', '.join(hints)}{tail}")


class SourceChoices(Sequence[str]):
    """``auto`` and every registered tool, read when asked (argparse's ``choices``, the config check), and
    containing any ``package.module:attribute`` too (a user's tool, imported when used)."""

    def _names(self) -> list[str]:
        return ["auto", *list_au_tools()]

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return is_au_tool_name(name)
