"""Figures of Chapter 1, "Queries, keys and values"."""

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.book.example import FEATURES, SPANISH, embed
from attention_from_scratch.book.plotting import heatmap
from attention_from_scratch.common.params import init_self_attention_params
from attention_from_scratch.core.attention import attention_forward
from attention_from_scratch.core.self_attention import self_attention_forward
from attention_from_scratch.core.softmax import softmax_forward

SHARPNESS = (1.0, 4.0, 16.0)   # multiples of the query "a noun" in the lookup figure
UNTRAINED_SEED = 1


def handmade_params():
    """Projections a trained model could learn: nouns look for a verb,
    determiners look for a noun.

    Returns
    -------
    params : dict of str -> ndarray
        ``D = 8`` (the features of :mod:`attention_from_scratch.book.example`),
        ``Dk = 2``, ``Dv = 8``. Query axis 0 is "I am a noun, where is my
        verb?", key axis 0 "I am a verb"; axis 1 pairs determiners (query)
        with nouns (key). The values pass the embedding through unchanged.
    """
    d, d_k = len(FEATURES), 2
    w_q, w_k = np.zeros((d, d_k)), np.zeros((d, d_k))
    w_q[FEATURES.index("noun"), 0] = 3.0
    w_k[FEATURES.index("verb"), 0] = 3.0
    w_q[FEATURES.index("determiner"), 1] = 3.0
    w_k[FEATURES.index("noun"), 1] = 3.0
    return {"w_q": w_q, "b_q": np.zeros(d_k), "w_k": w_k, "b_k": np.zeros(d_k),
            "w_v": np.eye(d), "b_v": np.zeros(d)}


def untrained_params():
    """Random projections, drawn the way a model starts before training.

    Returns
    -------
    params : dict of str -> ndarray
        ``init_self_attention_params(8, 4, 3)`` with a fixed seed: weights
        from ``N(0, 1 / D)``, ``D = 8``, ``Dk = 4``, ``Dv = 3``; biases
        zero.
    """
    return init_self_attention_params(len(FEATURES), 4, 3,
                                      rng=np.random.default_rng(UNTRAINED_SEED))


def lookup_figure():
    """Weights of a hard lookup and of soft lookups of rising sharpness."""
    x = embed(SPANISH)                                       # (T, D): keys
    noun = np.eye(len(FEATURES))[FEATURES.index("noun")]     # (D,)
    scores = x @ noun                                        # (T,)
    rows = [("hard lookup (argmax)", np.eye(len(SPANISH))[np.argmax(scores)])]
    for c in SHARPNESS:
        weights, _ = softmax_forward(c * scores)
        rows.append((f"soft lookup, query = {c:g} × noun", weights))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(rows)
    positions = np.arange(len(SPANISH))
    for i, (label, weights) in enumerate(rows):
        ax.bar(positions + (i - (len(rows) - 1) / 2) * width, weights, width, label=label)
    ax.set_xticks(positions, SPANISH)
    ax.set_xlabel("key (token of the sentence)")
    ax.set_ylabel("weight on each key")
    ax.set_ylim(0, 1.05)
    ax.set_title('Looking up "a noun" in "El gato se sentó en la alfombra"')
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def projections_figure():
    """Self-attention weights of the sentence, three ways.

    ``Q = K = X``; untrained projections (:func:`untrained_params`); the
    handmade projections of :func:`handmade_params`. All three panels are
    drawn on one colour scale, 0 to 1, with one colour bar.
    """
    x = embed(SPANISH)                                       # (T, D)
    _, plain = attention_forward(x, x, x)
    _, untrained = self_attention_forward(x, untrained_params())
    _, handmade = self_attention_forward(x, handmade_params())
    panels = [("Q = K = X: who looks like me?", plain.weights),
              ("untrained W_Q, W_K ~ N(0, 1/D):\ntiny scores, nearly flat rows",
               untrained.weights),
              ("handmade W_Q, W_K: nouns -> verb,\ndeterminers -> noun", handmade.weights)]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.6), layout="constrained")
    for ax, (title, weights) in zip(axes, panels, strict=True):
        # one scale for all: a colour is the same weight in every panel, so the
        # weights on the left and in the middle, none above 0.25, look as small
        # as they are beside the right panel's peaks near 1
        image = heatmap(ax, weights, row_labels=SPANISH, col_labels=SPANISH, title=title)
        ax.set_xlabel("key (attended to)")
    axes[0].set_ylabel("query (attending)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight (all panels)")
    return fig


FIGURES = {"01_hard_vs_soft_lookup.svg": lookup_figure,
           "01_why_projections.png": projections_figure}
