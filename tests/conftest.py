from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDFER_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


#: The smallest training setting that still exercises every part of a run (a few seconds per epoch on 2 cores).
TINY = [
    "model.kwargs={img_size: 32, num_frames: 4, width: 8}",
    "train.batch_size=8",
    "train.progress=false",
    "train.threads=2",
    "train.loggers=[csv]",
]


def tiny_config(synth, out, *extra):
    """``synthetic_small`` on the synthetic set ``synth``, writing into ``out``, at the ``TINY`` size."""
    from audfer.config import load_config

    return load_config("synthetic_small", [f"data.root={synth}", f"out={out}", *TINY, *extra])


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """The one synthetic set (``audfer synth``: 60 clips of 8 frames at 32 px, five identity-disjoint folds, OpenFace
    CSVs) the end-to-end tests share. Read-only: a test that changes its files works on a copy."""
    from audfer.synth.dataset import SynthConfig, generate

    return generate(
        tmp_path_factory.mktemp("shared") / "synth", SynthConfig(clips=60, size=32, frames=8, seed=1), workers=1
    )


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDFER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures folder not found at {FIXTURES} (set AUDFER_SHARED)")
    return FIXTURES


@pytest.fixture
def reference() -> Path:
    ref = SHARED / "reference"
    if not ref.is_dir():
        pytest.skip(f"shared reference folder not found at {ref} (set AUDFER_SHARED)")
    return ref


def make_frames(n: int, seed: int = 0, *, face_id: int = 0, success=None) -> pl.DataFrame:
    """Canonical frames with random 2-decimal AU values (what OpenFace writes)."""
    from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

    rng = np.random.default_rng(seed)
    data = {
        "frame": np.arange(1, n + 1),
        "timestamp": np.round(np.arange(n) / 30.0, 3),
        "confidence": np.round(rng.uniform(0.5, 0.98, n), 3),
        "success": rng.integers(0, 2, n) if success is None else np.asarray(success),
        "face_id": np.full(n, face_id),
    }
    for c in INTENSITY_COLUMNS:
        data[c] = np.round(rng.uniform(0, 5, n) * (rng.random(n) < 0.6), 2)
    for c in PRESENCE_COLUMNS:
        data[c] = rng.integers(0, 2, n)
    return pl.DataFrame(data)


@pytest.fixture
def small_model():
    """A small Former-DFER (32 px, 4 frames, width 8) with fixed random weights, for inference tests."""
    import torch

    from audfer.models import create_model

    torch.manual_seed(0)
    return create_model("former_dfer_small", img_size=32, num_frames=4, width=8).eval()


@pytest.fixture
def small_weights(tmp_path):
    """A default-size ``former_dfer_small`` state dict saved as a plain ``.pth`` (``--model former_dfer_small``)."""
    import torch

    from audfer.models import create_model

    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    torch.save({"state_dict": create_model("former_dfer_small").state_dict()}, path)
    return path


def tiny_video(path: Path) -> Path:
    """An 8-frame 32 px mp4 of flat grey frames (no face): a valid video for commands that must refuse before reading it."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 32))
    for i in range(8):
        writer.write(np.full((32, 32, 3), 20 * i, np.uint8))
    writer.release()
    return path
