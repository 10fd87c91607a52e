"""Linear attention with positive random features, vectorised mirror of ``steps.performer``.

Batched over the leading axes; dtype preserved.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_features_inputs, check_gradient


class PerformerCache(NamedTuple):
    q_scaled: np.ndarray
    k_scaled: np.ndarray
    v: np.ndarray
    features: np.ndarray
    q_feat: np.ndarray      # (..., T, M)
    k_feat: np.ndarray      # (..., S, M)
    kv: np.ndarray          # (..., M, Dv)
    k_sum: np.ndarray       # (..., M)
    out: np.ndarray
    den: np.ndarray         # (..., T)


def positive_features(x_scaled, features, *, axis):
    """``phi(x) = exp(x W^T - |x|^2 / 2 - c) / sqrt(M)``, ``(..., N, M)``; see ``steps``."""
    z = x_scaled @ features.T                                   # (..., N, M)
    z -= (x_scaled ** 2).sum(axis=-1, keepdims=True) / 2
    z -= z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= np.sqrt(len(features)).astype(z.dtype)
    return z


def positive_features_backward(dfeat, feat, x_scaled, features):
    """Gradient wrt ``x_scaled`` of :func:`positive_features` (``c`` held fixed)."""
    dz = dfeat * feat
    return dz @ features - dz.sum(axis=-1, keepdims=True) * x_scaled


def performer_attention_forward(q, k, v, *, features):
    """Random-feature estimate of attention; dtype of ``q`` preserved.

    Same contract as ``steps.performer.performer_attention_forward``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    >>> out, cache = performer_attention_forward(x, x, x, features=rng.normal(size=(8, 4)))
    >>> out.dtype == np.float32 and cache.kv.shape == (2, 8, 4)
    True
    """
    q, k, v, features = check_features_inputs(q, k, v, features, dtype=None)
    scale = q.dtype.type(q.shape[-1] ** -0.25)
    q_scaled, k_scaled = q * scale, k * scale
    q_feat = positive_features(q_scaled, features, axis=-1)           # (..., T, M)
    k_feat = positive_features(k_scaled, features, axis=(-2, -1))     # (..., S, M)
    kv = np.swapaxes(k_feat, -1, -2) @ v                              # (..., M, Dv)
    k_sum = k_feat.sum(axis=-2)                                       # (..., M)
    den = (q_feat @ k_sum[..., None])[..., 0]                         # (..., T)
    out = q_feat @ kv / den[..., None]                                # (..., T, Dv)
    return out, PerformerCache(q_scaled, k_scaled, v, features, q_feat, k_feat, kv, k_sum,
                               out, den)


def performer_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``performer_attention_forward``."""
    q_scaled, k_scaled, v, features, q_feat, k_feat, kv, k_sum, out, den = cache
    dout = check_gradient("dout", dout, out.shape, "(..., T, Dv)", dtype=out.dtype)
    scale = out.dtype.type(q_scaled.shape[-1] ** -0.25)
    dnum = dout / den[..., None]                                      # (..., T, Dv)
    dden = -(dout * out).sum(axis=-1) / den                           # (..., T)
    dq_feat = dnum @ np.swapaxes(kv, -1, -2) + dden[..., None] * k_sum[..., None, :]
    q_feat_t = np.swapaxes(q_feat, -1, -2)                            # (..., M, T)
    dkv = q_feat_t @ dnum                                             # (..., M, Dv)
    dk_sum = (q_feat_t @ dden[..., None])[..., 0]                     # (..., M)
    dk_feat = v @ np.swapaxes(dkv, -1, -2) + dk_sum[..., None, :]     # (..., S, M)
    dv = k_feat @ dkv                                                 # (..., S, Dv)
    dq = positive_features_backward(dq_feat, q_feat, q_scaled, features) * scale
    dk = positive_features_backward(dk_feat, k_feat, k_scaled, features) * scale
    return dq, dk, dv
