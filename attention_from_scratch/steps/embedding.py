"""Token embedding and the output projection (Chapter 7).

A token id picks a row of the embedding table ``W_E (V, D)``: the forward
is a lookup, ``x[..., t, :] = W_E[tokens[..., t]]``. Its backward sends
each position's gradient back to the row it came from; a token that
occurs twice receives both gradients, so the rows *accumulate*.
``dW[tokens] += dout`` in NumPy would not: fancy-index assignment writes
each repeated row once, the last write wins. Here the accumulation is a
loop over positions, the lesson; ``core`` uses ``np.add.at``.

The output projection turns the last hidden state into one score
(logit) per vocabulary entry, ``logits = h @ W^T + b`` with ``W (V, D)``
laid out like the embedding table, so that the two can be the same array
("tied", Press & Wolf 2017; Vaswani et al. 2017, section 3.4).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import (
    check_embedding_inputs,
    check_gradient,
    check_output_projection_inputs,
)


class EmbeddingCache(NamedTuple):
    tokens: np.ndarray   # (...,) the ids looked up
    table_shape: tuple   # (V, D)


def embedding_forward(w, *, tokens):
    """Look up one row of ``w`` per token id.

    Parameters
    ----------
    w : (V, D) array_like
        The embedding table.
    tokens : (...,) array_like of int, keyword-only
        Ids in ``[0, V)``.

    Returns
    -------
    x : (..., D) ndarray, float64
    cache : EmbeddingCache

    See Also
    --------
    embedding_backward

    Examples
    --------
    >>> w = np.arange(6.0).reshape(3, 2)
    >>> x, _ = embedding_forward(w, tokens=[[2, 0, 2]])
    >>> x.tolist()
    [[[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]]]
    """
    w, tokens = check_embedding_inputs(w, tokens, dtype=np.float64)
    x = np.empty(tokens.shape + (w.shape[1],))                    # (..., D)
    for position in np.ndindex(tokens.shape):
        x[position] = w[tokens[position]]
    return x, EmbeddingCache(tokens, w.shape)


def embedding_backward(dout, cache):
    """Gradient ``dw`` of ``embedding_forward``: each position's gradient
    added to its token's row (repeated tokens accumulate)."""
    dout = check_gradient("dout", dout, cache.tokens.shape + cache.table_shape[1:], "(..., D)",
                          dtype=np.float64)
    dw = np.zeros(cache.table_shape)                              # (V, D)
    for position in np.ndindex(cache.tokens.shape):
        dw[cache.tokens[position]] += dout[position]              # one row at a time: adds
    return dw


class OutputProjectionCache(NamedTuple):
    h: np.ndarray   # (..., D)
    w: np.ndarray   # (V, D)


def output_projection_forward(h, w, b):
    """Logits ``h @ w^T + b``: one score per vocabulary entry.

    Parameters
    ----------
    h : (..., D) array_like
    w : (V, D) array_like
        Laid out like the embedding table (so it can be the same array).
    b : (V,) array_like

    Returns
    -------
    logits : (..., V) ndarray, float64
    cache : OutputProjectionCache

    Examples
    --------
    >>> logits, _ = output_projection_forward(np.ones((2, 3)), np.eye(4, 3),
    ...                                       np.zeros(4))
    >>> logits.shape
    (2, 4)
    """
    h, w, b = check_output_projection_inputs(h, w, b, dtype=np.float64)
    logits = h @ w.T + b                                           # (..., V)
    return logits, OutputProjectionCache(h, w)


def output_projection_backward(dlogits, cache):
    """Gradients ``(dh, dw, db)`` of ``output_projection_forward``."""
    h, w = cache
    dlogits = check_gradient("dlogits", dlogits, h.shape[:-1] + (w.shape[0],), "(..., V)",
                             dtype=np.float64)
    dh = dlogits @ w                                               # (..., D)
    dlogits_rows = dlogits.reshape(-1, w.shape[0])                 # (N, V)
    dw = dlogits_rows.T @ h.reshape(-1, w.shape[1])                # (V, D)
    return dh, dw, dlogits_rows.sum(axis=0)
