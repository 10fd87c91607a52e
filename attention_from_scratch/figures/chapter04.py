"""Figures of Chapter 4: what different heads look at, and the shapes of split and merge."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

from attention_from_scratch import core
from attention_from_scratch.example import SPANISH, embed
from attention_from_scratch.plotting import heatmap

HEADS_SEED = 4
N_HEADS = 4
HEAD_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")


def random_head_params(d_model, *, rng, std=1.0):
    """Random ``params`` with weights ``N(0, std^2)`` and zero biases.

    ``std = 1`` is larger than the ``N(0, 1/D)`` of
    ``init_multi_head_params``: on the 8-dimensional running example the
    scores then spread enough for each head's pattern to be visible.
    """
    params = core.multi_head.init_multi_head_params(d_model, rng=rng)
    return {key: rng.normal(scale=std, size=value.shape) if key[0] == "w" else value
            for key, value in params.items()}


def head_weights(*, seed=HEADS_SEED, n_heads=N_HEADS):
    """Attention weights of random heads on the running sentence.

    Returns
    -------
    tokens : tuple of str
        The Spanish sentence, ``T = 7`` tokens.
    weights : (H, T, T) ndarray
        Self-attention weights of each head, no mask.
    """
    x = embed(SPANISH)                                            # (T, D) = (7, 8)
    params = random_head_params(x.shape[-1], rng=np.random.default_rng(seed))
    _, cache = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=n_heads)
    return SPANISH, cache.weights


def heads_figure():
    """One heatmap per head: each head attends in its own way."""
    tokens, weights = head_weights()
    fig, axes = plt.subplots(1, len(weights), figsize=(15, 4.8))
    for h, (ax, w) in enumerate(zip(axes, weights, strict=True)):
        heatmap(ax, w, row_labels=tokens if h == 0 else [""] * len(tokens),
                col_labels=tokens, title=f"head {h}")
    axes[0].set_ylabel("query")
    fig.suptitle(f"{len(weights)} random heads (Dh = {8 // len(weights)}) on the running "
                 "sentence: same input, different questions")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.subplots_adjust(bottom=0.2)      # room for the rotated token labels
    return fig


def _grid(ax, x0, y0, positions, heads, *, cell=0.32, title=None):
    """Draw a grid of cells; cell (i, j) shows token ``positions[i, j]`` in
    the colour of head ``heads[i, j]``."""
    rows, cols = positions.shape
    for i in range(rows):
        for j in range(cols):
            ax.add_patch(Rectangle((x0 + j * cell, y0 - (i + 1) * cell), cell, cell,
                                   facecolor=HEAD_COLOURS[heads[i, j]], edgecolor="white",
                                   lw=1.5, alpha=0.85))
            ax.text(x0 + (j + 0.5) * cell, y0 - (i + 0.5) * cell, str(positions[i, j]),
                    ha="center", va="center", fontsize=8, color="white")
    if title:
        ax.text(x0 + cols * cell / 2, y0 + 0.12, title, ha="center", va="bottom", fontsize=9)
    return x0 + cols * cell, y0 - rows * cell


def _arrow(ax, x_from, x_to, y, label):
    ax.add_patch(FancyArrowPatch((x_from, y), (x_to, y), arrowstyle="-|>",
                                 mutation_scale=12, color="0.3"))
    ax.text((x_from + x_to) / 2, y + 0.08, label, ha="center", va="bottom", fontsize=8)


def split_concat_figure(t=3, d=8, n_heads=2):
    """Split, attend, concatenate, project -- and the wrong reshape.

    Every cell is one number of ``x`` ``(T, D)``: its label is the token
    (row) it came from, its colour the head that owns its column.
    """
    d_head = d // n_heads
    positions = np.repeat(np.arange(t)[:, None], d, axis=1)        # (T, D) token of each cell
    owner = np.repeat(np.arange(n_heads), d_head)[None, :].repeat(t, axis=0)   # (T, D) head
    fig, ax = plt.subplots(figsize=(12, 5.2))
    cell, top, gap = 0.32, 4.6, 1.25

    right, _ = _grid(ax, 0.0, top, positions, owner, cell=cell, title=f"x: (T, D) = ({t}, {d})")
    x = right + gap
    _arrow(ax, right + 0.1, x - 0.1, top - t * cell / 2,
           "reshape (T, H, Dh)\nswap T and H")
    split_pos = core.multi_head.split_heads(positions, n_heads).astype(int)   # (H, T, Dh)
    split_own = core.multi_head.split_heads(owner, n_heads).astype(int)
    for h in range(n_heads):
        y = top - h * (t * cell + 0.35)
        end, _ = _grid(ax, x, y, split_pos[h], split_own[h], cell=cell,
                       title=f"head {h}: (T, Dh) = ({t}, {d_head})" if h == 0 else
                       f"head {h}")
    x_attend = end + gap
    _arrow(ax, end + 0.1, x_attend - 0.1, top - t * cell / 2,
           "attention\nper head")
    for h in range(n_heads):
        y = top - h * (t * cell + 0.35)
        end2, _ = _grid(ax, x_attend, y, split_pos[h], split_own[h], cell=cell,
                        title="heads: (H, T, Dh)" if h == 0 else None)
    x_merge = end2 + gap
    _arrow(ax, end2 + 0.1, x_merge - 0.1, top - t * cell / 2,
           "swap H and T\nreshape (T, D)")
    end3, _ = _grid(ax, x_merge, top, positions, owner, cell=cell,
                    title="Concat(heads): (T, D)")
    ax.text(end3 + 0.15, top - t * cell / 2, "@ W_O + b_O\n-> (T, D)", ha="left",
            va="center", fontsize=9)

    wrong_top = 1.55
    right, _ = _grid(ax, 0.0, wrong_top, positions, owner, cell=cell, title="x: (T, D)")
    x = right + gap
    _arrow(ax, right + 0.1, x - 0.1, wrong_top - t * cell / 2, "WRONG: reshape\n(H, T, Dh)")
    wrong_pos = positions.reshape(n_heads, t, d_head)
    wrong_own = owner.reshape(n_heads, t, d_head)
    for h in range(n_heads):
        _grid(ax, x + h * (d_head * cell + 0.35), wrong_top, wrong_pos[h], wrong_own[h],
              cell=cell, title=f"'head {h}'")
    ax.text(x + n_heads * (d_head * cell + 0.35) + 0.2, wrong_top - t * cell / 2,
            "rows mix tokens and the two halves of a token:\n"
            "'head 0' row 1 is the second half of token 0,\n"
            "so attention over its rows is not attention over tokens",
            ha="left", va="center", fontsize=9, color="#8b0000")
    ax.text(-0.1, top + 0.55, "Right: the columns split into heads, every row stays one token",
            fontsize=10, weight="bold")
    ax.text(-0.1, wrong_top + 0.55, "Wrong: a straight reshape cuts the flat rows into chunks",
            fontsize=10, weight="bold")
    ax.set_xlim(-0.2, x_merge + d * cell + 1.3)
    ax.set_ylim(0.0, top + 0.85)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    return fig


FIGURES = {"04_heads.png": heads_figure, "04_split_concat.svg": split_concat_figure}
