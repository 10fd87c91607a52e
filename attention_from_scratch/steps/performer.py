"""Linear attention with positive random features (Chapter 6).

Performer (Choromanski et al., 2021, "Rethinking Attention with
Performers") replaces ``exp(q . k / sqrt(Dk))`` by a dot product of
feature vectors, ``phi(q) . phi(k)``, whose *expectation* is exactly that
exponential:

``phi(x) = exp(W x - |x|^2 / 2) / sqrt(M)`` with ``M`` Gaussian rows ``W``
and ``x`` scaled by ``Dk ** -1/4``, since
``E[exp(w . a) exp(w . b)] = exp(|a + b|^2 / 2)``.

Then ``out_i = phi(q_i) (sum_j phi(k_j)^T v_j) / (phi(q_i) . sum_j phi(k_j))``:
the keys and values are summarised once in an ``(M, Dv)`` matrix, so the
work is ``O((T + S) M D)``, linear in the length, and no ``(T, S)`` matrix
exists. The price is randomness: the output is an estimate.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_features_inputs, check_gradient


class PerformerCache(NamedTuple):
    q_scaled: np.ndarray    # (..., T, Dk) q / Dk^(1/4)
    k_scaled: np.ndarray    # (..., S, Dk)
    v: np.ndarray
    features: np.ndarray    # (M, Dk)
    q_feat: np.ndarray      # (..., T, M) phi(q)
    k_feat: np.ndarray      # (..., S, M) phi(k)
    kv: np.ndarray          # (..., M, Dv) sum_j phi(k_j)^T v_j
    k_sum: np.ndarray       # (..., M) sum_j phi(k_j)
    out: np.ndarray         # (..., T, Dv)
    den: np.ndarray         # (..., T) the estimated softmax denominators


def positive_features(x_scaled, features, *, axis):
    """``phi(x) = exp(x W^T - |x|^2 / 2 - c) / sqrt(M)``, ``(N, M)``.

    ``c`` is the maximum of the exponent over ``axis`` (-1: per row, for
    queries; ``(-2, -1)``: over all rows, for keys). A constant per query,
    or one for all keys, cancels between the numerator and denominator,
    so it changes nothing but keeps ``exp`` from overflowing.
    """
    z = x_scaled @ features.T - (x_scaled ** 2).sum(axis=-1, keepdims=True) / 2   # (N, M)
    z = z - z.max(axis=axis, keepdims=True)
    return np.exp(z) / np.sqrt(len(features))


def positive_features_backward(dfeat, feat, x_scaled, features):
    """Gradient wrt ``x_scaled`` of :func:`positive_features` (``c`` held fixed)."""
    dz = dfeat * feat                                        # through exp
    return dz @ features - dz.sum(axis=-1, keepdims=True) * x_scaled


def performer_attention_forward(q, k, v, *, features):
    """Random-feature estimate of ``softmax(q k^T / sqrt(Dk)) v``.

    Parameters
    ----------
    q : (..., T, Dk) array_like
    k : (..., S, Dk) array_like
    v : (..., S, Dv) array_like
    features : (M, Dk) array_like, keyword-only
        Random directions ``W``, from
        ``attention_from_scratch.measure.approximation.random_features``. Drawn
        once and held fixed: not differentiated.

    Returns
    -------
    out : (..., T, Dv) ndarray, float64
    cache : PerformerCache

    See Also
    --------
    performer_attention_backward

    Examples
    --------
    >>> from attention_from_scratch.measure.approximation import random_features
    >>> from attention_from_scratch.steps.attention import attention_forward
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (0.5 * rng.normal(size=(n, 2)) for n in (3, 5, 5))
    >>> w = random_features(20000, 2, rng=rng)
    >>> out, _ = performer_attention_forward(q, k, v, features=w)
    >>> bool(np.allclose(out, attention_forward(q, k, v)[0], atol=0.02))
    True
    """
    q, k, v, features = check_features_inputs(q, k, v, features, dtype=np.float64)
    scale = q.shape[-1] ** -0.25                 # q . k / sqrt(Dk) = (q scale) . (k scale)
    q_scaled, k_scaled = q * scale, k * scale
    m = len(features)
    q_feat = np.empty(q.shape[:-1] + (m,))                        # (..., T, M)
    k_feat = np.empty(k.shape[:-1] + (m,))                        # (..., S, M)
    kv = np.empty(v.shape[:-2] + (m, v.shape[-1]))                # (..., M, Dv)
    k_sum = np.empty(v.shape[:-2] + (m,))                         # (..., M)
    out = np.empty(q.shape[:-1] + v.shape[-1:])                   # (..., T, Dv)
    den = np.empty(q.shape[:-1])                                  # (..., T)
    for idx in np.ndindex(q.shape[:-2]):
        q_feat[idx] = positive_features(q_scaled[idx], features, axis=-1)
        k_feat[idx] = positive_features(k_scaled[idx], features, axis=(-2, -1))
        kv[idx] = k_feat[idx].T @ v[idx]          # keys and values summarised once: O(S M Dv)
        k_sum[idx] = k_feat[idx].sum(axis=0)
        den[idx] = q_feat[idx] @ k_sum[idx]       # (T,) > 0: all features are positive
        out[idx] = q_feat[idx] @ kv[idx] / den[idx][:, None]       # (T, Dv)
    return out, PerformerCache(q_scaled, k_scaled, v, features, q_feat, k_feat, kv, k_sum,
                               out, den)


def performer_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``performer_attention_forward``.

    The forward was ``out = num / den`` with ``num = phi(q) kv`` and
    ``den = phi(q) k_sum``; read bottom-up.
    """
    q_scaled, k_scaled, v, features, q_feat, k_feat, kv, k_sum, out, den = cache
    dout = check_gradient("dout", dout, out.shape, "(..., T, Dv)", dtype=np.float64)
    scale = q_scaled.shape[-1] ** -0.25
    dq, dk, dv = np.empty_like(q_scaled), np.empty_like(k_scaled), np.empty_like(v)
    for idx in np.ndindex(q_scaled.shape[:-2]):
        dnum = dout[idx] / den[idx][:, None]                        # (T, Dv)
        dden = -(dout[idx] * out[idx]).sum(axis=-1) / den[idx]      # (T,)
        # phi(q) feeds both num and den: its gradients add
        dq_feat = dnum @ kv[idx].T + np.outer(dden, k_sum[idx])     # (T, M)
        dkv = q_feat[idx].T @ dnum                                  # (M, Dv)
        dk_sum = q_feat[idx].T @ dden                               # (M,)
        dk_feat = v[idx] @ dkv.T + dk_sum                           # (S, M): k_sum sums rows
        dv[idx] = k_feat[idx] @ dkv                                 # (S, Dv)
        dq[idx] = positive_features_backward(dq_feat, q_feat[idx], q_scaled[idx],
                                             features) * scale
        dk[idx] = positive_features_backward(dk_feat, k_feat[idx], k_scaled[idx],
                                             features) * scale
    return dq, dk, dv
