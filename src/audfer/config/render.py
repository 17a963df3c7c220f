"""The option reference rendered from the declarations: ``audfer config`` (commented YAML defaults) and
``docs/config.md`` (Markdown tables; a test keeps the file current)."""

from __future__ import annotations

import textwrap
from typing import Any

from audfer.config.schema import Config, declared, incidental_options

__all__ = ["defaults_yaml", "reference_markdown"]


def _yaml_value(v: Any) -> str:
    import yaml

    return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def defaults_yaml() -> str:
    """Every option with its default and meaning, as the commented YAML a config file is written in."""
    lines = [
        "# audfer experiment options: every key, its default and what it means (`audfer config`).",
        "# An experiment config sets only what differs (and may name a parent with `base: <config>`);",
        "# `audfer train CONFIG key=value ...` overrides any key on the command line (dotted key, YAML value).",
        "",
    ]
    section = None
    incidental = incidental_options()
    for dotted, default, doc, _ in declared():
        head, _, leaf = dotted.rpartition(".")
        if head and head != section:
            lines += ["", f"{head}:"]
            section = head
        indent = "  " if head else ""
        text = f"{indent}{leaf}: {_yaml_value(default)}"
        note = " (does not change the result)" if dotted in incidental else ""
        wrapped = textwrap.wrap(doc + note, 116 - max(len(text), 28)) or [""]
        lines.append(f"{text:<30s}# {wrapped[0]}")
        lines += [f"{'':<30s}# {w}" for w in wrapped[1:]]
    return "\n".join(lines) + "\n"


def reference_markdown() -> str:
    """``docs/config.md``: one table per section, rendered from the declarations."""
    lines = [
        "# Config reference",
        "",
        "Every option of an experiment config, rendered from `audfer/config/schema.py` (do not edit by hand: "
        "`audfer config --markdown > docs/config.md`). A config file sets what differs from these defaults and may "
        "name a parent with `base:`; `audfer train CONFIG key=value ...` overrides any key (dotted key, YAML value). "
        "A key that is not here, or a value that is not allowed, is an error naming the key, the value and where it "
        "came from.",
        "",
    ]
    section = None
    incidental = incidental_options()
    for dotted, default, doc, check in declared():
        head = dotted.rpartition(".")[0] or "(top level)"
        if head != section:
            blurb = (Config.SECTIONS[head].__doc__ or "").strip() if head in Config.SECTIONS else "Run identity."
            lines += ["", f"## {head}", "", blurb, "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
            section = head
        why = incidental.get(dotted)
        meaning = doc + (f". *Does not change the result:* {why}" if why else "")
        cells = [f"`{dotted}`", f"`{_yaml_value(default)}`", check.want, meaning]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
