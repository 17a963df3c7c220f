"""The built-in synthetic dataset (``audfer synth``): rendered face videos driven by Action Units.

Every clip is one person (``renderer.Identity``) showing one expression: its active AUs are drawn
from an expression-AU prior (default: the paper's matrix, Fig. 4) with person-to-person variation and
onset-apex-offset timing (``aus``), rendered frame by frame, then moved (head motion), lit
and noised (``renderer.camera``). Class frequencies follow DFEW's 5-fold split files; a share of
the expression labels is deliberately wrong (crowd labelling), while the AU ground truth is exact.

Written in DFEW's layout so the real adapters and the OpenFace pipeline run on it unchanged::

    OUT/Clip/clip_<S>x<S>/<id>/00001.jpg ...        frames (RGB JPEG)
    OUT/EmoLabel_DataSplit/{train,test}(single-labeled)/set_<k>.csv   video_name,label (1..7)
    OUT/OpenFace/<id>.csv                            OpenFace 2.2 output with OpenFace-like artefacts
    OUT/synth_meta.csv                               clip_id, identity, fold, true_label, label, exact
                                                     video AU labels (Eq. 4 on the true presences)
    OUT/clip_labels.csv                              clip_id,label (observed, class names)
    OUT/synth.json                                   the generation parameters

Folds are identity-disjoint (a person's clips are all in one test fold). Each clip's randomness comes
from ``(seed, clip index)`` only, so the output is byte-identical for a seed whatever the number of
worker processes. The whole tree is built in a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audfer.data.datasets import read_frames
from audfer.errors import ConfigError
from audfer.files import check_output_dir, replace_output_dir
from audfer.hints import Log
from audfer.io import write_csv
from audfer.method.knowledge import paper_knowledge
from audfer.progress import bar
from audfer.synth.aus import ClipAUs, noisy_labels, openface_frames, sample_clip_aus, sample_labels
from audfer.synth.openface_writer import render_openface_csv
from audfer.synth.renderer import camera, head_motion, random_identity, render_frame
from audfer.vocab import AUS, EXPRESSIONS

FOLDS = 5


@dataclass(frozen=True)
class SynthConfig:
    clips: int = 2000
    seed: int = 0
    size: int = 112  #: frame side in pixels
    frames: int = 16  #: frames per clip
    label_noise: float = 0.1  #: share of expression labels replaced by a wrong class
    clips_per_identity: int = 6
    noise: float = 4.0  #: sensor noise (std of the 8-bit values, scaled per clip by U(0.5, 1.5))
    motion: float = 0.4  #: head-motion amplitude (1: up to ~7 % shifts and ~10 degree turns; 0: a still head)
    au_gain: float = 1.5  #: AU movement exaggeration of the renderer (1: the proportions of renderer)
    jpeg_quality: int = 92

    def check(self) -> None:
        """``ConfigError`` naming the first setting out of range (clips, size, frames, ...)."""
        if self.clips < FOLDS:
            raise ConfigError(f"--clips must be at least {FOLDS} (one per fold), got {self.clips}")
        if not 32 <= self.size <= 512:
            raise ConfigError(f"--size must be within 32..512 pixels, got {self.size}")
        if not 2 <= self.frames <= 512:
            raise ConfigError(f"--frames must be within 2..512, got {self.frames}")
        if not 0 <= self.label_noise < 1:
            raise ConfigError(f"--label-noise must be in [0, 1), got {self.label_noise}")

    def frames_dir(self) -> str:
        """The frame folder under ``Clip/`` (``clip_<size>x<size>``, as DFEW names its own)."""
        return f"clip_{self.size}x{self.size}"


def _plan(cfg: SynthConfig) -> pl.DataFrame:
    """Labels, identities and folds of every clip (the cheap, global part of the generation)."""
    rng = np.random.default_rng([cfg.seed, 0])
    true = sample_labels(rng, cfg.clips)
    observed = noisy_labels(rng, true, cfg.label_noise)
    n_id = max(FOLDS, cfg.clips // cfg.clips_per_identity)
    identity = rng.permutation(np.arange(cfg.clips) % n_id)
    id_fold = rng.permutation(np.arange(n_id) % FOLDS) + 1
    return pl.DataFrame(
        {
            "clip_id": [f"{i + 1:05d}" for i in range(cfg.clips)],
            "identity": identity.astype(np.int32),
            "fold": id_fold[identity].astype(np.int8),
            "true_label": true.astype(np.int8),
            "label": observed.astype(np.int8),
        }
    )


def render_clip(cfg: SynthConfig, index: int, identity: int, label: int) -> tuple[np.ndarray, ClipAUs, pl.DataFrame]:
    """Frames ``(T, S, S, 3)`` RGB uint8, the exact ``ClipAUs`` and what OpenFace would write, for clip ``index``."""
    person = random_identity(np.random.default_rng([cfg.seed, 1, identity]))
    rng = np.random.default_rng([cfg.seed, 2, index])
    aus = sample_clip_aus(rng, label, cfg.frames, _PRIOR, expressiveness=person.expressiveness)
    frames = np.stack([render_frame(person, aus.intensity[t], cfg.size, cfg.au_gain) for t in range(cfg.frames)])
    frames = camera(frames, head_motion(rng, cfg.frames, cfg.motion), rng, noise=cfg.noise)
    return frames, aus, openface_frames(rng, aus)


def _write_chunk(args) -> list[tuple[int, list[int]]]:
    import cv2

    cfg, tmp, rows = args
    tmp = Path(tmp)
    out = []
    for index, cid, identity, label in rows:
        frames, aus, of = render_clip(cfg, index, identity, label)
        folder = tmp / "Clip" / cfg.frames_dir() / cid
        folder.mkdir(parents=True)
        for t, img in enumerate(frames, start=1):
            ok, buf = cv2.imencode(
                ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
            )
            (folder / f"{t:05d}.jpg").write_bytes(buf.tobytes())
        (tmp / "OpenFace" / f"{cid}.csv").write_bytes(render_openface_csv(of, "2.2", full=False))
        out.append((index, aus.video_labels.tolist()))
    return out


_PRIOR: np.ndarray | None = None


def _init_worker(prior) -> None:
    global _PRIOR
    _PRIOR = prior


def generate(
    out: str | Path,
    cfg: SynthConfig = SynthConfig(),
    *,
    prior: np.ndarray | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    preview: bool = False,
    log: Log | None = None,
) -> Path:
    """Render the synthetic dataset into ``out`` (see the module doc for the layout); returns ``out``."""

    cfg.check()
    out = Path(out)
    check_output_dir(out, overwrite=overwrite, **_OUTPUT)  # before the work: refused early
    prior_name = "paper" if prior is None else "given"
    prior = paper_knowledge() if prior is None else np.asarray(prior, dtype=np.float64)
    if prior.shape != (len(EXPRESSIONS), len(AUS)):
        raise ConfigError(f"prior must be 7 x 18, got {prior.shape}")
    t0 = time.perf_counter()
    plan = _plan(cfg)
    with replace_output_dir(out, overwrite=overwrite, **_OUTPUT) as tmp:  # whole or not at all; ours only
        (tmp / "OpenFace").mkdir()
        rows = list(zip(range(cfg.clips), plan["clip_id"], plan["identity"].to_list(), plan["true_label"].to_list()))
        workers = workers or min(os.cpu_count() or 1, 8)
        chunk = max(1, min(64, cfg.clips // (workers * 4) or 1))
        jobs = [(cfg, str(tmp), rows[i : i + chunk]) for i in range(0, len(rows), chunk)]
        results: list[tuple[int, list[int]]] = []
        with bar(total=cfg.clips, desc="clips", unit="clip") as shown:  # stderr, only on a terminal
            if workers == 1:
                _init_worker(prior)
                for job in jobs:
                    results += _write_chunk(job)
                    shown.update(len(job[2]))
            else:
                ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(prior,)) as pool:
                    for job, part in zip(jobs, pool.map(_write_chunk, jobs)):
                        results += part
                        shown.update(len(job[2]))
        results.sort()
        exact = np.array([r[1] for r in results], dtype=np.int8)
        meta = plan.with_columns([pl.Series(a, exact[:, j]) for j, a in enumerate(AUS)])
        write_csv(meta, tmp / "synth_meta.csv")
        write_csv(
            plan.select("clip_id", pl.col("label").map_elements(lambda i: EXPRESSIONS[i], return_dtype=pl.String)),
            tmp / "clip_labels.csv",
        )
        _write_splits(tmp, plan)
        (tmp / "synth.json").write_text(
            json.dumps({**asdict(cfg), "prior": prior_name, "frames_dir": f"Clip/{cfg.frames_dir()}"}, indent=2) + "\n"
        )
        if preview:
            write_preview(tmp, cfg, plan)
    if log:
        log(
            f"rendered {cfg.clips} clips x {cfg.frames} frames at {cfg.size}px into {out} in {time.perf_counter() - t0:.1f}s"
        )
    return out


#: What ``generate`` writes into its folder; ``--overwrite`` deletes nothing else.
OWN_ENTRIES = frozenset(
    {"synth.json", "synth_meta.csv", "clip_labels.csv", "OpenFace", "Clip", "EmoLabel_DataSplit", "preview.png"}
)


def _older_output(out: Path) -> set[str] | None:
    """What an ``audfer synth`` without the output marker wrote (``OWN_ENTRIES``), when ``synth.json`` says it was
    one."""
    try:
        meta = json.loads((out / "synth.json").read_text())
    except (OSError, ValueError):
        return None
    return set(OWN_ENTRIES) if isinstance(meta, dict) and {"clips", "size", "frames", "seed"} <= set(meta) else None


#: ``audfer synth``'s output folder, as ``files.replace_output_dir`` checks and replaces it.
_OUTPUT: dict[str, Any] = dict(
    kind="synth",
    what="an earlier `audfer synth` output",
    legacy=_older_output,
    evidence="synth.json",
    error=ConfigError,
)


def check_own_output(out: Path) -> None:
    """Refuse to replace ``out`` unless it is an earlier ``audfer synth`` output (``files.check_output_dir``: its
    marker or ``synth.json`` says so and it holds nothing ``generate`` does not write)."""
    check_output_dir(out, overwrite=True, **_OUTPUT)


def synth_settings_differ(out: Path, cfg: SynthConfig) -> dict:
    """{setting: (on disk, wanted)} for an existing synthetic set at ``out`` (empty when they agree)."""
    meta = json.loads((out / "synth.json").read_text())
    return {k: (meta.get(k), v) for k, v in asdict(cfg).items() if meta.get(k) != v}


def _write_splits(root: Path, plan: pl.DataFrame) -> None:
    """DFEW's ``EmoLabel_DataSplit``: for fold k, test = the clips of fold k, train = the rest."""
    for part in ("train", "test"):
        folder = root / "EmoLabel_DataSplit" / f"{part}(single-labeled)"
        folder.mkdir(parents=True)
        for k in range(1, FOLDS + 1):
            sel = plan.filter((pl.col("fold") == k) if part == "test" else (pl.col("fold") != k))
            lines = ["video_name,label"] + [f"{int(c)},{int(l) + 1}" for c, l in zip(sel["clip_id"], sel["label"])]
            (folder / f"set_{k}.csv").write_text("\n".join(lines) + "\n")


def write_preview(root: Path, cfg: SynthConfig, plan: pl.DataFrame, *, per_class: int = 3, steps: int = 4) -> Path:
    """``preview.png``: for each expression, ``per_class`` clips (true label) at ``steps`` time points."""
    import cv2

    tiles = []
    pick = np.linspace(0, cfg.frames - 1, steps).round().astype(int)
    for e, name in enumerate(EXPRESSIONS):
        ids = plan.filter(pl.col("true_label") == e)["clip_id"].to_list()[:per_class]
        row = []
        for cid in ids:
            clip = read_frames(root / "Clip" / cfg.frames_dir() / cid, pick)
            row += list(clip)
        row += [np.zeros((cfg.size, cfg.size, 3), np.uint8)] * (per_class * steps - len(row))
        strip = np.concatenate(row, axis=1)
        label = np.full((cfg.size, 90, 3), 255, np.uint8)
        cv2.putText(label, name, (4, cfg.size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([label, strip], axis=1))
    grid = np.concatenate(tiles, axis=0)
    path = root / "preview.png"
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return path
