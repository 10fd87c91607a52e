"""Input checks shared by ``steps`` and ``core``: one call per public pair.

A public forward checks and converts all its inputs in one call at its
top, ``x, w, b = check_linear_inputs(x, w, b, dtype=...)``, and a
backward its upstream gradient in one, ``dout = check_gradient(...)``.
A wrong shape fails with a message naming the argument, the shape
expected and the shape given, instead of broadcasting into a wrong
answer.

``dtype``: ``steps`` passes ``np.float64``; ``core`` passes ``None``,
which keeps the first array's float32 or float64 and converts the other
arrays to it.

Attention needs a non-empty sequence: :func:`check_positions` is the
one rule, called by every check of an attention's (or a recurrence's)
inputs. Position-wise layers (linear, layer norm, feed-forward,
positional encoding, splitting heads, embedding) take empty arrays and
return empty arrays, in both mirrors.

The maths of a pair lives in a private body (``_linear_forward``) that
checks nothing; a pair that calls another pair, after its own one check,
calls that body, so data is checked once, at the door.
"""

import numpy as np

ACTIVATION_NAMES = ("relu", "gelu")


def _is_sequence(item):
    return isinstance(item, list | tuple) or (isinstance(item, np.ndarray) and item.ndim > 0)


def _ragged_axis(x):
    """``(axis, lengths)``: the first axis along which the nested sequence
    ``x`` has items of different lengths (``None`` for a number among
    sequences), and those lengths; ``None`` if there is no such axis."""
    level, axis = [x], 0
    while True:
        lengths = [len(item) if _is_sequence(item) else None for item in level]
        if all(n is None for n in lengths):
            return None
        if len(set(lengths)) > 1:
            return axis, lengths
        level, axis = [part for item in level for part in item], axis + 1


def _ragged_message(name, x, layout):
    """Why NumPy could not make one array of ``x``, or None if not known."""
    expected = f"an array of shape {layout}" if layout else "an array"
    if hasattr(x, "_fields"):
        return (f"{name} must be {expected}, got a {type(x).__name__}, a forward's "
                "cache: pass the array it was computed from")
    if isinstance(x, tuple) and len(x) == 2 and hasattr(x[1], "_fields"):
        return (f"{name} must be {expected}, got a pair (out, cache), as a forward "
                "returns: unpack it, e.g. `out, _ = ...`, and pass out")
    found = _ragged_axis(x)
    if found is None:
        return None
    axis, lengths = found
    if None in lengths:
        what = "it mixes numbers and sequences"
    else:
        distinct = list(dict.fromkeys(lengths))
        what = ("its rows have different lengths ("
                + ", ".join(str(n) for n in distinct[:4]) + (", ..." if distinct[4:] else "")
                + ")")
    return (f"{name} must be {expected}, got a ragged nested sequence: along axis {axis} "
            f"{what}, so it is not an array")


def as_array(name, x, *, layout=None):
    """``np.asarray(x)``, or a ``ValueError`` naming ``name`` if ``x`` is ragged.

    NumPy refuses a nested list with rows of different lengths in words
    about "inhomogeneous shapes"; this says which argument it was, along
    which axis its rows differ, and the shape ``layout`` expected. A
    forward's ``(out, cache)`` pair, passed whole, is named as such.

    Examples
    --------
    >>> as_array("x", [[1.0, 2.0], [3.0]], layout="(T, D)")
    Traceback (most recent call last):
    ...
    ValueError: x must be an array of shape (T, D), got a ragged nested
    sequence: along axis 1 its rows have different lengths (2, 1), so it
    is not an array
    """
    try:
        return np.asarray(x)
    except ValueError:
        message = _ragged_message(name, x, layout)
        if message is None:
            raise
    raise ValueError(message)


def as_float_array(name, x, *, dtype=None, layout=None):
    """Return ``x`` as a floating-point array, or raise ``TypeError``.

    Integers are converted exactly (to float64); booleans, complex numbers,
    strings and objects are refused. ``dtype`` forces the result's dtype;
    otherwise float32 and float64 are kept as they are. A ragged ``x`` is
    a ``ValueError`` that names the shape ``layout`` expected
    (:func:`as_array`).
    """
    arr = as_array(name, x, layout=layout)
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


def _as_float_arrays(named, dtype):
    """Convert ``[(name, x, layout), ...]``: the first to ``dtype`` (or
    float32 or float64 as given), the others to the first one's dtype."""
    (first_name, first, first_layout), *rest = named
    first = as_float_array(first_name, first, dtype=dtype, layout=first_layout)
    return [first] + [as_float_array(name, x, dtype=first.dtype, layout=layout)
                      for name, x, layout in rest]


def check_ndim(name, x, min_ndim, layout):
    """Raise ``ValueError`` unless ``x`` has at least ``min_ndim`` axes."""
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have shape {layout}, got shape {x.shape}"
        )


def check_positions(name, x, letter, *, axis=-2):
    """Raise ``ValueError`` unless the sequence ``x`` has at least one
    position along ``axis`` (``letter``: ``T``, ``S``...) and no empty
    leading axis.

    The one rule for empty sequences. Attention over zero keys has no
    softmax to take (its weights would be a division by zero), and over
    zero queries nothing to compute; either is almost always a bug
    upstream (an empty batch of tokens, a slice off by one), so it is
    refused at the door rather than answered with an empty array.

    An empty leading (batch) axis is refused too: an empty batch has
    nothing to attend with, and refusing it is one line here, where
    returning empty outputs would need every vectorised body (whose
    reshapes infer an axis with ``-1``, undefined when the size is 0)
    and its backward to handle it.
    """
    if x.shape[axis] == 0:
        raise ValueError(
            f"{name} must have at least one position ({letter} >= 1), got shape {x.shape}"
        )
    if 0 in x.shape[:axis]:
        raise ValueError(
            f"{name} must have no empty leading (batch) axis, got shape {x.shape}"
        )


def check_array(name, x, min_ndim, layout, *, dtype):
    """``x`` converted, with at least ``min_ndim`` axes (``layout`` in messages)."""
    x = as_float_array(name, x, dtype=dtype, layout=layout)
    check_ndim(name, x, min_ndim, layout)
    return x


def check_same_shape(name, x, expected_shape, layout):
    """Raise ``ValueError`` unless ``x.shape == expected_shape``."""
    if x.shape != tuple(expected_shape):
        raise ValueError(
            f"{name} must have shape {layout} = {tuple(expected_shape)}, "
            f"got shape {x.shape}"
        )


def check_gradient(name, d, expected_shape, layout, *, dtype):
    """An upstream gradient converted to ``dtype``, of the forward output's shape."""
    d = as_float_array(name, d, dtype=dtype, layout=layout)
    check_same_shape(name, d, expected_shape, layout)
    return d


def check_int(name, value, *, minimum=1):
    """Return ``value`` as an int ``>= minimum`` (a count, a size, a window).

    A float, even a whole one, is a ``TypeError``: ``T = 2.0`` is more
    likely a bug upstream than a length.
    """
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_broadcasts_to_scores(name, x, scores_shape, layout, given):
    """Raise ``ValueError`` unless ``x`` broadcasts to ``scores_shape``
    without growing it; ``given`` is the caller's shape, if reshaped."""
    try:
        fits = np.broadcast_shapes(x.shape, scores_shape) == scores_shape
    except ValueError:
        fits = False
    if not fits:
        per_sequence = given is not None and len(given) > 2 and tuple(given) != x.shape
        read_as = (f", read as {x.shape}: one per sequence, the same for every head"
                   if per_sequence else "")
        raise ValueError(
            f"{name} must broadcast to the scores' shape {layout} = {scores_shape}, "
            f"got shape {x.shape if given is None else given}{read_as}"
        )


def check_mask(mask, scores_shape, layout, *, given=None):
    """A boolean mask that broadcasts to ``scores_shape``, or an error.

    The one broadcast rule for every mask; ``given`` is the shape the
    caller passed, when the mask was reshaped before this check.
    """
    mask = as_array("mask", mask, layout=layout)
    if mask.dtype != np.bool_:
        raise TypeError(
            f"mask must be a boolean array (True = may attend), got dtype {mask.dtype}"
        )
    _check_broadcasts_to_scores("mask", mask, scores_shape, layout, given)
    return mask


def check_bias(bias, scores_shape, layout, *, dtype, given=None):
    """A float bias that broadcasts to ``scores_shape``, or an error.

    The bias is added to the scores, so it must be finite: ``-inf`` is
    what a mask is for, and ``+inf`` or NaN would give NaN weights.
    ``given`` is the shape the caller passed, when it was reshaped.
    """
    bias = as_float_array("bias", bias, dtype=dtype, layout=layout)
    _check_broadcasts_to_scores("bias", bias, scores_shape, layout, given)
    if not np.isfinite(bias).all():
        raise ValueError("bias must be finite (use mask to forbid a key), got NaN or inf")
    return bias


def check_sequence_pair(name, x, other_name, other, *, width, dtype):
    """``x (..., T, W)`` and ``other (..., S, W)``, converted.

    The two sequences may differ in length only: same leading axes, same
    width ``W`` (named ``width`` in the messages), nothing broadcast.
    """
    x, other = _as_float_arrays([(name, x, f"(..., T, {width})"),
                                 (other_name, other, f"(..., S, {width})")], dtype)
    check_ndim(name, x, 2, f"(..., T, {width})")
    check_ndim(other_name, other, 2, f"(..., S, {width})")
    check_positions(name, x, "T")
    check_positions(other_name, other, "S")
    lead, w = x.shape[:-2], x.shape[-1]
    if other.shape[:-2] != lead or other.shape[-1] != w:
        raise ValueError(
            f"{other_name} must have shape (..., S, {width}) = {lead + ('S', w)} to "
            f"match {name} of shape {x.shape}, got shape {other.shape}"
        )
    return x, other


def check_softmax_inputs(x, axis, *, dtype):
    """``x`` converted, free of NaN and ``+inf`` (``-inf`` is a masked
    entry), and ``axis`` as a non-negative int."""
    x = as_float_array("x", x, dtype=dtype)
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for an array with {x.ndim} axes")
    if x.shape[axis] == 0:
        raise ValueError(f"x must have at least one entry along axis={axis} (a softmax "
                         f"over nothing has no value), got shape {x.shape}")
    if np.isnan(x).any() or np.isposinf(x).any():
        raise ValueError("x contains NaN or +inf; only -inf (masked) is allowed")
    return x, int(axis) % x.ndim


def check_linear_inputs(x, w, b, *, dtype):
    """``x (..., D_in)``, ``w (D_in, D_out)``, ``b (D_out,)``, converted."""
    x, w, b = _as_float_arrays([("x", x, "(..., D_in)"), ("w", w, "(D_in, D_out)"),
                                ("b", b, "(D_out,)")], dtype)
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
    return x, w, b


def check_weights_value(weights, v, *, dtype):
    """``weights (..., T, S)`` and ``v (..., S, Dv)``, converted."""
    weights, v = _as_float_arrays([("weights", weights, "(..., T, S)"),
                                   ("v", v, "(..., S, Dv)")], dtype)
    check_ndim("weights", weights, 2, "(..., T, S)")
    check_positions("weights", weights, "T")
    check_positions("weights", weights, "S", axis=-1)
    lead_s = weights.shape[:-2] + weights.shape[-1:]
    check_ndim("v", v, 2, "(..., S, Dv)")
    if v.shape[:-1] != lead_s:
        raise ValueError(
            f"v must have shape (..., S, Dv) = {lead_s + ('Dv',)} to match "
            f"the keys, got shape {v.shape}"
        )
    return weights, v


def check_attention_inputs(q, k, v, mask, *, dtype):
    """``q (..., T, Dk)``, ``k (..., S, Dk)``, ``v (..., S, Dv)``, converted,
    and the mask as a boolean array broadcastable to ``(..., T, S)`` (or
    ``None``)."""
    q, k = check_sequence_pair("q", q, "k", k, width="Dk", dtype=dtype)
    v = check_array("v", v, 2, "(..., S, Dv)", dtype=q.dtype)
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v must have shape (..., S, Dv) = {k.shape[:-1] + ('Dv',)} to "
            f"match k of shape {k.shape}, got shape {v.shape}"
        )
    if mask is not None:
        mask = check_mask(mask, q.shape[:-1] + k.shape[-2:-1], "(..., T, S)")
    return q, k, v, mask


def check_key_lengths(key_lengths, lead, s):
    """``None``, or the valid keys per sequence as an int array broadcast
    (a view) to the leading axes ``lead`` of ``q``.

    Its shape must be a leading *prefix* of ``lead``: ``(B,)`` for ``q``
    of shape ``(B, H, T, Dk)`` is one length per batch row, for all its
    heads. That is the opposite of NumPy's broadcasting, which aligns
    shapes from the right, so a ``(B,)`` array is never taken for
    ``(H,)`` -- not even when ``B == H``.
    """
    if key_lengths is None:
        return None
    lengths = as_array("key_lengths", key_lengths, layout="(...,)")
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"key_lengths must be integers, got dtype {lengths.dtype}")
    prefixes = [lead[:n] for n in range(len(lead) + 1)]
    if lengths.shape not in prefixes:
        raise ValueError(
            f"key_lengths must have shape {' or '.join(str(p) for p in prefixes)} (a "
            f"leading prefix of q's leading axes {lead}), got shape {lengths.shape}"
        )
    if np.any(lengths < 0) or np.any(lengths > s):
        raise ValueError(f"key_lengths must lie in [0, S] = [0, {s}], got {lengths.tolist()}")
    lengths = lengths.reshape(lengths.shape + (1,) * (len(lead) - lengths.ndim))
    return np.broadcast_to(lengths, lead)


def check_flash_attention_inputs(q, k, v, mask, causal, key_lengths, block_size, *, dtype):
    """``check_attention_inputs``, plus ``causal`` (a bool), ``key_lengths``
    (:func:`check_key_lengths`) and ``block_size`` (an int >= 1)."""
    q, k, v, mask = check_attention_inputs(q, k, v, mask, dtype=dtype)
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__} {causal!r}")
    key_lengths = check_key_lengths(key_lengths, q.shape[:-2], k.shape[-2])
    return q, k, v, mask, bool(causal), key_lengths, check_int("block_size", block_size)


def check_attention_bias(bias, q, k):
    """``None``, or the bias of ``attention_forward`` as a finite array of
    ``q``'s dtype broadcastable to the scores ``(..., T, S)``."""
    if bias is None:
        return None
    return check_bias(bias, q.shape[:-1] + k.shape[-2:-1], "(..., T, S)", dtype=q.dtype)


def check_attention_forward_inputs(q, k, v, mask, bias, *, dtype):
    """``check_attention_inputs`` and ``check_attention_bias`` in one call."""
    q, k, v, mask = check_attention_inputs(q, k, v, mask, dtype=dtype)
    return q, k, v, mask, check_attention_bias(bias, q, k)


def check_layer_norm_inputs(x, gamma, beta, eps, *, dtype, name="x"):
    """``x (..., D)`` (``name`` in messages), ``gamma (D,)``, ``beta (D,)``
    converted; ``eps`` a positive float."""
    x, gamma, beta = _as_float_arrays([(name, x, "(..., D)"), ("gamma", gamma, "(D,)"),
                                       ("beta", beta, "(D,)")], dtype)
    check_ndim(name, x, 1, "(..., D)")
    check_same_shape("gamma", gamma, x.shape[-1:], "(D,)")
    check_same_shape("beta", beta, x.shape[-1:], "(D,)")
    if not np.isscalar(eps) or not np.isreal(eps) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return x, gamma, beta, float(eps)


def check_params(name, params, layouts, *, sizes, dtype):
    """Check a parameter dict against symbolic shapes; return it converted.

    Parameters
    ----------
    name : str
        How the dict is called in messages (``"params"``).
    params : dict of array_like
    layouts : dict of tuple of str
        Key -> shape letters, e.g. ``{"w_1": ("D", "F"), "b_1": ("F",)}``.
        A letter not in ``sizes`` is fixed by the first array that has it.
    sizes : dict of int
        Letters already known, e.g. ``{"D": x.shape[-1]}``.
    dtype : numpy dtype
        Every array is converted to it.

    Returns
    -------
    checked : dict of ndarray
        A new dict; the caller's arrays are never modified.

    A missing, unexpected or mis-shaped key raises ``ValueError`` naming
    the key; a non-dict raises ``TypeError``.
    """
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict of arrays, got {type(params).__name__}")
    missing = [key for key in layouts if key not in params]
    unexpected = sorted(key for key in params if key not in layouts)
    if missing or unexpected:
        problem = (f"is missing key {missing[0]!r}" if missing
                   else f"has unexpected key {unexpected[0]!r}")
        raise ValueError(f"{name} {problem}; expected keys {sorted(layouts)}")
    sizes = dict(sizes)
    checked = {}
    for key, letters in layouts.items():
        label = f"{name}[{key!r}]"
        layout = f"({', '.join(letters)}{',' if len(letters) == 1 else ''})"
        array = as_float_array(label, params[key], dtype=dtype, layout=layout)
        if array.ndim == len(letters):
            for letter, size in zip(letters, array.shape, strict=True):
                sizes.setdefault(letter, size)
        expected = tuple(sizes.get(letter, letter) for letter in letters)
        check_same_shape(label, array, expected, layout)
        checked[key] = array
    return checked


def check_choice(name, value, choices):
    """Refuse ``value`` unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_norm(norm):
    """Refuse anything but ``"post"`` or ``"pre"``."""
    if norm not in ("post", "pre"):
        raise ValueError(f'norm must be "post" or "pre", got {norm!r}')


def check_self_attention_inputs(x, params, mask, *, layouts, dtype):
    """``x (..., T, D)`` and ``params`` (``layouts``, ``D`` the width of
    ``x``) converted, and the mask boolean, broadcastable to ``(..., T, T)``."""
    x = check_array("x", x, 2, "(..., T, D)", dtype=dtype)
    check_positions("x", x, "T")
    params = check_params("params", params, layouts, sizes={"D": x.shape[-1]}, dtype=x.dtype)
    if mask is not None:
        mask = check_mask(mask, x.shape[:-1] + x.shape[-2:-1], "(..., T, S)")
    return x, params, mask


def check_feed_forward_inputs(x, params, activation, *, layouts, dtype):
    """``x (..., D)`` and ``params`` converted; ``activation`` a known name."""
    x = check_array("x", x, 1, "(..., D)", dtype=dtype)
    check_choice("activation", activation, ACTIVATION_NAMES)
    return x, check_params("params", params, layouts, sizes={"D": x.shape[-1]},
                           dtype=x.dtype)


def check_residual_inputs(u, gamma, beta, norm, sublayer, *, dtype):
    """``u (..., D)``, ``gamma`` and ``beta`` ``(D,)`` converted as for the
    layer norm, the norm's name, and ``sublayer`` wrapped so that an output
    not shaped like its input is refused."""
    u, gamma, beta, _ = check_layer_norm_inputs(u, gamma, beta, 1.0, dtype=dtype, name="u")
    check_norm(norm)

    def shape_checked(v):
        result = sublayer(v)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError("sublayer must return a pair (out, cache), as a forward does, "
                            f"got {type(result).__name__}"
                            + (f" of shape {result.shape}" if hasattr(result, "shape") else ""))
        s, cache = result
        check_same_shape("the sub-layer's output", s, v.shape, "(..., T, D)")
        return s, cache

    return u, gamma, beta, shape_checked


def check_positional_arguments(t, d, offset, base):
    """Check the arguments of ``sinusoidal_encoding``; return them cleaned."""
    t = check_int("t", t, minimum=0)
    d = check_int("d", d, minimum=2)
    if d % 2:
        raise ValueError(
            f"d must be even: the encoding has one sine and one cosine per "
            f"frequency, got d = {d}"
        )
    offset = check_int("offset", offset, minimum=0)
    if not np.isscalar(base) or not np.isreal(base) or not base > 1:
        raise ValueError(f"base must be a number > 1, got {base!r}")
    return t, d, offset, float(base)


def check_split_heads_inputs(x, n_heads, *, dtype):
    """``x (..., T, D)`` converted and ``n_heads``, which must divide ``D``."""
    x = check_array("x", x, 2, "(..., T, D)", dtype=dtype)
    n_heads = check_int("n_heads", n_heads)
    if x.shape[-1] % n_heads:
        raise ValueError(f"n_heads = {n_heads} must divide D = {x.shape[-1]}")
    return x, n_heads


def check_width_of_params(name, x, params, layouts):
    """Raise ``ValueError`` if the width of ``x`` (array_like) is not the
    ``D`` that ``params`` were made for (read off the first ``(D, ...)``
    array).

    The parameters define the layer, so a mismatch is blamed on ``x``,
    before anything that depends on its width (``n_heads`` dividing it)
    can give a message about something else. Malformed ``params`` are
    left to :func:`check_params`.
    """
    key = next((key for key, letters in layouts.items() if letters[0] == "D"), None)
    try:
        if not isinstance(params, dict) or key is None or np.ndim(x) < 2:
            return                            # left to the checks of params and x
        shape = np.shape(params.get(key))
    except ValueError:                        # ragged: left to the conversion's message
        return
    if len(shape) == len(layouts[key]) and shape[0] != np.shape(x)[-1]:
        raise ValueError(
            f"{name} must have width D = {shape[0]}, the width params were made for "
            f"(params[{key!r}] has shape {shape}), got shape {np.shape(x)}"
        )


def check_heads(n_heads, d_model):
    """``n_heads`` as an int that divides the model width ``d_model``."""
    n_heads = check_int("n_heads", n_heads)
    if d_model % n_heads:
        raise ValueError(
            f"n_heads = {n_heads} must divide the model width D = {d_model}: "
            f"each head gets Dh = D / H columns"
        )
    return n_heads


def _with_head_axis(name, a, lead, n_heads, t, s, *, dtype=None, per_sequence=False):
    """A multi-head mask (``dtype`` None) or bias, with a head axis.

    It may be ``(T, S)`` (shared by every sequence and head),
    ``(..., T, S)`` (one per sequence, shared by the heads) or
    ``(..., H, T, S)`` (one per head), with size-1 axes where shared. Any
    other number of axes is refused, so a batch axis can never broadcast
    onto the heads. A ``(..., T, S)`` one whose axis before ``T`` has size
    ``H``, where the batch's last axis has size ``H`` too, could be
    either: it is refused with the two shapes that say which, unless
    ``per_sequence`` (the blocks' masks are one per sequence).
    """
    if a is None:
        return None
    a = as_array(name, a, layout="(T, S), (..., T, S) or (..., H, T, S)")
    given = a.shape
    scores_shape = lead + (n_heads, t, s)                           # (..., H, T, S)
    if len(given) not in (2, len(lead) + 2, len(lead) + 3):
        raise ValueError(
            f"{name} must have shape (T, S), (..., T, S) or (..., H, T, S) with "
            f"(..., H, T, S) = {scores_shape}, got shape {given}"
        )
    if (len(given) == len(lead) + 2 and lead and n_heads > 1 and not per_sequence
            and given[-3] == lead[-1] == n_heads):
        raise ValueError(
            f"{name} of shape {given} is ambiguous: its axis before (T, S) has size "
            f"{n_heads}, both the batch's last axis and H; pass "
            f"{lead + (1, t, s)} for one {name} per sequence or "
            f"{lead[:-1] + (1, n_heads, t, s)} for one {name} per head"
        )
    if dtype is not None:
        a = as_float_array(name, a, dtype=dtype)
    if a.ndim < len(lead) + 3:
        a = a[..., None, :, :]            # the same for every head
    if dtype is None:
        return check_mask(a, scores_shape, "(..., H, T, S)", given=given)
    return check_bias(a, scores_shape, "(..., H, T, S)", dtype=dtype, given=given)


def check_multi_head_inputs(x_q, x_kv, params, n_heads, mask, bias, *, layouts, dtype,
                            names=("x_q", "x_kv")):
    """``x_q (..., T, D)`` and ``x_kv (..., S, D)`` (``names`` in the
    messages) and ``params`` (``layouts``) converted; ``n_heads`` divides
    ``D``; the mask boolean and the bias finite, of ``x_q``'s dtype, each
    with a head axis (``_with_head_axis``), or ``None``.
    """
    check_width_of_params(names[0], x_q, params, layouts)
    x_q, x_kv = check_sequence_pair(names[0], x_q, names[1], x_kv, width="D", dtype=dtype)
    lead, t, s, d_model = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2], x_q.shape[-1]
    n_heads = check_heads(n_heads, d_model)
    params = check_params("params", params, layouts, sizes={"D": d_model}, dtype=x_q.dtype)
    mask = _with_head_axis("mask", mask, lead, n_heads, t, s)
    bias = _with_head_axis("bias", bias, lead, n_heads, t, s, dtype=x_q.dtype)
    return x_q, x_kv, params, mask, bias


def check_encoder_block_inputs(x, params, n_heads, mask, bias, norm, activation, *, layouts,
                               dtype):
    """``x (..., T, D)`` and ``params`` (``layouts``) converted; ``n_heads``,
    the norm's and the activation's names; the mask (one per sequence) and
    the bias of the self-attention with a head axis (``_with_head_axis``)."""
    check_norm(norm)
    check_choice("activation", activation, ACTIVATION_NAMES)
    x, _, params, _, bias = check_multi_head_inputs(x, x, params, n_heads, None, bias,
                                                    layouts=layouts, dtype=dtype, names=("x", "x"))
    lead, t = x.shape[:-2], x.shape[-2]
    return x, params, _with_head_axis("mask", mask, lead, n_heads, t, t, per_sequence=True), bias


def check_decoder_block_inputs(y, memory, params, n_heads, self_mask, memory_mask, self_bias,
                               norm, activation, *, layouts, dtype):
    """``y (..., T, D)``, ``memory (..., S, D)`` and ``params`` converted,
    as for an encoder block; ``memory_mask`` one per sequence, with a head
    axis. ``self_mask`` is checked as the causal mask will broadcast it."""
    check_width_of_params("y", y, params, layouts)
    y, memory = check_sequence_pair("y", y, "memory", memory, width="D", dtype=dtype)
    t, s = y.shape[-2], memory.shape[-2]
    if self_mask is not None:
        self_mask = as_array("self_mask", self_mask, layout="(..., T, T)")
        self_mask = np.broadcast_to(self_mask, np.broadcast_shapes(self_mask.shape, (t, t)))
    y, params, self_mask, self_bias = check_encoder_block_inputs(
        y, params, n_heads, self_mask, self_bias, norm, activation, layouts=layouts, dtype=dtype)
    memory_mask = _with_head_axis("mask", memory_mask, y.shape[:-2], n_heads, t, s,
                                  per_sequence=True)
    return y, memory, params, self_mask, memory_mask, self_bias


def check_recurrent_inputs(x, w_x, w_h, b, *, dtype):
    """``x (..., T, D_in)``, ``w_x (D_in, Dh)``, ``w_h (Dh, Dh)``, ``b (Dh,)``, converted."""
    x, w_x, w_h, b = _as_float_arrays([("x", x, "(..., T, D_in)"), ("w_x", w_x, "(D_in, Dh)"),
                                       ("w_h", w_h, "(Dh, Dh)"), ("b", b, "(Dh,)")], dtype)
    check_ndim("x", x, 2, "(..., T, D_in)")
    check_positions("x", x, "T")
    x, w_x, b = check_linear_inputs(x, w_x, b, dtype=x.dtype)
    d_h = w_x.shape[1]
    check_same_shape("w_h", w_h, (d_h, d_h), "(Dh, Dh)")
    return x, w_x, w_h, b


def check_convolution_inputs(x, w, b, dilation, *, dtype):
    """``x (..., T, D_in)``, ``w (K, D_in, D_out)``, ``b (D_out,)``,
    converted, and ``dilation`` as an int."""
    x, w, b = _as_float_arrays([("x", x, "(..., T, D_in)"), ("w", w, "(K, D_in, D_out)"),
                                ("b", b, "(D_out,)")], dtype)
    check_ndim("x", x, 2, "(..., T, D_in)")
    if w.ndim != 3:
        raise ValueError(f"w must have shape (K, D_in, D_out), got shape {w.shape}")
    k, d_in, d_out = w.shape
    if x.shape[-1] != d_in:
        raise ValueError(f"x must have shape (..., T, D_in) with D_in = {d_in} "
                         f"(w.shape[1]), got shape {x.shape}")
    check_same_shape("b", b, (d_out,), "(D_out,)")
    return x, w, b, check_int("dilation", dilation)


def check_window_attention_inputs(q, k, v, window, *, dtype):
    """Local attention's inputs (``S >= T``), converted; ``window`` an int."""
    q, k, v, _ = check_attention_inputs(q, k, v, None, dtype=dtype)
    if k.shape[-2] < q.shape[-2]:
        raise ValueError(f"k must have at least T = {q.shape[-2]} positions (the queries "
                         f"are the last T of the S keys), got shape {k.shape}")
    return q, k, v, check_int("window", window)


def check_projection_inputs(q, k, v, e, f, *, dtype):
    """Low-rank attention's inputs, converted: ``e`` and ``f`` are ``(R, S)``."""
    q, k, v, _ = check_attention_inputs(q, k, v, None, dtype=dtype)
    e, f = _as_float_arrays([("e", e, "(R, S)"), ("f", f, "(R, S)")], q.dtype)
    s = k.shape[-2]
    if e.ndim != 2 or e.shape[1] != s:
        raise ValueError(f"e must have shape (R, S) with S = {s} (the keys), "
                         f"got shape {e.shape}")
    check_same_shape("f", f, e.shape, "(R, S) like e")
    return q, k, v, e, f


def check_features_inputs(q, k, v, features, *, dtype):
    """Random-feature attention's inputs, converted: ``features (M, Dk)``."""
    q, k, v, _ = check_attention_inputs(q, k, v, None, dtype=dtype)
    features = as_float_array("features", features, dtype=q.dtype, layout="(M, Dk)")
    d_k = q.shape[-1]
    if features.ndim != 2 or features.shape[1] != d_k:
        raise ValueError(f"features must have shape (M, Dk) with Dk = {d_k}, "
                         f"got shape {features.shape}")
    return q, k, v, features


def check_self_attention_gradient(dout, x_q, x_kv, *, dtype):
    """``dout (..., T, D)`` converted, for a multi-head cache that must be
    self-attention's (``x_q`` equal to ``x_kv``, read from the cache).

    ``dx = dx_q + dx_kv`` is the gradient of one ``x`` only when the
    queries and the keys/values were computed from the same values.
    """
    if x_q is x_kv or (x_q.shape == x_kv.shape and np.array_equal(x_q, x_kv)):
        return check_gradient("dout", dout, x_q.shape, "(..., T, D)", dtype=dtype)
    raise ValueError(
        "self_multi_head_attention_backward needs the cache of a self-attention "
        f"forward (x_q equal to x_kv); this cache has x_q of shape {x_q.shape} and "
        f"x_kv of shape {x_kv.shape}"
        + (" with different values" if x_q.shape == x_kv.shape else "")
        + ": use multi_head_attention_backward, which returns dx_q and dx_kv"
    )


def check_tokens(name, tokens, vocab, *, layout=None):
    """Return ``tokens`` as an int array with ids in ``[0, vocab)``
    (``layout``: its shape, for the message if it is ragged)."""
    tokens = as_array(name, tokens, layout=layout)
    if tokens.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab):
        raise ValueError(f"{name} ids must lie in [0, V - 1] = [0, {vocab - 1}], got ids "
                         f"from {tokens.min()} to {tokens.max()}")
    return tokens


def check_token_batch(name, tokens, vocab, letter="T"):
    """``tokens (B, length)`` as checked ids (:func:`check_tokens`), with at
    least one position (``letter`` names the length in messages)."""
    tokens = check_tokens(name, tokens, vocab, layout="(B, length)")
    if tokens.ndim != 2:
        raise ValueError(f"{name} must have shape (B, length), got shape {tokens.shape}")
    check_positions(name, tokens, letter, axis=-1)
    return tokens


def _check_table(w, *, dtype):
    """``w`` as a float ``(V, D)`` array of ``dtype``, or an error."""
    w = as_float_array("w", w, dtype=dtype, layout="(V, D)")
    if w.ndim != 2:
        raise ValueError(f"w must have shape (V, D), got shape {w.shape}")
    return w


def check_embedding_inputs(w, tokens, *, dtype=None):
    """Return ``(w, tokens)``: the ``(V, D)`` table as ``dtype`` and the ids."""
    w = _check_table(w, dtype=dtype)
    return w, check_tokens("tokens", tokens, w.shape[0], layout="(...,)")


def check_output_projection_inputs(h, w, b, *, dtype=None):
    """Return ``(h, w, b)`` as ``dtype`` (default: ``h``'s), with
    ``h (..., D)``, ``w (V, D)`` and ``b (V,)``, or raise."""
    h = as_float_array("h", h, dtype=dtype, layout="(..., D)")
    w = _check_table(w, dtype=h.dtype)
    b = as_float_array("b", b, dtype=h.dtype, layout="(V,)")
    if h.ndim < 1 or h.shape[-1] != w.shape[1]:
        raise ValueError(f"h must have shape (..., D) with D = {w.shape[1]} (w is (V, D) = "
                         f"{w.shape}), got shape {h.shape}")
    check_same_shape("b", b, (w.shape[0],), "(V,)")
    return h, w, b


def check_cross_entropy_inputs(logits, targets, ignore_id, *, dtype=None):
    """Return ``(logits, targets, real)``: ``logits (..., V)`` as ``dtype``,
    the target ids and where they are real (not ``ignore_id``), or raise."""
    logits = as_float_array("logits", logits, dtype=dtype, layout="(..., V)")
    if logits.ndim < 1:
        raise ValueError(f"logits must have shape (..., V), got shape {logits.shape}")
    targets = as_array("targets", targets, layout="(...,)")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets must have shape (...,) = {logits.shape[:-1]}, one id per "
                         f"row of logits {logits.shape}, got shape {targets.shape}")
    if ignore_id is None:
        real = np.ones(targets.shape, dtype=bool)
    else:
        real = targets != ignore_id
    check_tokens("targets", np.where(real, targets, 0), logits.shape[-1])
    if not real.any():
        raise ValueError("targets hold no real position (every one equals ignore_id = "
                         f"{ignore_id}): the mean loss is undefined")
    return logits, targets, real
