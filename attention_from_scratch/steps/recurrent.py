"""A minimal recurrent layer, for comparison with attention (Chapter 6).

The Elman recurrence ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)`` with
``h_{-1} = 0``: one hidden state carried from position to position. Each
step needs the previous one, so the loop over ``t`` cannot run in
parallel; Vaswani et al. (2017, Table 1) count ``O(T)`` sequential
operations, and the path from ``x_0`` to ``h_{T-1}`` crosses ``T - 1``
recurrence steps.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_recurrent_inputs


class RecurrentCache(NamedTuple):
    x: np.ndarray
    w_x: np.ndarray
    w_h: np.ndarray
    h: np.ndarray      # (..., T, Dh): every hidden state; tanh' = 1 - h^2


def recurrent_forward(x, w_x, w_h, b):
    """Run the recurrence over the positions of ``x``.

    Parameters
    ----------
    x : (..., T, D_in) array_like
    w_x : (D_in, Dh) array_like
        Input-to-hidden weights.
    w_h : (Dh, Dh) array_like
        Hidden-to-hidden weights: the recurrence.
    b : (Dh,) array_like

    Returns
    -------
    h : (..., T, Dh) ndarray, float64
        The hidden state after each position.
    cache : RecurrentCache

    See Also
    --------
    recurrent_backward

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, w_x = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    >>> w_h, b = rng.normal(size=(2, 2)), np.zeros(2)
    >>> h, cache = recurrent_forward(x, w_x, w_h, b)
    >>> h_first_two, _ = recurrent_forward(x[:2], w_x, w_h, b)
    >>> bool(np.array_equal(h[:2], h_first_two))   # the future never changes the past
    True
    """
    x, w_x, w_h, b = check_recurrent_inputs(x, w_x, w_h, b, dtype=np.float64)
    t_len, d_h = x.shape[-2], w_x.shape[1]
    h = np.empty(x.shape[:-1] + (d_h,))                      # (..., T, Dh)
    for idx in np.ndindex(x.shape[:-2]):
        h_prev = np.zeros(d_h)
        for t in range(t_len):                               # step t waits for step t - 1
            h_prev = np.tanh(x[idx][t] @ w_x + h_prev @ w_h + b)
            h[idx][t] = h_prev
    return h, RecurrentCache(x, w_x, w_h, h)


def recurrent_backward(dh, cache):
    """Gradients ``(dx, dw_x, dw_h, db)`` of ``recurrent_forward``.

    Backpropagation through time: the loop runs backwards, and ``h_t``
    receives gradient by two paths, its own output ``dh_t`` and the next
    step through ``W_h``, so the two add.
    """
    x, w_x, w_h, h = cache
    dh = check_gradient("dh", dh, h.shape, "(..., T, Dh)", dtype=np.float64)
    dx = np.empty_like(x)
    dw_x, dw_h, db = np.zeros_like(w_x), np.zeros_like(w_h), np.zeros(w_x.shape[1])
    for idx in np.ndindex(x.shape[:-2]):
        dh_next = np.zeros(w_x.shape[1])                     # from step t + 1 into h_t
        for t in reversed(range(x.shape[-2])):
            dpre = (dh[idx][t] + dh_next) * (1.0 - h[idx][t] ** 2)    # through tanh
            h_prev = h[idx][t - 1] if t > 0 else np.zeros_like(dpre)
            dx[idx][t] = dpre @ w_x.T
            dw_x += np.outer(x[idx][t], dpre)               # the same weights at every step
            dw_h += np.outer(h_prev, dpre)
            db += dpre
            dh_next = dpre @ w_h.T
    return dx, dw_x, dw_h, db
