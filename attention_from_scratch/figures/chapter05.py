"""Figures of Chapter 5: positional encodings, and the three attentions of a translator."""

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch import core
from attention_from_scratch.book.example import ENGLISH, SPANISH, embed
from attention_from_scratch.book.plotting import heatmap
from attention_from_scratch.common.params import (
    init_feed_forward_params,
    init_norm_params,
    with_prefix,
)

PE_POSITIONS, PE_WIDTH = 64, 32
SELF_SHARPNESS, CROSS_SHARPNESS = 1.5, 2.0
FFN_SEED = 5


def matching_head(d_model, sharpness):
    """Hand-set attention parameters: a query matches keys with the same features.

    ``W_Q = W_K = sharpness * I``, so the score of two tokens is their
    embeddings' dot product (times ``sharpness^2 / sqrt(D)``): tokens that
    share features, like "gato" and "cat", attend to each other. ``W_V``
    and ``W_O`` are the identity: a token receives the features it reads.
    A stand-in for what training would find, not a trained model.
    """
    eye, zero = np.eye(d_model), np.zeros(d_model)
    return {"w_q": sharpness * eye, "b_q": zero, "w_k": sharpness * eye, "b_k": zero,
            "w_v": eye, "b_v": zero, "w_o": eye, "b_o": zero}


def translation_params(d_model=8, d_ff=16):
    """Encoder and decoder block parameters with :func:`matching_head` attention.

    Layer norms start as the identity; the feed-forward networks are
    random (seeded).

    Returns
    -------
    encoder_params, decoder_params : dict
    """
    rng = np.random.default_rng(FFN_SEED)
    norm = init_norm_params(d_model)
    encoder_params = {**with_prefix("attn", matching_head(d_model, SELF_SHARPNESS)),
                      **with_prefix("ln1", norm),
                      **with_prefix("ffn", init_feed_forward_params(
                          d_model, d_ff, rng=rng)),
                      **with_prefix("ln2", norm)}
    decoder_params = {**with_prefix("self_attn", matching_head(d_model, SELF_SHARPNESS)),
                      **with_prefix("ln1", norm),
                      **with_prefix("cross_attn", matching_head(d_model, CROSS_SHARPNESS)),
                      **with_prefix("ln2", norm),
                      **with_prefix("ffn", init_feed_forward_params(
                          d_model, d_ff, rng=rng)),
                      **with_prefix("ln3", norm)}
    return encoder_params, decoder_params


def translation_weights():
    """Attention weights of "the cat sat on the mat" -> "El gato se sentó en la alfombra".

    The encoder block reads the English sentence (no mask: bidirectional);
    its output is the memory of the decoder block, which reads the Spanish
    one (causal self-attention, then cross-attention to the memory). One
    head each. No positional encodings are added: the hand-set heads match
    words by their features only, so the two "the" differ only by the
    embeddings' seeded noise.

    Returns
    -------
    encoder_self : (6, 6) ndarray
    decoder_self : (7, 7) ndarray
    cross : (7, 6) ndarray
        Rows are queries, columns keys.
    """
    encoder_params, decoder_params = translation_params()
    memory, encoder_cache = core.encoder.encoder_block_forward(embed(ENGLISH), encoder_params,
                                                               n_heads=1)      # (S, D)
    _, decoder_cache = core.decoder.decoder_block_forward(embed(SPANISH), memory,
                                                          decoder_params, n_heads=1)
    return (encoder_cache.attn.sublayer.weights[0], decoder_cache.self_attn.sublayer.weights[0],
            decoder_cache.cross_attn.sublayer.weights[0])


def translation_figure():
    """Encoder self-attention, decoder masked self-attention, cross-attention."""
    encoder_self, decoder_self, cross = translation_weights()
    fig, axes = plt.subplots(1, 3, figsize=(16, 6), layout="constrained")
    panels = [(encoder_self, ENGLISH, ENGLISH, "encoder self-attention\n(bidirectional)"),
              (decoder_self, SPANISH, SPANISH, "decoder self-attention\n(causal)"),
              (cross, SPANISH, ENGLISH, "decoder cross-attention\n(queries: Spanish, "
                                        "keys: English)")]
    for ax, (weights, rows, cols, title) in zip(axes, panels, strict=True):
        image = heatmap(ax, weights, row_labels=rows, col_labels=cols, title=title)
        ax.set_xlabel("key (attended to)")
    axes[0].set_ylabel("query (attending)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return fig


def positional_encoding_figure():
    """The encoding matrix, and the dot products between positions."""
    pe = core.positional_encoding.sinusoidal_encoding(PE_POSITIONS, PE_WIDTH)    # (T, D)
    dots = pe @ pe.T                                                             # (T, T)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    image = axes[0].imshow(pe, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    axes[0].set_title(f"PE: {PE_POSITIONS} positions x {PE_WIDTH} dimensions")
    axes[0].set_xlabel("dimension (even: sin, odd: cos; frequency falls to the right)")
    axes[0].set_ylabel("position")
    fig.colorbar(image, ax=axes[0], shrink=0.8)
    image = axes[1].imshow(dots, cmap="viridis")
    axes[1].set_title("PE[p] . PE[q]: depends only on |p - q|")
    axes[1].set_xlabel("position q")
    axes[1].set_ylabel("position p")
    fig.colorbar(image, ax=axes[1], shrink=0.8)
    return fig


FIGURES = {
    "05_positional_encoding.png": positional_encoding_figure,
    "05_translation_attention.png": translation_figure,
}
