"""The optimiser as pure functions (Chapter 7): Adam, clipping, schedule.

No object keeps hidden state: Adam's moments are an ``AdamState`` that
goes in and comes out of every step, so a checkpoint is the parameters
plus that state, and a step can be checked by hand.
"""

import math
from typing import NamedTuple

import numpy as np


class AdamState(NamedTuple):
    step: int    # steps taken so far
    m: dict      # first moment (running mean of gradients), per key
    v: dict      # second moment (running mean of squared gradients)


def adam_init(params):
    """Zero moments shaped like ``params``.

    Examples
    --------
    >>> state = adam_init({"w": np.ones((2, 3))})
    >>> state.step, state.m["w"].shape
    (0, (2, 3))
    """
    return AdamState(0, {k: np.zeros_like(p) for k, p in params.items()},
                     {k: np.zeros_like(p) for k, p in params.items()})


def adam_step(params, grads, state, *, lr, beta1=0.9, beta2=0.98, eps=1e-9):
    """One Adam step (Kingma & Ba 2015, algorithm 1); returns ``(params, state)``.

    Parameters
    ----------
    params, grads : dict of str -> ndarray
        The same keys and shapes.
    state : AdamState
    lr : float, keyword-only
        The step size for this step (from :func:`learning_rate`).
    beta1, beta2, eps : float, keyword-only
        ``0.9, 0.98, 1e-9``: Vaswani et al. (2017, section 5.3).

    Returns
    -------
    params : dict
        New arrays; the inputs are not modified.
    state : AdamState

    Notes
    -----
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``; both start at
    0, so early on they are too small by the factors ``1 - b1^t`` and
    ``1 - b2^t``, which bias correction divides out:
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.

    Examples
    --------
    The first step moves every entry by ``lr`` against its gradient's
    sign, whatever the gradient's size:

    >>> p = {"w": np.zeros(3)}
    >>> g = {"w": np.array([1e-3, -5.0, 2.0])}
    >>> p, s = adam_step(p, g, adam_init(p), lr=0.1)
    >>> np.round(p["w"], 6).tolist()
    [-0.1, 0.1, -0.1]
    """
    if set(grads) != set(params):
        raise ValueError(f"grads must have the keys of params; missing "
                         f"{sorted(set(params) - set(grads))}, unexpected "
                         f"{sorted(set(grads) - set(params))}")
    t = state.step + 1
    new_params, m, v = {}, {}, {}
    for key, p in params.items():
        g = grads[key]
        m[key] = beta1 * state.m[key] + (1 - beta1) * g
        v[key] = beta2 * state.v[key] + (1 - beta2) * g * g
        m_hat = m[key] / (1 - beta1 ** t)
        v_hat = v[key] / (1 - beta2 ** t)
        new_params[key] = (p - lr * m_hat / (np.sqrt(v_hat) + eps)).astype(p.dtype)
    return new_params, AdamState(t, m, v)


def global_norm(grads):
    """``sqrt(sum of every squared entry of every gradient)``."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_by_global_norm(grads, max_norm):
    """Scale every gradient by ``max_norm / norm`` when the norm exceeds it.

    One factor for all arrays keeps the update's direction (Pascanu et
    al. 2013); returns ``(grads, norm before clipping)``.

    Examples
    --------
    >>> g, norm = clip_by_global_norm({"a": np.array([3.0]), "b": np.array([4.0])}, 1.0)
    >>> norm, np.round(g["a"], 6).tolist(), np.round(g["b"], 6).tolist()
    (5.0, [0.6], [0.8])
    """
    norm = global_norm(grads)
    if norm <= max_norm:
        return grads, norm
    factor = max_norm / norm
    return {k: (g * factor).astype(g.dtype) for k, g in grads.items()}, norm


def learning_rate(step, *, peak, warmup, total, final=0.0):
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay.

    ``step`` counts from 0; at ``total`` the rate has decayed to ``final``.

    Examples
    --------
    >>> [round(learning_rate(s, peak=1.0, warmup=2, total=6), 3) for s in range(7)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * progress))
