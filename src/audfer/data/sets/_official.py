"""What the datasets read from official split files share: K's labels from a fold's training split (DFEW, MAFW,
FERV39k, the synthetic set)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audfer.data.registry import KnowledgeLabels, required


def split_file_knowledge(
    read: Callable[[Any, int, str], Any], what: str
) -> Callable[[Any, Any, list[str]], KnowledgeLabels]:
    """A knowledge adapter whose labels are ``read(root, fold, split)`` (``split``: train, or all with
    ``include_test``); ``what`` names the root in the error when ``--root`` is missing."""

    def knowledge(spec: Any, frames: Any, clips: list[str]) -> KnowledgeLabels:
        root = required(spec, "root", f"--root <{what} root>")
        return KnowledgeLabels(frames, read(root, spec.fold, "all" if spec.include_test else "train"))

    return knowledge
