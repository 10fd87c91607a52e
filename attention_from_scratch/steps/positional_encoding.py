"""Sinusoidal positional encodings, one position at a time (Chapter 5).

Self-attention treats its input as a set: permute the tokens and the
outputs are permuted the same way, nothing else changes. Adding a
different vector to each position breaks that symmetry. Vaswani et al.
(2017, "Attention Is All You Need", section 3.5) use sines and cosines of
geometrically spaced frequencies:

    PE[p, 2i]     = sin(p / base ** (2i / D))
    PE[p, 2i + 1] = cos(p / base ** (2i / D)),     base = 10000.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import (
    check_array,
    check_gradient,
    check_positional_arguments,
)


def sinusoidal_encoding(t, d, *, offset=0, base=10000.0):
    """The ``(T, D)`` matrix of sinusoidal encodings of positions ``offset + 0 .. T-1``.

    Parameters
    ----------
    t : int
        Number of positions ``T`` (0 gives an empty matrix).
    d : int
        Model width ``D``; must be even (one sine and one cosine per
        frequency).
    offset : int, keyword-only
        Position of the first row: new tokens decoded after ``offset``
        cached ones start there.
    base : float, keyword-only
        Longest wavelength is ``2 pi base``.

    Returns
    -------
    pe : (T, D) ndarray, float64

    See Also
    --------
    positional_encoding_forward

    Notes
    -----
    Pair ``i`` turns at angular frequency ``base ** (-2i / D)``: from one
    turn per ``2 pi`` positions down to one per ``2 pi base``. Because
    ``PE[p + k]`` is a rotation of ``PE[p]`` by an angle that depends only
    on ``k``, the dot product ``PE[p] . PE[p + k]`` depends only on the
    distance ``k`` (Chapter 5).

    Examples
    --------
    >>> pe = sinusoidal_encoding(3, 4)
    >>> pe[0].tolist()                       # position 0: sin 0, cos 0, ...
    [0.0, 1.0, 0.0, 1.0]
    >>> bool(np.allclose((pe ** 2).sum(axis=-1), 2.0))   # D/2 pairs of unit length
    True
    """
    t, d, offset, base = check_positional_arguments(t, d, offset, base)
    pe = np.zeros((t, d))                                   # (T, D)
    for row, position in enumerate(range(offset, offset + t)):
        for i in range(d // 2):
            angle = position / base ** (2 * i / d)
            pe[row, 2 * i] = np.sin(angle)
            pe[row, 2 * i + 1] = np.cos(angle)
    return pe


class PositionalEncodingCache(NamedTuple):
    shape: tuple   # the backward is the identity: it only checks dout's shape


def positional_encoding_forward(x, *, offset=0, base=10000.0):
    """Add the sinusoidal encodings to token embeddings.

    Parameters
    ----------
    x : (..., T, D) array_like
        Embeddings; ``D`` even.
    offset, base : keyword-only
        As in :func:`sinusoidal_encoding`.

    Returns
    -------
    out : (..., T, D) ndarray, float64
        ``x + PE``, the same encodings for every sequence of the batch.
    cache : PositionalEncodingCache

    See Also
    --------
    positional_encoding_backward, sinusoidal_encoding

    Examples
    --------
    >>> out, cache = positional_encoding_forward(np.zeros((2, 3, 4)))
    >>> bool(np.array_equal(out[1], sinusoidal_encoding(3, 4)))
    True
    """
    x = check_array("x", x, 2, "(..., T, D)", dtype=np.float64)
    *_, t, d = x.shape
    out = x + sinusoidal_encoding(t, d, offset=offset, base=base)   # (..., T, D)
    return out, PositionalEncodingCache(x.shape)


def positional_encoding_backward(dout, cache):
    """Gradient ``dx`` of ``positional_encoding_forward``: ``dout`` itself.

    The encodings are constants, so ``d(x + PE)/dx`` is the identity.
    """
    dout = check_gradient("dout", dout, cache.shape, "(..., T, D)", dtype=np.float64)
    return dout.copy()
