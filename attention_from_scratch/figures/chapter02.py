"""Figures of Chapter 2: why the scale is 1/sqrt(Dk), and attention heatmaps."""

from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch import core
from attention_from_scratch.book.example import SPANISH, embed
from attention_from_scratch.book.plotting import heatmap
from attention_from_scratch.measure.weight_stats import row_entropy

SCALING_SEED = 2
SENTENCE_SEED = 1
SCALING_D_KS = tuple(2 ** n for n in range(11))   # 1, 2, 4, ..., 1024
QUARTILES = (25, 50, 75)


class ScalingStats(NamedTuple):
    """What the softmax sees and sends back, one row per ``Dk``.

    Every ``(K, 3)`` field holds the 25th, 50th and 75th percentiles over
    the query rows; the middle column is the typical row.
    """

    variance: np.ndarray      # (K,) variance of the scores
    max_weight: np.ndarray    # (K, 3) largest attention weight of a row
    entropy: np.ndarray       # (K, 3) entropy of a row of weights, in nats
    dscores_norm: np.ndarray  # (K, 3) length of a row of the gradient reaching the scores


def measure_scaling(d_ks, *, rng, n_seqs=32, t=16, s=16, d_v=8):
    """Measure the softmax with and without the ``1/sqrt(Dk)`` scale.

    For every ``Dk``: unit-variance ``q`` ``(n_seqs, t, Dk)``, ``k``
    ``(n_seqs, s, Dk)`` and ``v``, and a random upstream gradient
    ``dout``. The scores go through the package's ``core`` softmax and
    weighted sum, forward and backward, once as ``q k^T`` and once as
    ``q k^T / sqrt(Dk)`` (``core.attention.scores_forward``).

    Parameters
    ----------
    d_ks : sequence of int
        Key widths to try.
    rng : numpy.random.Generator, keyword-only
    n_seqs, t, s, d_v : int, keyword-only
        Independent sequences, queries, keys and value width.

    Returns
    -------
    stats : dict
        ``{"without scale": ScalingStats, "with scale": ScalingStats}``.
    """
    rows = {"without scale": [], "with scale": []}
    for d_k in d_ks:
        q = rng.normal(size=(n_seqs, t, d_k))
        k = rng.normal(size=(n_seqs, s, d_k))
        v = rng.normal(size=(n_seqs, s, d_v))
        dout = rng.normal(size=(n_seqs, t, d_v))
        scaled, _ = core.attention.scores_forward(q, k)              # (N, T, S)
        unscaled = q @ np.swapaxes(k, -1, -2)                        # (N, T, S)
        for label, scores in (("without scale", unscaled), ("with scale", scaled)):
            weights, softmax_cache = core.softmax.softmax_forward(scores)
            _, sum_cache = core.attention.weighted_sum_forward(weights, v)
            dweights, _ = core.attention.weighted_sum_backward(dout, sum_cache)
            dscores = core.softmax.softmax_backward(dweights, softmax_cache)
            rows[label].append((
                scores.var(),
                np.percentile(weights.max(axis=-1), QUARTILES),
                np.percentile(row_entropy(weights), QUARTILES),
                np.percentile(np.linalg.norm(dscores, axis=-1), QUARTILES),
            ))
    return {label: ScalingStats(*(np.array(column) for column in zip(*found, strict=True)))
            for label, found in rows.items()}


def scaling_figure():
    """Four panels: score variance, max weight, entropy, gradient, against Dk."""
    d_ks = np.array(SCALING_D_KS)
    s = 16
    stats = measure_scaling(d_ks, rng=np.random.default_rng(SCALING_SEED), s=s)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4), sharex=True)
    styles = {"without scale": ("tab:red", "o-"), "with scale": ("tab:blue", "s-")}
    panels = [
        (axes[0, 0], "variance", "variance of the scores", "log"),
        (axes[0, 1], "max_weight", "largest weight in a row", "linear"),
        (axes[1, 0], "entropy", "entropy of a row (nats)", "linear"),
        (axes[1, 1], "dscores_norm", "|gradient reaching the scores| per row", "log"),
    ]
    for ax, field, ylabel, yscale in panels:
        for label, (color, marker) in styles.items():
            values = getattr(stats[label], field)
            if values.ndim == 1:
                ax.plot(d_ks, values, marker, color=color, ms=4, label=label)
            else:
                low, middle, high = np.maximum(values, 1e-12).T
                ax.plot(d_ks, middle, marker, color=color, ms=4, label=label)
                ax.fill_between(d_ks, low, high, color=color, alpha=0.15, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_yscale(yscale)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].plot(d_ks, d_ks, ":", color="grey", lw=1, label="Dk")
    axes[0, 1].set_ylim(0, 1.05)
    axes[0, 1].axhline(1 / s, color="grey", ls=":", lw=1, label=f"uniform, 1/{s}")
    axes[1, 0].axhline(np.log(s), color="grey", ls=":", lw=1, label=f"uniform, ln {s}")
    axes[0, 0].legend()
    axes[0, 1].legend()
    axes[1, 0].legend()
    for ax in axes[1]:
        ax.set_xlabel("key width Dk")
    fig.suptitle(f"Unit-variance q and k, {s} keys: median row, band = middle half of rows")
    fig.tight_layout()
    return fig


def sentence_attention(d_k=16, *, rng):
    """Attention weights of the running sentence, with and without the scale.

    Random projections ``W_Q, W_K`` ``(8, Dk)`` with unit-variance entries
    stand in for trained ones.

    Parameters
    ----------
    d_k : int
    rng : numpy.random.Generator, keyword-only
        Draws ``W_Q``, ``W_K`` and ``W_V`` ``(8, Dk)``, in that order.

    Returns
    -------
    scaled, unscaled : (7, 7) ndarray
        ``softmax(Q K^T / sqrt(Dk))`` and ``softmax(Q K^T)``; rows are
        queries, columns keys, in the order of ``SPANISH``.
    """
    x = embed(SPANISH)                                               # (T, D)
    w_q, w_k, w_v = (rng.normal(size=(x.shape[-1], d_k)) for _ in range(3))
    q, k, v = x @ w_q, x @ w_k, x @ w_v                              # (T, Dk)
    _, scaled = core.attention.attention_forward(q, k, v)
    # Multiplying q by sqrt(Dk) cancels the scale: softmax(Q K^T) V.
    _, unscaled = core.attention.attention_forward(q * np.sqrt(d_k), k, v)
    return scaled.weights, unscaled.weights


def sentence_heatmap_figure():
    """The running sentence's attention weights, scaled and unscaled."""
    d_k = 16
    scaled, unscaled = sentence_attention(d_k, rng=np.random.default_rng(SENTENCE_SEED))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    heatmap(axes[0], scaled, row_labels=SPANISH, col_labels=SPANISH,
            title=f"softmax(Q Kᵀ / √Dk), Dk = {d_k}")
    image = heatmap(axes[1], unscaled, row_labels=SPANISH, col_labels=SPANISH,
                    title="softmax(Q Kᵀ), no scale")
    for ax in axes:
        ax.set_xlabel("key (attended to)")
    axes[0].set_ylabel("query (attending)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return fig


FIGURES = {
    "02_scaling.svg": scaling_figure,
    "02_sentence_attention.png": sentence_heatmap_figure,
}
