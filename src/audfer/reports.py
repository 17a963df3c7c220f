"""Figures and tables in the paper's layout (Fig. 4 knowledge heatmap, ...)."""

from __future__ import annotations

import os

import numpy as np

from .io import atomic_path
from .vocab import AUS, EXPRESSIONS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_knowledge(matrix: np.ndarray, path: str | os.PathLike, *, title: str = "AU-expression knowledge") -> None:
    """Heatmap of a 7 x 18 knowledge matrix with its values, like the paper's Fig. 4."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(12, 4.2))
    im = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(AUS)), AUS, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(EXPRESSIONS)), EXPRESSIONS, fontsize=9)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = matrix[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > 0.55 else "white")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.025)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
