"""The split functions of the built-in datasets under their old names; each dataset now lives in its own module of
``audfer.data.sets`` with its whole declaration (``audfer.data.registry``)."""

from __future__ import annotations

from audfer.data.sets.dfew import split as dfew_split
from audfer.data.sets.ferv39k import split as ferv39k_split
from audfer.data.sets.lists import split as list_split
from audfer.data.sets.mafw import split as mafw_split
from audfer.data.sets.synthetic import split as synthetic_split

__all__ = ["dfew_split", "synthetic_split", "ferv39k_split", "mafw_split", "list_split"]
