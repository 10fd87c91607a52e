"""Input checks shared by ``steps`` and ``core``.

Every public function checks its inputs here, so a wrong shape fails with
a message naming the argument, the shape expected and the shape given,
instead of broadcasting into a wrong answer.
"""

import numpy as np


def as_float_array(name, x, *, dtype=None):
    """Return ``x`` as a floating-point array, or raise ``TypeError``.

    Integers are converted exactly (to float64); booleans, complex numbers,
    strings and objects are refused. ``dtype`` forces the result's dtype;
    otherwise float32 and float64 are kept as they are.
    """
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind not in "fiu":
        raise TypeError(
            f"{name} must be a real numeric array, got dtype {arr.dtype}"
        )
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if kind in "iu" or arr.dtype not in (np.float32, np.float64):
        # float16 and integers compute in float64: no silent truncation.
        return arr.astype(np.float64)
    return arr


def check_ndim(name, x, min_ndim, layout):
    """Raise ``ValueError`` unless ``x`` has at least ``min_ndim`` axes."""
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have shape {layout}, got shape {x.shape}"
        )


def check_finite(name, x):
    """Raise ``ValueError`` if ``x`` holds NaN or infinity."""
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinity")


def check_axis(name, axis, ndim):
    """Return ``axis`` as a non-negative int, or raise ``ValueError``."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{name} must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} is out of range for an array with {ndim} axes"
        )
    return int(axis) % ndim


def check_same_shape(name, x, expected_shape, layout):
    """Raise ``ValueError`` unless ``x.shape == expected_shape``."""
    if x.shape != tuple(expected_shape):
        raise ValueError(
            f"{name} must have shape {layout} = {tuple(expected_shape)}, "
            f"got shape {x.shape}"
        )


def check_linear_inputs(x, w, b):
    """Check and convert the inputs of ``linear_forward``."""
    check_ndim("x", x, 1, "(..., D_in)")
    if w.ndim != 2:
        raise ValueError(f"w must have shape (D_in, D_out), got shape {w.shape}")
    d_in, d_out = w.shape
    if x.shape[-1] != d_in:
        raise ValueError(
            f"x must have shape (..., D_in) with D_in = {d_in} (rows of w), "
            f"got shape {x.shape}"
        )
    check_same_shape("b", b, (d_out,), "(D_out,)")


def check_query_key(q, k):
    """Check ``q`` is ``(..., T, Dk)`` and ``k`` is ``(..., S, Dk)``."""
    check_ndim("q", q, 2, "(..., T, Dk)")
    check_ndim("k", k, 2, "(..., S, Dk)")
    lead, d_k = q.shape[:-2], q.shape[-1]
    if k.shape[:-2] != lead or k.shape[-1] != d_k:
        raise ValueError(
            f"k must have shape (..., S, Dk) = {lead + ('S', d_k)} to match "
            f"q of shape {q.shape}, got shape {k.shape}"
        )


def check_weights_value(weights, v):
    """Check ``weights`` is ``(..., T, S)`` and ``v`` is ``(..., S, Dv)``."""
    check_ndim("weights", weights, 2, "(..., T, S)")
    lead_s = weights.shape[:-2] + weights.shape[-1:]
    check_ndim("v", v, 2, "(..., S, Dv)")
    if v.shape[:-1] != lead_s:
        raise ValueError(
            f"v must have shape (..., S, Dv) = {lead_s + ('Dv',)} to match "
            f"the keys, got shape {v.shape}"
        )


def check_attention_inputs(q, k, v, mask):
    """Check the shapes of ``attention_forward``'s inputs.

    Returns the mask as a boolean array (or ``None``).
    """
    check_query_key(q, k)
    scores_shape = q.shape[:-1] + k.shape[-2:-1]     # (..., T, S)
    check_ndim("v", v, 2, "(..., S, Dv)")
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v must have shape (..., S, Dv) = {k.shape[:-1] + ('Dv',)} to "
            f"match k of shape {k.shape}, got shape {v.shape}"
        )
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(
            f"mask must be a boolean array (True = may attend), "
            f"got dtype {mask.dtype}"
        )
    try:
        fits = np.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"mask must broadcast to the scores' shape (..., T, S) = "
            f"{scores_shape}, got shape {mask.shape}"
        )
    return mask


def check_softmax_input(x):
    """Refuse NaN and ``+inf``; ``-inf`` is allowed (a masked entry)."""
    if np.isnan(x).any() or np.isposinf(x).any():
        raise ValueError("x contains NaN or +inf; only -inf (masked) is allowed")
