"""Dataset adapters: a dataset root -> a clip index (id, label, frames) -> training samples.

``ClipIndex`` rows: ``clip_id`` (joins ``video_au_labels.csv``), ``label`` and ``path`` (a folder of
frame images or a video file). Adapters read the official split files (``audfer.data.annotations``)
or the generic lists other DFER projects use (``<dir> <num_frames> <label>`` / ``<dir> <label>``),
whose absolute prefixes belong to someone else's machine: only the last path component(s) are kept
and re-rooted under the given root.

``ClipDataset`` samples frames (``audfer.data.sampling``), decodes them (JPEGs by libjpeg-turbo, the rest and videos
by OpenCV), applies a clip
transform and returns a ``ClipSample`` ``(clip, label, au_targets, au_mask, clip_id)``; a clip without a row in the
AU labels, or with empty AU cells, is masked (reported once, never "all AUs present").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import polars as pl

from audfer.data.annotations import dfew_labels, ferv39k_labels, keyed, mafw_labels
from audfer.data.sampling import sample_indices
from audfer.errors import InputError, UnreadableFrameError
from audfer.hints import PathLike
from audfer.io import order_frames
from audfer.vocab import AUS, EXPRESSIONS, MAFW_CLASSES, expression_index

if TYPE_CHECKING:
    import torch

    from audfer.data.cache import ClipCache
    from audfer.data.transforms import Compose, Drawn

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def _locate(base: Path, stem: str) -> Path | None:
    """A clip is a frame folder ``base/stem`` or a video ``base/stem.<ext>``."""
    if (base / stem).is_dir():
        return base / stem
    for ext in VIDEO_SUFFIXES:
        if (base / f"{stem}{ext}").is_file():
            return base / f"{stem}{ext}"
    return None


def _index(rows: list[tuple[str, int, Path | None, str]], on_missing: str) -> "ClipIndex":
    missing = [(cid, where) for cid, _, path, where in rows if path is None]
    if missing and on_missing == "raise":
        cid, where = missing[0]
        raise InputError(
            f"{where}: clip {cid}: no frame folder or video found"
            + (f" ({len(missing)} clips missing in all)" if len(missing) > 1 else "")
        )
    kept = [(c, l, str(p)) for c, l, p, _ in rows if p is not None]
    table = pl.DataFrame(
        {
            "clip_id": [r[0] for r in kept],
            "label": pl.Series([r[1] for r in kept], dtype=pl.Int8),
            "path": [r[2] for r in kept],
        },
        schema={"clip_id": pl.String, "label": pl.Int8, "path": pl.String},
    )
    return ClipIndex(table, skipped=[c for c, _ in missing])


@dataclass
class ClipIndex:
    table: pl.DataFrame  #: clip_id, label, path
    skipped: list[str]  #: clips listed but not found (on_missing="skip")

    def __len__(self) -> int:
        return self.table.height


def dfew_index(
    root: PathLike, fold: int = 1, split: str = "train", *, frames: str = "clip_224x224", on_missing: str = "raise"
) -> ClipIndex:
    """DFEW: labels from ``EmoLabel_DataSplit``, frames in ``Clip/<frames>/<id>/`` (or ``clip_224x224_16f``)."""
    root = Path(root)
    base = root / "Clip" / frames
    labels = dfew_labels(root, fold, split)
    where = f"{base}"
    return _index([(c, l, _locate(base, c), where) for c, l in labels.iter_rows()], on_missing)


def ferv39k_index(root: PathLike, split: str = "train", *, on_missing: str = "raise") -> ClipIndex:
    """FERV39k: frames under ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<id>/``; clip id ``Scene_Emotion_ID``."""
    root = Path(root)
    base = root / "2_ClipsforFaceCrop"
    rows = []
    for cid, label in ferv39k_labels(root, split).iter_rows():
        scene, emotion, num = cid.split("_", 2)
        rows.append((cid, label, _locate(base / scene / emotion, num), str(base)))
    return _index(rows, on_missing)


def mafw_index(
    root: PathLike,
    fold: int = 1,
    split: str = "train",
    *,
    classes: int = 7,
    frames: str = "data/frames",
    on_missing: str = "raise",
) -> ClipIndex:
    """MAFW: frames in ``data/frames/<id>/`` or videos in ``data/clips/<id>.mp4``; 7-class view or 11 classes."""
    root = Path(root)
    labels = mafw_labels(root, fold, split, classes=classes)
    rows = []
    for cid, label in labels.iter_rows():
        path = _locate(root / frames, cid) or _locate(root / "data" / "clips", cid)
        rows.append((cid, label, path, str(root / frames)))
    return _index(rows, on_missing)


LIST_PRESETS = ("dfew7", "mafw11")


def list_label_map(class_order: str | Sequence[str] | None, num_classes: int = 7) -> dict[int, int | None]:
    """What a list file's label ids mean: ``class_order`` is a preset (``dfew7``: audfer's order Happy, Sad,
    Neutral, Angry, Surprise, Disgust, Fear; ``mafw11``: MAFW's anger, disgust, fear, happiness, neutral,
    sadness, surprise, contempt, anxiety, helplessness, disappointment) or the class names in id order.
    Returns file id -> audfer label (None: a class outside the ``num_classes`` view, left out)."""

    if class_order is None:
        raise InputError(
            "config: data.class_order is not set: a list file's label ids have no meaning of their own; "
            f"give the class names in id order or a preset ({', '.join(LIST_PRESETS)})"
        )
    if isinstance(class_order, str):
        if class_order not in LIST_PRESETS:
            raise InputError(
                f"config: data.class_order = {class_order!r}; expected a list of class names or one of "
                f"{', '.join(LIST_PRESETS)}"
            )
        names = list(EXPRESSIONS) if class_order == "dfew7" else list(MAFW_CLASSES)
    else:
        names = [str(n) for n in class_order]
    mapping: dict[int, int | None] = {}
    for i, name in enumerate(names):
        low = name.strip().lower()
        if num_classes == 11:
            if low not in MAFW_CLASSES:
                raise InputError(
                    f"config: data.class_order[{i}] = {name!r}; with 11 classes expected MAFW's names "
                    f"({', '.join(MAFW_CLASSES)})"
                )
            mapping[i] = MAFW_CLASSES.index(low)
        elif low in MAFW_CLASSES[7:]:
            mapping[i] = None
        else:
            mapping[i] = expression_index(name, where=f"config: data.class_order[{i}]")
        earlier = [j for j in range(i) if mapping[i] is not None and mapping[j] == mapping[i]]
        if earlier:  # two ids for one class (also through aliases: happy and happiness)
            raise InputError(
                f"config: data.class_order[{earlier[0]}] = {names[earlier[0]]!r} and data.class_order[{i}] = "
                f"{name!r} name the same class; expected each class once"
            )
    return mapping


def list_index(
    list_file: PathLike,
    root: PathLike,
    *,
    num_classes: int = 7,
    class_order: str | Sequence[str] | None = None,
    keep_parts: int = 1,
    on_missing: str = "raise",
) -> ClipIndex:
    """Generic ``<dir> <num_frames> <label>`` or ``<dir> <label>`` lists (Former-DFER, MAE-DFER).

    The listed directory's last ``keep_parts`` components are re-rooted under ``root``. Label ids are read
    through ``class_order`` (``list_label_map``): never assumed to be in audfer's order; ids of classes
    outside the view (MAFW's contempt ... with 7 classes) are left out, an id the order does not cover is an
    error."""
    list_file, root = Path(list_file), Path(root)
    if not list_file.is_file():
        raise InputError(f"{list_file}: list file not found")
    mapping = list_label_map(class_order, num_classes)
    rows = []
    for row, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split()
        if len(cells) not in (2, 3) or not cells[-1].isdigit() or (len(cells) == 3 and not cells[1].isdigit()):
            raise InputError(
                f"{list_file}: row {row}: {line!r}; expected '<dir> <num_frames> <label>' or '<dir> <label>'"
            )
        raw = int(cells[-1])
        if raw not in mapping:
            raise InputError(
                f"{list_file}: row {row}: label {raw} is not covered by data.class_order ({len(mapping)} classes)"
            )
        label = mapping[raw]
        if label is None:
            continue
        parts = Path(cells[0].replace("\\", "/")).parts[-keep_parts:]
        rel = Path(*parts)
        rows.append((parts[-1], label, _locate(root / rel.parent, rel.name), f"{list_file}: row {row}"))
    return _index(rows, on_missing)


# ------------------------------------------------------------------------------- decoding


def frame_paths(folder: Path, order: str = "numeric") -> list[Path]:
    """The frame images of a clip folder in temporal order (``order_frames``). ``order="listing"``: in the order
    the file system lists them, as an unsorted ``glob`` gives them (only to reproduce the Former-DFER AU copy's
    bug, ``data.reproduce_bugs=[unsorted-frames]``; that order depends on the file system)."""
    # hidden files are never frames (macOS's ``._00001.jpg`` resource forks, ``.DS_Store``); nor are stray non-images
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not files:
        raise InputError(f"{folder}: no frame images ({', '.join(IMAGE_SUFFIXES)})")
    return files if order == "listing" else order_frames(files, folder)


JPEG_SUFFIXES = (".jpg", ".jpeg")


def _reduced_factor(shape: tuple[int, int], min_size: int | None) -> int:
    """The largest JPEG DCT down-scaling (1/2, 1/4, 1/8) that keeps the short side >= ``min_size`` (1: none)."""
    if not min_size:
        return 1
    return next((f for f in (8, 4, 2) if min(shape) // f >= min_size), 1)


def _reduced_flag(factor: int) -> int:
    """OpenCV's ``imread`` flag for a 1/``factor`` decode (a JPEG by DCT scaling, other formats resized)."""
    import cv2

    return {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}.get(
        factor, cv2.IMREAD_REDUCED_COLOR_8
    )


def _jpeg_segments(data: bytes):
    """``(marker, payload start, payload end)`` of a JPEG's header segments, up to and including the first start of
    scan (SOS, 0xDA); stops quietly at anything that is not a well-formed segment (ITU-T T.81 §B.1.1.4)."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        yield marker, i + 4, end
        if marker == 0xDA:
            return
        i = end


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (0x0112) of a JPEG's APP1 segment, 1 (upright) if it has none. OpenCV's ``imread``
    applies it; such frames are left to OpenCV so that their pixels stay what they were (EXIF 2.3 §4.6.4)."""
    for marker, start, end in _jpeg_segments(data):
        if marker != 0xE1 or data[start : start + 6] != b"Exif\0\0":
            continue
        tiff = data[start + 6 : end]
        order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
        ifd = int.from_bytes(tiff[4:8], order)
        for k in range(int.from_bytes(tiff[ifd : ifd + 2], order)):
            entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            if len(entry) == 12 and int.from_bytes(entry[:2], order) == 0x0112:
                return int.from_bytes(entry[8:10], order)
    return 1


def _jpeg_cut_off(data: bytes) -> bool:
    """True when a JPEG has no end-of-image marker (0xFFD9) after its first scan starts: the file was cut off
    (entropy-coded data never holds 0xFFD9, T.81 §B.1.1.5, so an EOI of an EXIF thumbnail does not count)."""
    sos = next((end for marker, _, end in _jpeg_segments(data) if marker == 0xDA), None)
    return sos is None or data.find(b"\xff\xd9", sos) < 0


def _simplejpeg():
    try:
        import simplejpeg
    except ImportError:  # a dependency, but its absence only costs speed: OpenCV decodes every frame
        return None
    return simplejpeg


def _decode_jpeg(path: Path, data: bytes, factor: int, into: np.ndarray | None = None) -> np.ndarray | None:
    """A JPEG frame decoded by libjpeg-turbo's TurboJPEG API (``simplejpeg``) to RGB, at 1/``factor`` scale by DCT
    scaling; None where OpenCV decodes it as before (not a JPEG TurboJPEG reads, CMYK/YCCK, an EXIF rotation).

    The pixels equal ``cv2.imread`` + BGR->RGB: both are libjpeg-turbo with its defaults (islow IDCT, fancy
    upsampling), same output size (ceil(side / factor)); ``tests/test_jpeg_decoding.py``. A JPEG libjpeg warns about
    (cut off, corrupt entropy data), which OpenCV would pad or patch silently, is an ``UnreadableFrameError``.
    ``into``: a C-contiguous ``(H, W, 3)`` uint8 array to decode into when the frame has that size (no allocation,
    no later copy into the clip)."""
    sj = _simplejpeg()
    if sj is None:
        return None
    try:
        h, w, colorspace, _ = sj.decode_jpeg_header(data)
    except ValueError:
        return None
    # CMYK / YCCK: simplejpeg converts them otherwise than OpenCV (Adobe's inverted CMYK)
    if colorspace not in ("YCbCr", "Gray", "RGB") or _exif_orientation(data) != 1:
        return None
    # exactly 1/factor: the smallest TurboJPEG scale whose height is >= ceil(h / factor) and factor >= ``factor``
    scale = {"min_height": -(-h // factor), "min_factor": factor} if factor != 1 else {}
    fits = into is not None and into.shape == (-(-h // factor), -(-w // factor), 3)
    try:
        return sj.decode_jpeg(data, "RGB", buffer=into if fits else None, **scale)
    except ValueError as exc:
        try:  # fails again without strict: TurboJPEG cannot decode it at all, so OpenCV decides as before
            sj.decode_jpeg(data, "RGB", strict=False, **scale)
        except ValueError:
            return None
        raise UnreadableFrameError(path, f"cut off or corrupt JPEG ({exc})") from None


def _jpeg_size(path: Path) -> tuple[int, int] | None:
    """A JPEG's (height, width) from its header alone, None if TurboJPEG cannot read it."""
    sj = _simplejpeg()
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        return None if sj is None else sj.decode_jpeg_header(head)[:2]
    except (OSError, ValueError):
        return None


def _read_image(path: Path, factor: int, into: np.ndarray | None = None) -> np.ndarray:
    """One frame image, RGB uint8, at 1/``factor`` scale (``_reduced_flag``): JPEGs through ``_decode_jpeg`` (into
    ``into`` where it fits), everything else (and what it leaves) through ``cv2.imread`` as before; a cut-off JPEG is
    an error either way."""
    import cv2

    jpeg = path.suffix.lower() in JPEG_SUFFIXES
    if jpeg:
        try:
            data = path.read_bytes()
        except OSError:
            raise UnreadableFrameError(path) from None
        rgb = _decode_jpeg(path, data, factor, into)
        if rgb is not None:
            return rgb
    img = cv2.imread(str(path), _reduced_flag(factor))
    if img is None:
        raise UnreadableFrameError(path)
    if jpeg and data[:2] == b"\xff\xd8" and _jpeg_cut_off(data):
        raise UnreadableFrameError(path, "cut off JPEG (no end-of-image marker)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_frames(
    path: str | Path,
    indices: np.ndarray | list[int] | None = None,
    *,
    min_size: int | None = None,
    files: list[Path] | None = None,
) -> np.ndarray:
    """Decode frames (RGB uint8, ``(T, H, W, 3)``) from a frame folder or a video file; ``indices``
    selects frames (in the sorted folder / in decoding order).

    ``min_size``: the frames will be resized to at least this short side anyway, so JPEGs at two or
    more times that size are decoded directly at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, several
    times faster than a full decode followed by a resize); the first frame's size sets the scale of the clip.
    ``files``: the folder's frame list, if known. JPEGs are decoded by libjpeg-turbo directly (``_decode_jpeg``,
    OpenCV's pixels), other images by OpenCV; a cut-off or corrupt JPEG is an ``UnreadableFrameError``.
    """
    path = Path(path)
    if path.is_dir():
        files = frame_paths(path) if files is None else files
        chosen = files if indices is None else [files[i] for i in indices]
        out: np.ndarray | None = None  # the clip, allocated at the first frame's size; JPEGs are decoded into it
        factor = 1
        for k, f in enumerate(chosen):
            size = _jpeg_size(f) if k == 0 and min_size and f.suffix.lower() in JPEG_SUFFIXES else None
            if size is not None:  # the scale from the header: the first frame is decoded once
                factor = _reduced_factor(size, min_size)
            img = _read_image(f, factor, None if out is None else out[k])
            if k == 0 and min_size and size is None:
                factor = _reduced_factor(img.shape[:2], min_size)
                if factor != 1 and f.suffix.lower() in JPEG_SUFFIXES:
                    img = _read_image(f, factor)
                else:
                    factor = 1
            if out is None:
                out = np.empty((len(chosen), *img.shape), np.uint8)
            elif img.shape[:2] != out.shape[1:3]:
                raise InputError(
                    f"{f}: frame of {img.shape[1]}x{img.shape[0]} pixels, but {chosen[0].name} is "
                    f"{out.shape[2]}x{out.shape[1]}; the frames of one clip must share one size"
                )
            if not np.may_share_memory(img, out):  # decoded elsewhere (OpenCV, the first frame): copied in
                out[k] = img
        if out is None:
            raise InputError(f"{path}: no frame asked for")
        return out
    return _read_video(path, None if indices is None else [int(i) for i in indices])


def _read_video(path: Path, indices: list[int] | None) -> np.ndarray:
    """A video's frames (all, or ``indices`` in that order, repeats allowed), decoded in one pass that keeps only
    the frames asked for: memory follows the clip asked for, not the video's length."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open video")
    wanted = None if indices is None else set(indices)
    last = None if indices is None else max(indices, default=-1)
    kept: dict[int, np.ndarray] = {}
    frames: list[np.ndarray] = []
    n = 0
    try:
        while last is None or n <= last:
            if wanted is not None and n not in wanted:
                if not cap.grab():  # skipped frames are not converted or kept
                    break
                n += 1
                continue
            ok, img = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            if wanted is None:
                frames.append(rgb)
            else:
                kept[n] = rgb
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise InputError(f"{path}: no decodable frame")
    if indices is not None:
        missing = sorted(set(indices) - set(kept))
        if missing:
            raise InputError(f"{path}: frame {missing[0]} asked for, but only {n} frame(s) decode (cut off?)")
        frames = [kept[i] for i in indices]
    return np.stack(frames)


UnreadableFrame = UnreadableFrameError  #: the name this module has always exported

#: Videos longer than this are never cached whole (the cache holds every frame of a clip): their sampled frames are
#: decoded on each read, so memory stays bounded by the clip asked for (an hour of video is 90,000 frames).
CACHE_MAX_VIDEO_FRAMES = 2048


def count_frames(path: str | Path) -> int:
    """Frames of a clip: image files in a frame folder, or the frame count a video declares (decoded and counted
    when it declares none)."""
    path = Path(path)
    if path.is_dir():
        return len(frame_paths(path))
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if n <= 0:  # declares none: count by demuxing, holding no frame
        n = 0
        while cap.grab():
            n += 1
    cap.release()
    if n <= 0:
        raise InputError(f"{path}: no decodable frame")
    return n


def au_targets_for(index: ClipIndex, au_labels: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, 18) float targets, (N, 18) bool mask (known labels: an AU the clip's tool lacks, or a clip without
    AU labels, is False) and the clip ids with no known AU label at all, in index order."""
    n = len(index)
    if au_labels is None:
        return np.zeros((n, len(AUS)), np.float32), np.zeros((n, len(AUS)), bool), index.table["clip_id"].to_list()
    joined = keyed(index.table.select("clip_id")).join(
        keyed(au_labels.select("clip_id", *AUS)), on="clip_id", how="left", maintain_order="left"
    )
    values = joined.select(AUS).to_numpy().astype(np.float32)
    mask = ~np.isnan(values)
    missing = index.table.filter(pl.Series(~mask.any(axis=1)))["clip_id"].to_list()
    return np.nan_to_num(values, nan=0.0), mask, missing


@dataclass(frozen=True)
class ClipOptions:
    """How a ``ClipDataset`` reads its clips (each option is also a keyword of ``ClipDataset``).

    ``num_frames`` frames per clip, sampled by ``sampling`` (one of ``audfer.data.sampling``, with
    ``sampling_kwargs``); ``train``: random sampling and augmentation, seeded by ``seed`` + epoch + index, so a run
    is reproducible whatever the worker layout. ``cache``: a ``ClipCache``; the first read of a clip decodes all its
    frames once at the cache's resolution, later epochs slice the stored array. ``decode_size``: without a cache,
    JPEGs at twice this size or more are decoded at reduced scale (``data.decode=reduced``; None: as stored).
    ``on_bad_frame``: ``"raise"`` (an error naming the file) or ``"skip"``: the frame is dropped from its clip,
    listed in a warning, and the clip resampled. ``frame_order``: ``numeric`` (always, but to reproduce a bug:
    ``listing``, see ``frame_paths``). ``batch_normalize``: a final ``Normalize`` of the transform runs in the
    loader's collate on the stacked batch; ``augment_on="device"`` (training): the tail of the transform from its
    first per-pixel random step runs on the training device (both: ``Compose.split_tail``)."""

    num_frames: int = 16
    sampling: str = "uniform"
    train: bool = False
    seed: int = 0
    sampling_kwargs: dict | None = None
    cache: ClipCache | None = None
    decode_size: int | None = None
    on_bad_frame: str = "raise"
    batch_normalize: bool = False
    frame_order: str = "numeric"
    augment_on: str = "cpu"

    def __post_init__(self) -> None:
        if self.on_bad_frame not in ("raise", "skip"):
            raise InputError(f"on_bad_frame must be 'raise' or 'skip', got {self.on_bad_frame!r}")
        if self.frame_order not in ("numeric", "listing"):
            raise InputError(f"frame_order must be 'numeric' or 'listing', got {self.frame_order!r}")
        if self.augment_on not in ("cpu", "device"):
            raise InputError(f"augment_on must be 'cpu' or 'device', got {self.augment_on!r}")

    @property
    def tail_on(self) -> str | None:
        """Where the deferred tail of the transform runs (``audfer.data.transforms.deferral``): ``"device"``,
        ``"loader"`` or None (nothing deferred)."""
        if self.augment_on == "device" and self.train:
            return "device"
        return "loader" if self.batch_normalize else None


class ClipSample(NamedTuple):
    """One item of a ``ClipDataset`` (a tuple: ``clip, label, au, mask, clip_id = sample`` still works).

    ``clip``: float ``(T, 3, S, S)``; the uint8 clip when the transform's tail is deferred to the loader's collate;
    a ``Drawn`` (uint8 clip, the tail's drawn parameters) when it is deferred to the training device.
    ``au_targets`` ``(18,)`` float and ``au_mask`` ``(18,)`` bool: the clip's video AU labels (Eq. 4) and which of
    them are known."""

    clip: torch.Tensor | Drawn
    label: int
    au_targets: torch.Tensor
    au_mask: torch.Tensor
    clip_id: str


class ClipDataset:
    """A map-style dataset of clips for ``torch.utils.data.DataLoader``: item ``i`` is a ``ClipSample``.

    ``options``: a ``ClipOptions`` (how clips are sampled, decoded, augmented); its fields may also be given as
    keywords, which override it (``ClipDataset(index, transform, num_frames=8, train=True)``). ``au_labels``: the
    video AU labels; a clip without a row, or with empty AU cells, is masked (reported once).
    """

    def __init__(
        self,
        index: ClipIndex,
        transform,
        options: ClipOptions | None = None,
        *,
        au_labels: pl.DataFrame | None = None,
        **kwargs: Any,
    ) -> None:
        options = replace(options or ClipOptions(), **kwargs)
        self.options = options
        self.frame_order = options.frame_order
        #: The deferred tail of ``transform`` (``Compose.split_tail``) and where it runs (``options.tail_on``):
        #: ``"loader"``, a final ``Normalize`` that the collate runs once on the stacked uint8 batch (items are then
        #: uint8 clips); ``"device"``, the steps from the first per-pixel random one, only drawn here (items carry a
        #: ``Drawn``) and run on the training device. None: nothing deferred.
        self.tail: Compose | None = None
        self.tail_on: str | None = None
        on = options.tail_on
        if on is not None and hasattr(transform, "split_tail"):
            head, tail = transform.split_tail(on)
            if tail.steps:
                transform, self.tail, self.tail_on = head, tail, on
        self.index, self.transform = index, transform
        self.num_frames, self.sampling = options.num_frames, options.sampling
        self.train, self.seed, self.epoch = options.train, options.seed, 0
        self.sampling_kwargs = options.sampling_kwargs or {}
        self.cache, self.decode_size, self.on_bad_frame = options.cache, options.decode_size, options.on_bad_frame
        self.paths = index.table["path"].to_list()
        self.ids = index.table["clip_id"].to_list()
        self.labels = index.table["label"].to_numpy().astype(np.int64)
        self.au_targets, self.au_mask, missing = au_targets_for(index, au_labels)
        if au_labels is not None and missing:
            warnings.warn(
                f"{len(missing)} of {len(index)} clips have no AU labels and are masked in the AU loss "
                f"(first: {', '.join(missing[:5])})",
                UserWarning,
                stacklevel=2,
            )
        self._lengths: dict[int, int] = {}
        self._files: dict[int, list[Path]] = {}
        self.skipped_frames: list[str] = []

    @property
    def normalize(self) -> Compose | None:
        """The tail the loader's collate runs on the stacked batch (a final ``Normalize``), or None."""
        return self.tail if self.tail_on == "loader" else None

    @normalize.setter
    def normalize(self, value: Compose | None) -> None:
        """None: the collate leaves the stacked uint8 clips as they are; else the tail it runs."""
        if value is not None:
            self.tail, self.tail_on = value, "loader"
        elif self.tail_on == "loader":
            self.tail = self.tail_on = None

    @property
    def device_steps(self) -> Compose | None:
        """The tail the training device runs (``data.augment_on=device``), or None."""
        return self.tail if self.tail_on == "device" else None

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next draws belong to: each clip's random sampling and augmentation are seeded by (seed, epoch, index), so they do not depend on worker count or order."""
        self.epoch = epoch

    def _decode(self, i: int, rng) -> np.ndarray:

        path = Path(self.paths[i])
        if self.cache is not None and not path.is_dir() and i not in self._lengths:
            self._lengths[i] = count_frames(path)
        if self.cache is not None and (path.is_dir() or self._lengths[i] <= CACHE_MAX_VIDEO_FRAMES):
            frames = self.cache.get(self.paths[i], on_bad_frame=self.on_bad_frame)
            idx = sample_indices(self.sampling, len(frames), self.num_frames, rng, **self.sampling_kwargs)
            return np.ascontiguousarray(frames[idx])
        if not path.is_dir():
            if i not in self._lengths:
                self._lengths[i] = count_frames(path)
            idx = sample_indices(self.sampling, self._lengths[i], self.num_frames, rng, **self.sampling_kwargs)
            return read_frames(path, idx)
        if i not in self._files:
            self._files[i] = frame_paths(path, self.frame_order)
        while True:
            files = self._files[i]
            if not files:
                raise InputError(f"{path}: no readable frame image left")
            idx = sample_indices(self.sampling, len(files), self.num_frames, rng, **self.sampling_kwargs)
            try:
                return read_frames(path, idx, min_size=self.decode_size, files=files)
            except UnreadableFrame as bad:
                if self.on_bad_frame == "raise":
                    raise
                warnings.warn(f"skipped {bad.path}: {bad.reason}", UserWarning, stacklevel=2)
                self.skipped_frames.append(str(bad.path))
                self._files[i] = [f for f in files if f != bad.path]

    def __getitem__(self, item: int | tuple[int, int]) -> ClipSample:
        """``item``: an index (augmented with ``set_epoch``'s epoch) or an ``(epoch, index)`` pair, which is
        what the training sampler yields so that worker processes see the epoch too."""
        import torch

        epoch, i = (int(item[0]), int(item[1])) if isinstance(item, (tuple, list)) else (self.epoch, int(item))
        rng = np.random.default_rng([self.seed, epoch, i]) if self.train else None
        frames = torch.from_numpy(self._decode(i, rng)).permute(
            0, 3, 1, 2
        )  # channels-last view: what the resize kernel wants
        clip = self.transform(frames, rng)
        if self.tail is not None and self.tail_on == "device" and rng is not None:
            from audfer.data.transforms import Drawn

            clip = Drawn(clip, self.tail.draw_params(tuple(clip.shape), rng))
        return ClipSample(
            clip,
            int(self.labels[i]),
            torch.from_numpy(self.au_targets[i]),
            torch.from_numpy(self.au_mask[i]),
            self.ids[i],
        )
