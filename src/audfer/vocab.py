"""Vocabularies: Action Units in OpenFace 2.2 order and the 7 expression classes.

The AU order is OpenFace 2.2's column order (paper §3.1, Eq. 1-2). The expression order
is the label order used by DFEW, FERV39k and our 7-class MAFW view (0 Happy ... 6 Fear).
"""

from __future__ import annotations

import re

from audfer.errors import AudferError

#: The 18 AUs OpenFace 2.2 detects as presence (``AUxx_c``), in OpenFace's column order.
AUS: tuple[str, ...] = (
    "AU01",
    "AU02",
    "AU04",
    "AU05",
    "AU06",
    "AU07",
    "AU09",
    "AU10",
    "AU12",
    "AU14",
    "AU15",
    "AU17",
    "AU20",
    "AU23",
    "AU25",
    "AU26",
    "AU28",
    "AU45",
)
#: The 17 AUs OpenFace 2.2 regresses as intensity (``AUxx_r``): no AU28 intensity model.
AUS_INTENSITY: tuple[str, ...] = tuple(a for a in AUS if a != "AU28")
#: Expression classes in label order (DFEW's files use 1..7 in this order).
EXPRESSIONS: tuple[str, ...] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")

INTENSITY_COLUMNS: tuple[str, ...] = tuple(f"{a}_r" for a in AUS_INTENSITY)
PRESENCE_COLUMNS: tuple[str, ...] = tuple(f"{a}_c" for a in AUS)

#: Names other datasets and tools use for our seven classes (lower case).
_ALIASES: dict[str, int] = {}
for _i, _names in enumerate(
    (
        ("happy", "happiness", "hap", "joy", "happily"),
        ("sad", "sadness", "sa", "sadly"),
        ("neutral", "neu", "neutrality"),
        ("angry", "anger", "ang", "an"),
        ("surprise", "surprised", "sur", "su"),
        ("disgust", "disgusted", "dis", "di"),
        ("fear", "fearful", "fea", "afraid", "fe"),
    )
):
    for _n in _names:
        _ALIASES[_n] = _i


def expression_index(value: object, *, where: str = "label") -> int:
    """Map a label given as an index 0..6 or a class name (any common spelling) to its index."""
    if isinstance(value, bool):
        raise AudferError(f"{where}: expected an expression index 0..6 or a name, got {value!r}")
    if isinstance(value, int):
        idx = value
    else:
        text = str(value).strip().strip('"').strip()
        if re.fullmatch(r"-?\d+(\.0+)?", text):  # 3, or 3.0 as a spreadsheet saves it
            idx = int(float(text))
        elif text.lower() in _ALIASES:
            return _ALIASES[text.lower()]
        else:
            raise AudferError(f"{where}: unknown expression {text!r}; expected 0..6 or one of {', '.join(EXPRESSIONS)}")
    if not 0 <= idx < len(EXPRESSIONS):
        raise AudferError(f"{where}: expression index {idx} out of range; expected 0..6 ({', '.join(EXPRESSIONS)})")
    return idx


#: MAFW's 11 classes in its label order (its own files' names).
MAFW_CLASSES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)
#: MAFW 11-class index -> our 7-class label (None: no class of ours). The 7-class view is audfer's own definition
#: (the paper publishes none): the first seven map by name, contempt ... disappointment are left out.
MAFW_TO_7: dict[int, int | None] = {i: (expression_index(n) if i < 7 else None) for i, n in enumerate(MAFW_CLASSES)}

#: The positive-class weight strategies of the AU loss (Eq. 6-8): one row for all, one per expression, minor classes.
STRATEGIES = ("global", "distinct", "minor")
