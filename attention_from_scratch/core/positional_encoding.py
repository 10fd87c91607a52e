"""Sinusoidal positional encodings, vectorised mirror of ``steps.positional_encoding``."""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import (
    check_array,
    check_gradient,
    check_positional_arguments,
)


def sinusoidal_encoding(t, d, *, offset=0, base=10000.0):
    """The ``(T, D)`` sinusoidal encodings as one outer product, float64.

    Examples
    --------
    >>> pe = sinusoidal_encoding(5, 6, offset=2)
    >>> bool(np.allclose(pe, sinusoidal_encoding(7, 6)[2:]))
    True
    """
    t, d, offset, base = check_positional_arguments(t, d, offset, base)
    positions = np.arange(offset, offset + t, dtype=np.float64)     # (T,)
    frequencies = base ** (-np.arange(0, d, 2) / d)                 # (D/2,)
    angles = np.outer(positions, frequencies)                       # (T, D/2)
    pe = np.empty((t, d))                                           # (T, D)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe


class PositionalEncodingCache(NamedTuple):
    shape: tuple
    dtype: np.dtype


def positional_encoding_forward(x, *, offset=0, base=10000.0):
    """``x + PE`` over the last two axes ``(T, D)``, dtype of ``x`` kept."""
    x = check_array("x", x, 2, "(..., T, D)", dtype=None)
    *_, t, d = x.shape
    pe = sinusoidal_encoding(t, d, offset=offset, base=base).astype(x.dtype)
    return x + pe, PositionalEncodingCache(x.shape, x.dtype)


def positional_encoding_backward(dout, cache):
    """Gradient ``dx = dout`` of ``positional_encoding_forward``."""
    dout = check_gradient("dout", dout, cache.shape, "(..., T, D)", dtype=cache.dtype)
    return dout.copy()
