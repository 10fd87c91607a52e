"""Plotting helpers shared by the chapters and the ``figures`` command.

Figures are saved deterministically: PNG for heatmaps (byte-identical run
to run), SVG for line plots with a fixed hash salt and no date.
"""

from pathlib import Path

import matplotlib as mpl
import numpy as np

FIGURES_DIR = Path(__file__).resolve().parents[2] / "figures"


def save_figure(fig, name, directory=None):
    """Save ``fig`` as ``directory/name`` (default ``figures/``); return the path."""
    directory = Path(directory) if directory is not None else FIGURES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if path.suffix == ".svg":
        with mpl.rc_context({"svg.hashsalt": "attention-from-scratch"}):
            fig.savefig(path, metadata={"Date": None})
    elif path.suffix == ".png":
        fig.savefig(path, dpi=100, metadata={"Software": None})
    else:
        raise ValueError(f"name must end in .svg or .png, got {name!r}")
    return path


def heatmap(ax, matrix, *, row_labels=None, col_labels=None, title=None,
            vmin=0.0, vmax=1.0, annotate=True, cmap="viridis"):
    """Draw ``matrix`` (rows = queries, columns = keys) on ``ax``.

    Masked-out entries (exactly 0 weight) are shown like any other 0; pass
    ``annotate=False`` for large matrices.
    """
    matrix = np.asarray(matrix)
    image = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap=cmap)
    rows, cols = matrix.shape
    ax.set_xticks(range(cols), col_labels if col_labels is not None else range(cols),
                  rotation=45 if col_labels is not None else 0, ha="right"
                  if col_labels is not None else "center")
    ax.set_yticks(range(rows), row_labels if row_labels is not None else range(rows))
    if title:
        ax.set_title(title)
    if annotate:
        middle = (vmin + vmax) / 2
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center",
                        fontsize=7, color="black" if matrix[i, j] > middle else "white")
    return image
