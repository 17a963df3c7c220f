"""Any per-frame table, one row per frame, with a mapping file naming each AU column and what it measures
(``audfer.au.sources.read_mapping_file``; ``--source table --mapping m.yaml``, ``data.au_mapping``). Never detected
from a header: the mapping says which file it is."""

from __future__ import annotations

from audfer.au.tools.base import AUTool, register_au_tool


class Table(AUTool):
    """Any per-frame CSV, its columns named by the user's mapping file."""

    name = "table"
    summary = "any CSV, one row per frame, with a mapping file (below)"
    expected = "the mapping"
    priority = 1000
    needs_mapping = True


register_au_tool(Table)
