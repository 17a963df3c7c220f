"""AU time courses for the built-in synthetic dataset.

Each expression draws its active AUs from an expression-AU prior (default: the paper's
matrix, Fig. 4) with person-to-person variation; each active AU follows an onset-apex-offset
envelope. The ground truth is exact; what goes into the OpenFace-format CSV gets OpenFace-like
artefacts: estimation noise, 2-decimal rounding, failed frames (``success = 0``) whose values
are zeroed and smeared into their neighbours by OpenFace's temporal smoothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from audfer.method.knowledge import paper_knowledge
from audfer.vocab import AUS, EXPRESSIONS, INTENSITY_COLUMNS, PRESENCE_COLUMNS

#: DFEW's class distribution over its 11,697 single-labelled clips (5-fold split files).
DFEW_CLASS_COUNTS = (2445, 1894, 2669, 2173, 1469, 145, 902)
_AU28 = AUS.index("AU28")
PRESENCE_THRESHOLD = 1.0  #: intensity above which an AU counts as present (OpenFace's AU_c ~ AU_r > 1)


def activation_probability(prior: np.ndarray, gain: float = 2.0, bias: float = -1.0) -> np.ndarray:
    """Prior (7 x 18 in (0,1)) -> probability that an AU is active in a clip of that expression.

    Each AU's prior is standardised across the expressions, so an AU is likely where the prior marks
    it as distinctive for the expression and rare elsewhere: p = sigmoid(gain * z + bias), clipped to
    [0.02, 0.95]. With the paper's matrix, exact clip-level AU labels predict the expression with
    ~92 % accuracy (logistic regression): the AUs carry the expression, but not trivially.
    """
    k = np.asarray(prior, dtype=np.float64)
    z = (k - k.mean(axis=0)) / np.maximum(k.std(axis=0), 1e-9)
    return np.clip(1.0 / (1.0 + np.exp(-(gain * z + bias))), 0.02, 0.95)


def envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """Onset-apex-offset time course in [0, 1] over n frames (piecewise linear)."""
    t = np.arange(n, dtype=np.float64)
    start = rng.uniform(-0.3, 0.2) * n
    onset = rng.uniform(0.1, 0.3) * n + 1
    apex = rng.uniform(0.4, 0.9) * n
    offset = rng.uniform(0.1, 0.3) * n + 1
    rise = np.clip((t - start) / onset, 0, 1)
    fall = np.clip(1 - (t - (start + onset + apex)) / offset, 0, 1)
    return np.minimum(rise, fall)


@dataclass
class ClipAUs:
    """Exact AU ground truth of one synthetic clip."""

    label: int  #: the true expression
    intensity: np.ndarray  #: (T, 18) in [0, 5]; AU28 has an intensity here (it drives the renderer)
    presence: np.ndarray  #: (T, 18) int8, intensity > PRESENCE_THRESHOLD

    @property
    def video_labels(self) -> np.ndarray:
        """Eq. 4 on the exact presences: 1 iff present on at least half of the frames."""
        return (2 * self.presence.sum(axis=0) >= self.presence.shape[0]).astype(np.int8)


def sample_clip_aus(
    rng: np.random.Generator, label: int, n_frames: int, prior: np.ndarray | None = None, expressiveness: float = 1.0
) -> ClipAUs:
    """Draw one clip's AU time courses for expression ``label`` (a person's ``expressiveness`` scales apexes)."""
    prior = paper_knowledge() if prior is None else np.asarray(prior)
    p_active = activation_probability(prior)[label]  # standardised per AU across the 7 expressions
    active = rng.random(len(AUS)) < p_active
    apex = np.clip((2.5 + 2.5 * prior[label] * rng.lognormal(0.0, 0.25, len(AUS))) * expressiveness, 0, 5)
    inten = np.zeros((n_frames, len(AUS)))
    for a in np.flatnonzero(active):
        inten[:, a] = apex[a] * envelope(rng, n_frames)
    inten = np.clip(inten + np.abs(rng.normal(0, 0.08, inten.shape)), 0, 5)
    return ClipAUs(label, inten, (inten > PRESENCE_THRESHOLD).astype(np.int8))


def openface_frames(
    rng: np.random.Generator, clip: ClipAUs, *, failure_rate: float = 0.05, fps: float = 25.0, noise: float = 0.15
) -> pl.DataFrame:
    """What OpenFace would write for this clip: noisy 2-decimal estimates and some failed frames."""
    n = clip.intensity.shape[0]
    est = np.clip(clip.intensity + rng.normal(0, noise, clip.intensity.shape), 0, 5)
    pres = clip.presence.copy()
    flip = rng.random(pres.shape) < 0.03
    pres[flip] = 1 - pres[flip]
    success = np.asarray(rng.random(n) >= failure_rate).astype(np.int8)
    conf = np.where(success == 1, rng.uniform(0.85, 0.98, n), rng.uniform(0.0, 0.3, n))
    failed = success == 0
    if failed.any():  # zeroed, then OpenFace's 3-frame mean smears them with their neighbours
        est[failed] = 0.0
        pres[failed] = 0
        padded = np.pad(est, ((1, 1), (0, 0)), mode="edge")
        smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
        near = np.convolve(failed.astype(float), [1, 1, 1], mode="same") > 0
        est[near] = smooth[near]
    data: dict[str, object] = {
        "frame": np.arange(1, n + 1),
        "timestamp": np.round(np.arange(n) / fps, 3),
        "confidence": np.round(conf, 2),
        "success": success,
        "face_id": np.zeros(n, dtype=np.int64),
    }
    for col, a in zip(INTENSITY_COLUMNS, [i for i in range(len(AUS)) if i != _AU28]):
        data[col] = np.round(est[:, a], 2)
    for col, a in zip(PRESENCE_COLUMNS, range(len(AUS))):
        data[col] = pres[:, a]
    return pl.DataFrame(data)


def sample_labels(rng: np.random.Generator, n: int, shares: Sequence[float] = DFEW_CLASS_COUNTS) -> np.ndarray:
    """n expression labels with the given class distribution (default DFEW's), every class present if n >= 7."""
    p = np.asarray(shares, dtype=np.float64)
    p /= p.sum()
    counts = np.maximum(np.floor(p * n).astype(int), 1 if n >= len(p) else 0)
    while counts.sum() < n:
        counts[np.argmax(p * n - counts)] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    labels = np.repeat(np.arange(len(p)), counts)
    rng.shuffle(labels)
    return labels


def noisy_labels(rng: np.random.Generator, labels: np.ndarray, share: float) -> np.ndarray:
    """Replace a ``share`` of labels by a different class, as in crowd-labelled data."""
    out = labels.copy()
    wrong = rng.random(len(labels)) < share
    shift = rng.integers(1, len(EXPRESSIONS), size=len(labels))
    out[wrong] = (labels[wrong] + shift[wrong]) % len(EXPRESSIONS)
    return out
