"""LibreFace video output (``libreface --input_path video --output_path x.csv``): ``au_<n>`` 0/1 detections of
BP4D's 12 AUs, ``au_<n>_intensity`` 0-5 regressions of DISFA's 12 AUs, a 0-based ``frame_idx`` and
``frame_time_in_ms`` (ihp-lab/LibreFace ``libreface/AU_Recognition/inference.py`` ``format_output_video`` and
``libreface/utils.py`` ``get_frames_from_video_*``)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from audfer.au.mapping import AUColumn, AUMapping
from audfer.au.tools.base import AUTool, register_au_tool

_DETECT = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23)  # + 24, not an OpenFace AU
_INTENSITY = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
_COLUMN = re.compile(r"^au_\d+(_intensity)?$")


class LibreFace(AUTool):
    """LibreFace video CSVs: BP4D detections (0/1) and DISFA intensities (0-5), 0-based frames."""

    name = "libreface"
    summary = "`libreface --input_path video --output_path x.csv`"
    header_hint = "LibreFace (au_1 ..., au_1_intensity ...)"
    expected = "LibreFace video output"
    priority = 30
    mapping = AUMapping(
        "libreface",
        tuple(AUColumn(f"au_{n}", f"AU{n:02d}", "presence") for n in _DETECT)
        + tuple(AUColumn(f"au_{n}_intensity", f"AU{n:02d}", "intensity") for n in _INTENSITY),
        frame="frame_idx",
        frame_base=0,
        timestamp="frame_time_in_ms",
        timestamp_scale=1e-3,
        ignored=("au_24",),
    )

    def detect(self, header: Sequence[str]) -> bool:
        return any(_COLUMN.match(c) for c in header)


register_au_tool(LibreFace)
