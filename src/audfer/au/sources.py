"""Per-frame AU files from the tools people install, read into the canonical frames table through the AU-tool
registry (``audfer.au.tools``: one module per tool, each registering itself).

``read_au_file`` reads one clip's file with a named tool or the one its header belongs to (``detect_source``);
``MAPPINGS`` is every registered tool's own column mapping, rendered for ``docs/au-sources.md`` by
``mapping_markdown`` and ``tools_markdown`` (a test keeps the doc identical). The mapping types and mapping files
live in ``audfer.au.mapping`` (re-exported here), the generic reader every mapped tool shares in
``audfer.au.reader``; ``audfer.au.mapping``'s docstring gives
the rules by which each column becomes a presence (Eq. 4) and an intensity (§3.1), and why an AU a tool does not
measure stays unknown, never absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import polars as pl

from audfer.au.mapping import (
    INTENSITY_THRESHOLD,
    KINDS,
    PROBABILITY_THRESHOLD,
    AUAvailability,
    AUColumn,
    AUMapping,
    read_mapping_file,
)
from audfer.au.tools import detect_au_tool, get_au_tool, list_au_tools
from audfer.vocab import AUS

__all__ = [
    "KINDS",
    "AUColumn",
    "AUMapping",
    "AUAvailability",
    "MAPPINGS",
    "detect_source",
    "read_au_file",
    "read_mapping_file",
    "mapping_markdown",
    "tools_markdown",
    "PROBABILITY_THRESHOLD",
    "INTENSITY_THRESHOLD",
]


class _RegisteredMappings(Mapping[str, AUMapping]):
    """Every registered tool's own mapping (``audfer.au.tools``), read when asked: ``MAPPINGS["pyfeat"]``."""

    def _all(self) -> dict[str, AUMapping]:
        tools = [get_au_tool(n) for n in list_au_tools()]
        return {t.name: t.mapping for t in tools if t.mapping is not None and not t.needs_mapping}

    def __getitem__(self, name: str) -> AUMapping:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


#: The documented mapping of every registered tool with columns of its own (``table``'s come from the user's file).
MAPPINGS: Mapping[str, AUMapping] = _RegisteredMappings()


def __getattr__(name: str) -> object:
    if name == "SOURCES":  # the tools read here, from the registry (``audfer.au.tools.list_au_tools``)
        return tuple(list_au_tools())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def mapping_markdown() -> str:
    """The per-source AU table of ``docs/au-sources.md`` (a test keeps the two identical): every registered tool
    with columns of its own, in detection order."""
    names = tuple(MAPPINGS)
    avail = {n: MAPPINGS[n].availability() for n in names}
    lines = [
        "| AU | " + " | ".join(f"{n}: presence (Eq. 4) | {n}: intensity (§3.1)" for n in names) + " |",
        "|---|" + "---|---|" * len(names),
    ]
    for a in AUS:
        cells = []
        for n in names:
            h = avail[n].how[a]
            cells += [h["presence"] or "— (unknown)", h["intensity"] or "— (unknown)"]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tools_markdown() -> str:
    """The tool list of ``docs/au-sources.md`` (a test keeps the two identical): every registered tool, in detection
    order, with the file it reads and how it is recognised."""
    lines = ["| source (`--source`) | module | file | recognised by |", "|---|---|---|---|"]
    for n in list_au_tools():
        t = get_au_tool(n)
        how = f"its header: {t.header_hint}" if t.header_hint else "never from a header (name it)"
        lines.append(f"| `{n}` | `{type(t).__module__}` | {t.summary} | {how} |")
    return "\n".join(lines) + "\n"


def detect_source(path: str | os.PathLike, header: list[str] | None = None) -> str:
    """The registered tool (``audfer.au.tools``) a file's header belongs to, asked in ``priority`` order; an unknown
    header is an error listing what each tool expects."""
    return detect_au_tool(path, header).name


def read_au_file(
    path: str | os.PathLike,
    source: str = "auto",
    *,
    mapping: AUMapping | None = None,
    face_id: int | None = None,
    strict: bool = False,
) -> tuple[pl.DataFrame, str]:
    """One clip's per-frame AU file -> (canonical frames table, source name).

    ``source``: a registered tool (``audfer.au.tools.list_au_tools``), a user's ``package.module:attribute``, or
    ``auto`` (the header decides; with a ``mapping``, ``table``). The tool reads the file (``AUTool.read``; for mapped
    tools ``read_mapped``): a row whose AU cells are all empty (py-feat/LibreFace: no face found) is a failed frame
    (``success = 0``); an empty cell beside filled ones, text, inf, or a value outside its kind's range is an error
    naming file, row and column. Several faces in one frame: the tool's ``keep_one_face`` picks one (py-feat: the
    largest face box, ties: the higher ``FaceScore``), or the repeated frame is an error."""
    path = Path(path)
    if source == "auto":
        tool = get_au_tool("table") if mapping is not None else detect_au_tool(path)
    else:
        tool = get_au_tool(source)
    return tool.read(path, mapping=mapping, face_id=face_id, strict=strict), tool.name
