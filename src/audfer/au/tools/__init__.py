"""The AU tools audfer reads, as self-registering plug-ins (one module per tool, like ``audfer.models``).

A tool is an ``AUTool``: its name, how its header is recognised (``detect``), its column mapping onto OpenFace 2.2's
18 AUs (an ``audfer.au.sources.AUMapping``) and its quirks as hooks (``frame_numbers``, ``keep_one_face``; ``read``
for a tool with a reader of its own). Each built-in tool registers itself at the end of its own module
(``openface``, ``pyfeat``, ``libreface``, ``table``); everything that names tools reads this registry: ``auto``
detection (by ``priority``), the "expected" hint of an unrecognised header, the ``--source`` choices, the
``data.au_source`` check and the tool list of ``docs/au-sources.md`` (a test keeps it complete).

A tool of your own (docs/au-sources.md, "Adding a tool"): subclass ``AUTool`` in any module and call
``register_au_tool`` there; name it as ``package.module:attribute`` (``--source``, ``data.au_source``), the form a
config names a model of your own with (``model.name``, ``audfer.models.custom``): the module is imported, and a
config stored in a file someone else wrote that names one is refused by the same gate (``audfer.trust``).
"""

from audfer.au.tools import libreface, openface, pyfeat, table  # noqa: F401  (each registers itself)
from audfer.au.tools.base import (
    AUTool,
    SourceChoices,
    detect_au_tool,
    get_au_tool,
    import_tool_modules,
    is_au_tool_name,
    list_au_tools,
    register_au_tool,
    tool_modules,
)

__all__ = [
    "AUTool",
    "SourceChoices",
    "detect_au_tool",
    "get_au_tool",
    "import_tool_modules",
    "is_au_tool_name",
    "list_au_tools",
    "register_au_tool",
    "tool_modules",
]
