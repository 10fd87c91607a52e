"""A causal 1-D convolution layer, vectorised mirror of ``steps.convolution``.

One loop over the ``K`` taps (part of the weights' shape, not of the
data): tap ``j`` is a single matmul of the whole sequence, shifted
``j * dilation`` positions. Dtype preserved.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_convolution_inputs, check_gradient


class ConvolutionCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    dilation: int


def convolution_forward(x, w, b, *, dilation=1):
    """Causal convolution ``out_t = b + sum_j x_{t - j d} W_j``, dtype preserved.

    Same contract as ``steps.convolution.convolution_forward``.

    Examples
    --------
    >>> x = np.ones((2, 6, 3), dtype=np.float32)
    >>> out, _ = convolution_forward(x, np.ones((2, 3, 4)), np.zeros(4))
    >>> out.dtype == np.float32 and out[0, :2, 0].tolist() == [3.0, 6.0]
    True
    """
    x, w, b, dilation = check_convolution_inputs(x, w, b, dilation, dtype=None)
    t = x.shape[-2]
    out = np.zeros(x.shape[:-1] + w.shape[-1:], dtype=x.dtype) + b     # (..., T, D_out)
    for j in range(len(w)):
        shift = j * dilation
        if shift < t:
            out[..., shift:, :] += x[..., :t - shift, :] @ w[j]         # (..., T - shift, D_out)
    return out, ConvolutionCache(x, w, dilation)


def convolution_backward(dout, cache):
    """Gradients ``(dx, dw, db)`` of ``convolution_forward``."""
    x, w, dilation = cache
    dout = check_gradient("dout", dout, x.shape[:-1] + w.shape[-1:], "(..., T, D_out)",
                          dtype=x.dtype)
    t, (d_in, d_out) = x.shape[-2], w.shape[1:]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for j in range(len(w)):
        shift = j * dilation
        if shift < t:
            dx[..., :t - shift, :] += dout[..., shift:, :] @ w[j].T     # (..., T - shift, D_in)
            dw[j] = (x[..., :t - shift, :].reshape(-1, d_in).T
                     @ dout[..., shift:, :].reshape(-1, d_out))         # (D_in, D_out)
    db = dout.reshape(-1, d_out).sum(axis=0)                             # (D_out,)
    return dx, dw, db
