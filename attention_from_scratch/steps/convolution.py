"""A causal 1-D convolution layer, for comparison with attention (Chapter 6).

``out_t = b + sum_j x_{t - j d} W_j`` for the ``K`` taps ``j = 0 .. K-1``
and dilation ``d``; positions before the start count as zeros. Every
output position is computed independently of the others (no sequential
steps), but one layer only sees ``(K - 1) d + 1`` positions: connecting
the two ends of a sequence takes a stack of layers (Vaswani et al. 2017,
Table 1).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_convolution_inputs, check_gradient


class ConvolutionCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    dilation: int


def convolution_forward(x, w, b, *, dilation=1):
    """Causal convolution over the position axis of ``x``.

    Parameters
    ----------
    x : (..., T, D_in) array_like
    w : (K, D_in, D_out) array_like
        Tap ``j`` multiplies the input ``j * dilation`` positions back.
    b : (D_out,) array_like
    dilation : int, keyword-only
        Distance between taps; ``K ** l`` in layer ``l`` of a dilated stack.

    Returns
    -------
    out : (..., T, D_out) ndarray, float64
    cache : ConvolutionCache

    See Also
    --------
    convolution_backward

    Examples
    --------
    >>> x = np.arange(5.0)[:, None]                  # (T, 1)
    >>> w = np.array([[[1.0]], [[10.0]]])            # x_t + 10 x_{t - dilation}
    >>> out, _ = convolution_forward(x, w, np.zeros(1), dilation=2)
    >>> shifted = np.concatenate([np.zeros(2), x[:-2, 0]])   # x_{t - 2}, zero before the start
    >>> bool(np.array_equal(out[:, 0], x[:, 0] + 10 * shifted))
    True
    """
    x, w, b, dilation = check_convolution_inputs(x, w, b, dilation, dtype=np.float64)
    out = np.empty(x.shape[:-1] + w.shape[-1:])               # (..., T, D_out)
    for t in range(x.shape[-2]):
        total = np.broadcast_to(b, x.shape[:-2] + b.shape)    # (..., D_out)
        for j in range(len(w)):
            source = t - j * dilation
            if source >= 0:                                   # before the start: zeros
                total = total + x[..., source, :] @ w[j]
        out[..., t, :] = total
    return out, ConvolutionCache(x, w, dilation)


def convolution_backward(dout, cache):
    """Gradients ``(dx, dw, db)`` of ``convolution_forward``.

    Input position ``s`` feeds outputs ``s, s + d, ..., s + (K-1) d``: its
    gradient is the sum of what those outputs send back.
    """
    x, w, dilation = cache
    dout = check_gradient("dout", dout, x.shape[:-1] + w.shape[-1:], "(..., T, D_out)",
                          dtype=np.float64)
    d_in, d_out = w.shape[1:]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for t in range(x.shape[-2]):
        dout_t = dout[..., t, :]                              # (..., D_out)
        for j in range(len(w)):
            source = t - j * dilation
            if source >= 0:
                dx[..., source, :] += dout_t @ w[j].T         # (..., D_in)
                dw[j] += x[..., source, :].reshape(-1, d_in).T @ dout_t.reshape(-1, d_out)
    db = dout.reshape(-1, d_out).sum(axis=0)                  # (D_out,)
    return dx, dw, db
