"""Token embedding and output projection, vectorised mirror of ``steps.embedding``.

Same contract; the dtype of the table is kept (float32 stays float32).
The embedding's backward is one ``np.add.at``, which, unlike
``dw[tokens] += dout``, adds every occurrence of a repeated token.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import (
    check_embedding_inputs,
    check_gradient,
    check_output_projection_inputs,
)

__all__ = ["EmbeddingCache", "OutputProjectionCache", "embedding_backward",
           "embedding_forward", "output_projection_backward", "output_projection_forward"]


class EmbeddingCache(NamedTuple):
    tokens: np.ndarray   # (...,)
    table_shape: tuple   # (V, D)


class OutputProjectionCache(NamedTuple):
    h: np.ndarray   # (..., D)
    w: np.ndarray   # (V, D)


def embedding_forward(w, *, tokens):
    """``w[tokens]``: rows of the table, dtype of ``w``.

    Examples
    --------
    >>> x, _ = embedding_forward(np.eye(3, dtype=np.float32), tokens=[1, 1])
    >>> x.dtype == np.float32 and x.tolist() == [[0, 1, 0], [0, 1, 0]]
    True
    """
    w, tokens = check_embedding_inputs(w, tokens)
    return w[tokens], EmbeddingCache(tokens, w.shape)              # (..., D)


def embedding_backward(dout, cache):
    """``dw``: ``np.add.at`` accumulates the rows of repeated tokens."""
    dout = check_gradient("dout", dout, cache.tokens.shape + cache.table_shape[1:], "(..., D)",
                          dtype=None)
    dw = np.zeros(cache.table_shape, dtype=dout.dtype)            # (V, D)
    np.add.at(dw, cache.tokens.reshape(-1), dout.reshape(-1, cache.table_shape[1]))
    return dw


def output_projection_forward(h, w, b):
    """Logits ``h @ w^T + b`` as one matmul over all positions, dtype of ``h``."""
    h, w, b = check_output_projection_inputs(h, w, b)
    logits = h.reshape(-1, w.shape[1]) @ w.T                       # (N, V)
    logits += b
    return logits.reshape(h.shape[:-1] + (w.shape[0],)), OutputProjectionCache(h, w)


def output_projection_backward(dlogits, cache):
    """Gradients ``(dh, dw, db)`` of ``output_projection_forward``."""
    h, w = cache
    dlogits = check_gradient("dlogits", dlogits, h.shape[:-1] + (w.shape[0],), "(..., V)",
                             dtype=h.dtype)
    dlogits_rows = dlogits.reshape(-1, w.shape[0])                 # (N, V)
    dh = (dlogits_rows @ w).reshape(h.shape)                       # (..., D)
    dw = dlogits_rows.T @ h.reshape(-1, w.shape[1])                # (V, D)
    return dh, dw, dlogits_rows.sum(axis=0)
