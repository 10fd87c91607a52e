"""A minimal recurrent layer, vectorised mirror of ``steps.recurrent``.

Everything that does not depend on the previous step is done in single
matmuls over all positions: ``x W_x + b`` before the loop, and the weight
gradients after it. What is left is the recurrence itself, which no
amount of vectorising removes: one loop step per position, each batched
over the leading axes. That loop is the ``O(T)`` sequential operations of
Vaswani et al. (2017, Table 1).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_recurrent_inputs


class RecurrentCache(NamedTuple):
    x: np.ndarray
    w_x: np.ndarray
    w_h: np.ndarray
    h: np.ndarray      # (..., T, Dh)


def recurrent_forward(x, w_x, w_h, b):
    """``h_t = tanh(x_t W_x + h_{t-1} W_h + b)``, ``h_{-1} = 0``; dtype preserved.

    Same contract as ``steps.recurrent.recurrent_forward``.

    Examples
    --------
    >>> x = np.ones((2, 5, 3), dtype=np.float32)
    >>> h, _ = recurrent_forward(x, np.eye(3, 4), np.eye(4), np.zeros(4))
    >>> h.dtype == np.float32 and h.shape == (2, 5, 4)
    True
    """
    x, w_x, w_h, b = check_recurrent_inputs(x, w_x, w_h, b, dtype=None)
    inputs = x @ w_x + b                                  # (..., T, Dh): all positions at once
    h = np.empty_like(inputs)
    h_prev = np.zeros_like(inputs[..., 0, :])             # (..., Dh)
    for t in range(x.shape[-2]):
        h_prev = np.tanh(inputs[..., t, :] + h_prev @ w_h)
        h[..., t, :] = h_prev
    return h, RecurrentCache(x, w_x, w_h, h)


def recurrent_backward(dh, cache):
    """Gradients ``(dx, dw_x, dw_h, db)`` of ``recurrent_forward``.

    Only ``dpre`` (the gradient of each step's pre-activation) needs the
    backward loop; ``dx`` and the weight gradients are then single matmuls.
    """
    x, w_x, w_h, h = cache
    dh = check_gradient("dh", dh, h.shape, "(..., T, Dh)", dtype=x.dtype)
    d_in, d_h = w_x.shape
    dpre = np.empty_like(h)                               # (..., T, Dh)
    dh_next = np.zeros_like(h[..., 0, :])                 # (..., Dh)
    for t in reversed(range(x.shape[-2])):
        dpre[..., t, :] = (dh[..., t, :] + dh_next) * (1 - h[..., t, :] ** 2)
        dh_next = dpre[..., t, :] @ w_h.T
    h_prev = np.concatenate([np.zeros_like(h[..., :1, :]), h[..., :-1, :]], axis=-2)
    dpre_rows = dpre.reshape(-1, d_h)                     # (N, Dh)
    dx = dpre @ w_x.T                                     # (..., T, D_in)
    dw_x = x.reshape(-1, d_in).T @ dpre_rows              # (D_in, Dh)
    dw_h = h_prev.reshape(-1, d_h).T @ dpre_rows          # (Dh, Dh)
    db = dpre_rows.sum(axis=0)                            # (Dh,)
    return dx, dw_x, dw_h, db
