"""Figures and tables in the paper's layout (Fig. 4 knowledge heatmap, ...)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from audfer.files import atomic_path
from audfer.hints import PathLike
from audfer.vocab import AUS, EXPRESSIONS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_knowledge(
    matrix: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "AU-expression knowledge",
    unmeasured: list[str] | tuple[str, ...] = (),
) -> None:
    """Heatmap of a 7 x 18 knowledge matrix with its values, like the paper's Fig. 4. ``unmeasured`` AU
    columns (fills, not measurements: §3.1's AU28 rule) are starred and explained under the plot."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(12, 4.2))
    im = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(
        range(len(AUS)), [a + ("*" if a in unmeasured else "") for a in AUS], rotation=45, ha="right", fontsize=8
    )
    if unmeasured:
        ax.set_xlabel("* not measured by the AU source: the column is the mean of the measured entries", fontsize=8)
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


def _save(fig, path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_confusions(
    matrices: dict[str, np.ndarray],
    names: Sequence[str],
    path: PathLike,
    *,
    title: str = "Normalised confusion matrices",
) -> None:
    """Row-normalised confusion matrices side by side (Fig. 6: baseline vs AU-DFER)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices), 4.3), squeeze=False)
    for ax, (label, m) in zip(axes[0], matrices.items()):
        m = np.asarray(m, dtype=np.float64)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(label, fontsize=10)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if m[i, j] > 0.5 else "black",
                )
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def plot_tsne(
    features: dict[str, tuple[np.ndarray, np.ndarray]], names: Sequence[str], path: PathLike, *, seed: int = 0
) -> None:
    """t-SNE of pooled features coloured by true expression, one panel per model (Fig. 8)."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(features), figsize=(5 * len(features), 4.6), squeeze=False)
    for ax, (label, (x, y)) in zip(axes[0], features.items()):
        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            np.asarray(x, np.float64)
        )
        for c, name in enumerate(names):
            sel = np.asarray(y) == c
            ax.scatter(emb[sel, 0], emb[sel, 1], s=8, label=name)
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=2, loc="best")
    _save(fig, path)


def plot_curves(curves: dict[str, dict[str, np.ndarray]], path: PathLike, *, title: str = "Training curves") -> None:
    """Per-epoch curves (Fig. 7): ``curves[run][metric] = values``; one panel per metric."""
    plt = _pyplot()
    metrics = sorted({m for c in curves.values() for m in c})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for run, c in curves.items():
            if metric in c:
                ax.plot(np.arange(1, len(c[metric]) + 1), c[metric], label=run)
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def plot_lambda(
    lams: Sequence[float],
    war: Sequence[float],
    uar: Sequence[float],
    path: PathLike,
    *,
    war_std: Sequence[float] | None = None,
    uar_std: Sequence[float] | None = None,
) -> None:
    """WAR and UAR against the loss ratio λ (Fig. 5)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(
        lams,
        100 * np.asarray(war),
        yerr=None if war_std is None else 100 * np.asarray(war_std),
        marker="o",
        label="WAR",
    )
    ax.errorbar(
        lams,
        100 * np.asarray(uar),
        yerr=None if uar_std is None else 100 * np.asarray(uar_std),
        marker="s",
        label="UAR",
    )
    ax.set_xlabel("λ (AU loss ratio, Eq. 10)")
    ax.set_ylabel("%")
    ax.legend()
    _save(fig, path)


def pm(stat: dict | None, scale: float = 100.0) -> str:
    """``mean ± std`` of an ``aggregate`` entry, in percent."""
    if stat is None or stat.get("mean") is None:
        return "-"
    return f"{scale * stat['mean']:.2f} ± {scale * stat['std']:.2f}"


def results_table(rows: dict[str, dict], names: Sequence[str]) -> list[str]:
    """Markdown rows in the layout of the paper's Tables 1 and 3: per-class recall, then WAR and UAR."""
    out = ["| method | " + " | ".join(names) + " | WAR | UAR |", "|---|" + "---|" * (len(names) + 2)]
    for label, agg in rows.items():
        cells = [pm(agg["per_class_recall"].get(n)) for n in names]
        out.append(f"| {label} | " + " | ".join(cells) + f" | {pm(agg['war'])} | {pm(agg['uar'])} |")
    return out
