"""Figures of Chapter 3: the masks, and what masking does to the weights."""

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch import core
from attention_from_scratch.book.example import SPANISH, embed
from attention_from_scratch.book.plotting import heatmap
from attention_from_scratch.common.masks import causal_mask, padding_mask, sliding_window_mask

SENTENCE_SEED = 3
PAD = "<pad>"
SHORT = SPANISH[:4]   # "El gato se sentó", padded to the full sentence's length
WINDOW = 3


def example_masks():
    """The four masks of the figure, each ``(7, 7)``, with their key labels.

    Returns
    -------
    masks : dict of str -> (mask, labels)
        Causal and sliding-window masks over the running sentence;
        padding and causal & padding over ``"El gato se sentó"``
        left-padded to the same length. Rows are queries, columns keys.
    """
    t = len(SPANISH)
    padded = (PAD,) * (t - len(SHORT)) + SHORT
    padding = padding_mask([len(SHORT)], t, side="left")[0]          # (1, S)
    padding = np.broadcast_to(padding, (t, t))                        # (T, S)
    return {
        "causal": (causal_mask(t), SPANISH),
        "padding (left)": (padding, padded),
        "causal & padding": (causal_mask(t) & padding, padded),
        f"sliding window, {WINDOW}": (sliding_window_mask(t, WINDOW), SPANISH),
    }


def masks_figure():
    """The causal, padding, combined and sliding-window masks side by side."""
    fig, axes = plt.subplots(1, 4, figsize=(14, 4.2), layout="constrained")
    for ax, (title, (mask, labels)) in zip(axes, example_masks().items(), strict=True):
        heatmap(ax, mask.astype(float), row_labels=labels, col_labels=labels,
                title=title, annotate=False, cmap="Blues")
        ax.set_xlabel("key")
        empty = np.flatnonzero(~mask.any(axis=-1))
        for i in empty:                        # rows with nothing to attend to
            ax.text(len(labels) / 2 - 0.5, i, "nothing to attend to", ha="center",
                    va="center", fontsize=7, color="tab:red")
    axes[0].set_ylabel("query")
    fig.suptitle("Masks: blue = may attend (True), white = masked out (False)")
    return fig


def sentence_qkv(d_k=4, *, rng):
    """Queries, keys and values of the running sentence.

    Random projections ``W_Q, W_K, W_V`` ``(8, Dk)`` stand in for trained
    ones.

    Parameters
    ----------
    d_k : int
    rng : numpy.random.Generator, keyword-only
        Draws ``W_Q``, ``W_K`` and ``W_V``, in that order.

    Returns
    -------
    q, k, v : (7, Dk) ndarray
        One row per token of ``SPANISH``.
    """
    x = embed(SPANISH)                                               # (T, D)
    w_q, w_k, w_v = (rng.normal(size=(x.shape[-1], d_k)) for _ in range(3))
    return x @ w_q, x @ w_k, x @ w_v                                 # (T, Dk) each


def masked_weights_figure():
    """The running sentence's weights: no mask, causal mask, mask after softmax."""
    q, k, v = sentence_qkv(rng=np.random.default_rng(SENTENCE_SEED))
    mask = causal_mask(len(SPANISH))
    _, unmasked = core.attention.attention_forward(q, k, v)
    _, masked = core.attention.attention_forward(q, k, v, mask=mask)
    after = unmasked.weights * mask                                  # the wrong way
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), layout="constrained")
    panels = [(unmasked.weights, "no mask"),
              (masked.weights, "causal: -inf before the softmax"),
              (after, "causal: zeroed after the softmax (wrong)")]
    for ax, (weights, title) in zip(axes, panels, strict=True):
        image = heatmap(ax, weights, row_labels=SPANISH, col_labels=SPANISH, title=title)
        ax.set_xlabel("key (attended to)")
        for i, total in enumerate(weights.sum(axis=-1)):
            ax.text(len(SPANISH) - 0.4, i, f"Σ {total:.2f}", va="center", fontsize=8)
    axes[0].set_ylabel("query (attending)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return fig


FIGURES = {
    "03_masks.png": masks_figure,
    "03_masked_weights.png": masked_weights_figure,
}
