"""Figures of Chapter 4: what different heads look at, and the shapes of
split and merge."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

from attention_from_scratch import core
from attention_from_scratch.book.example import SPANISH, embed
from attention_from_scratch.book.plotting import heatmap
from attention_from_scratch.common.params import init_multi_head_params

HEADS_SEED = 4
N_HEADS = 4
HEAD_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")


def random_head_params(d_model, *, rng, std=1.0):
    """Random ``params`` with weights ``N(0, std^2)`` and zero biases.

    ``std = 1`` is larger than the ``N(0, 1/D)`` of
    ``init_multi_head_params``: on the 8-dimensional running example the
    scores then spread enough for each head's pattern to be visible.
    """
    params = init_multi_head_params(d_model, rng=rng)
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
    fig, axes = plt.subplots(1, len(weights), figsize=(14, 4.4))
    fig.subplots_adjust(left=0.078, right=0.918, bottom=0.2, top=0.86, wspace=0.06)
    for h, (ax, w) in enumerate(zip(axes, weights, strict=True)):
        image = heatmap(ax, w, row_labels=tokens if h == 0 else [""] * len(tokens),
                        col_labels=tokens, title=f"head {h}")
        ax.set_xlabel("key")
    axes[0].set_ylabel("query")
    fig.colorbar(image, cax=fig.add_axes((0.93, 0.2, 0.011, 0.66)), label="attention weight")
    fig.suptitle(f"{len(weights)} random heads (Dh = {8 // len(weights)}) on the running "
                 "sentence: same input, different questions")
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


def _head_blocks(ax, x0, y0, positions, heads, n_heads, *, cell, gap=0.15, title=None):
    """A ``(T, H, Dh)`` array drawn as ``(T, D)`` with a gap between heads:
    the reshape that splits the last axis moves no number."""
    d_head = positions.shape[1] // n_heads
    for h in range(n_heads):
        cols = slice(h * d_head, (h + 1) * d_head)
        right, bottom = _grid(ax, x0 + h * (d_head * cell + gap), y0, positions[:, cols],
                              heads[:, cols], cell=cell)
    if title:
        ax.text((x0 + right) / 2, y0 + 0.12, title, ha="center", va="bottom", fontsize=9)
    return right, bottom


def _head_stack(ax, x0, y0, positions, heads, *, cell, gap=0.35, titles=()):
    """An ``(H, T, Dh)`` array drawn as ``H`` grids one above the other."""
    for h in range(len(positions)):
        right, bottom = _grid(ax, x0, y0 - h * (positions.shape[1] * cell + gap), positions[h],
                              heads[h], cell=cell, title=titles[h] if h < len(titles) else None)
    return right, bottom


def split_concat_figure(t=3, d=8, n_heads=2):
    """Split, attend, concatenate, project -- and the wrong reshape.

    Every cell is one number: its label is the position (row) it belongs
    to, its colour the head that owns its column.
    """
    d_head = d // n_heads
    positions = np.repeat(np.arange(t)[:, None], d, axis=1)        # (T, D) position of each cell
    owner = np.repeat(np.arange(n_heads), d_head)[None, :].repeat(t, axis=0)   # (T, D) head
    split_pos = core.multi_head.split_heads(positions, n_heads=n_heads).astype(int)  # (H, T, Dh)
    split_own = core.multi_head.split_heads(owner, n_heads=n_heads).astype(int)
    fig, ax = plt.subplots(figsize=(12, 8.4))
    cell, gap = 0.32, 1.25
    mid = t * cell / 2
    stack_titles = [f"head {h}: (T, Dh) = ({t}, {d_head})" if h == 0 else f"head {h}"
                    for h in range(n_heads)]

    top = 8.0                                         # split: x -> (T, H, Dh) -> (H, T, Dh)
    ax.text(-0.1, top + 0.55, "Split: the columns split into heads, every row stays one "
            "position", fontsize=10, weight="bold")
    right, _ = _grid(ax, 0.0, top, positions, owner, cell=cell, title=f"x: (T, D) = ({t}, {d})")
    x = right + gap
    _arrow(ax, right + 0.1, x - 0.1, top - mid, "reshape\n(moves nothing)")
    right, _ = _head_blocks(ax, x, top, positions, owner, n_heads, cell=cell,
                            title=f"(T, H, Dh) = ({t}, {n_heads}, {d_head})")
    x = right + gap
    _arrow(ax, right + 0.1, x - 0.1, top - mid, "swap T and H")
    stack_x = x
    right, stack_bottom = _head_stack(ax, x, top, split_pos, split_own, cell=cell,
                                      titles=stack_titles)

    top2 = stack_bottom - 1.0                         # merge, right to left
    ax.add_patch(FancyArrowPatch((stack_x + d_head * cell / 2, stack_bottom - 0.05),
                                 (stack_x + d_head * cell / 2, top2 + 0.6), arrowstyle="-|>",
                                 mutation_scale=12, color="0.3"))
    ax.text(stack_x + d_head * cell / 2 + 0.12, (stack_bottom + top2 + 0.55) / 2,
            "attention in\nevery head", ha="left", va="center", fontsize=8)
    _, stack2_bottom = _head_stack(ax, stack_x, top2, split_pos, split_own, cell=cell,
                                   titles=["head outputs (H, T, Dh):\n"
                                           "row t = query t's output"])
    blocks_width = d * cell + (n_heads - 1) * 0.15
    x = stack_x - gap - blocks_width
    _arrow(ax, stack_x - 0.1, x + blocks_width + 0.1, top2 - mid, "swap H and T")
    _head_blocks(ax, x, top2, positions, owner, n_heads, cell=cell,
                 title=f"(T, H, Dh) = ({t}, {n_heads}, {d_head})")
    _arrow(ax, x - 0.1, d * cell + 0.1, top2 - mid, "reshape")
    _, merge_bottom = _grid(ax, 0.0, top2, positions, owner, cell=cell,
                            title="Concat(heads): (T, D)")
    ax.text(d * cell / 2, merge_bottom - 0.15, "@ W_O + b_O -> out: (T, D)", ha="center",
            va="top", fontsize=9)
    ax.text(-0.1, top2 + 0.55, "Merge: swap back, then reshape", fontsize=10, weight="bold")
    x_max = stack_x + d_head * cell + 1.3

    top3 = stack2_bottom - 0.9                        # the wrong reshape
    ax.text(-0.1, top3 + 0.55, "Wrong: a straight reshape cuts the flat rows into chunks",
            fontsize=10, weight="bold")
    right, _ = _grid(ax, 0.0, top3, positions, owner, cell=cell, title="x: (T, D)")
    x = right + gap
    _arrow(ax, right + 0.1, x - 0.1, top3 - mid, "WRONG: reshape\n(H, T, Dh)")
    wrong_pos = positions.reshape(n_heads, t, d_head)
    wrong_own = owner.reshape(n_heads, t, d_head)
    for h in range(n_heads):
        _grid(ax, x + h * (d_head * cell + 0.35), top3, wrong_pos[h], wrong_own[h],
              cell=cell, title=f"'head {h}'")
    ax.text(x + n_heads * (d_head * cell + 0.35) + 0.2, top3 - mid,
            "rows are no longer positions: 'head 0' row 1 is the second\n"
            "half of position 0, 'head 1' row 0 is position 1. Merged back\n"
            "by the same reshape, the layer stays causal but is not\n"
            "multi-head attention; merged correctly, query 0 sees position 1",
            ha="left", va="center", fontsize=9, color="#8b0000")
    ax.set_xlim(-0.2, x_max)
    ax.set_ylim(top3 - t * cell - 0.15, top + 0.85)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    return fig


FIGURES = {"04_heads.png": heads_figure, "04_split_concat.svg": split_concat_figure}
