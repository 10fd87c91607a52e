"""Checkers for Chapter 2's exercises, "Scaled dot-product attention"."""

import numpy as np

from attention_from_scratch.core.attention import (
    attention_backward,
    attention_forward,
    scores_forward,
)
from attention_from_scratch.core.softmax import softmax_forward
from attention_from_scratch.exercises import (
    ExerciseError,
    check_exercise,
    code_names,
    refuses_shapes,
    require_function,
    shapes_in,
    truth_value_hint,
    wrong_type_hint,
)

_RNG_SEED = 2026

# (lead, T, S, Dk, Dv): T != S, Dk != Dv, and 1, sqrt(T), sqrt(S), Dk and
# sqrt(Dk) all different, so every wrong scale gets its own hint; the 2-D
# case first
_SHAPES = [((), 3, 5, 2, 4), ((2,), 4, 3, 5, 2), ((2, 3), 2, 5, 3, 4)]

# The chapter's running example sets the global Dk = 2; a function that
# reads it instead of q.shape[-1] is right on the first case only
_CHAPTER_DK = 2


def _swap(x):
    return np.swapaxes(x, -1, -2)


def _attention_cases(seed):
    rng = np.random.default_rng(seed)
    cases = []
    for lead, t, s, d_k, d_v in _SHAPES:
        cases.append((rng.normal(size=(*lead, t, d_v)), rng.normal(size=(*lead, t, d_k)),
                      rng.normal(size=(*lead, s, d_k)), rng.normal(size=(*lead, s, d_v))))
    return cases


def _large_scores_case(seed):
    """A case ``(dout, q, k, v)`` whose first sequence has scores near 1000.

    Every key of sequence 0 shares a first feature of 100 and every query
    a first feature of 20, which adds 20 * 100 / sqrt(4) = 1000 to every
    score of that sequence: a constant per row, so the weights are as
    healthy as those of sequence 1 (ordinary scores), yet ``np.exp``
    overflows unless each row's maximum is subtracted first, and a
    maximum taken over the whole array sends sequence 1 to 0 / 0.
    """
    rng = np.random.default_rng(seed)
    t, s, d_k, d_v = 3, 5, 4, 2
    q, k = rng.normal(size=(2, t, d_k)), rng.normal(size=(2, s, d_k))
    q[0, :, 0], k[0, :, 0] = 20.0, 100.0
    return rng.normal(size=(2, t, d_v)), q, k, rng.normal(size=(2, s, d_v))


_TRANSPOSE_HINT = ("it works without leading axes but not with them, and you transpose: "
                   "x.T and np.transpose(x) reverse *all* axes, np.swapaxes(x, -1, -2) "
                   "swaps the last two")
_LEADING_AXES_HINT = ("it works without leading axes but not with them: count axes from "
                      "the end (-1, -2), not from the front (0, 1, len(x), x.shape[0]), "
                      "transpose only the last two, and add a new axis with x[..., None], "
                      "not x[:, None]")


def _explain_shape_errors(name, attempt, hint, *, defer_broadcast=False):
    """Turn a NumPy shape error raised by ``attempt`` into a hint.

    ``hint`` is for the 2-D case. The checker runs that case first, so
    reaching a case with leading axes means the 2-D one was right: an
    error there comes from an axis counted from the front, and ``.T`` is
    named only when the attempt uses it (or ``np.transpose``). Other
    exceptions, a ``ValueError`` that is really about a wrong type (a
    tuple where an array belongs), and one of the 2-D case that is not
    NumPy refusing shapes (Python's ``max`` on an array, an einsum
    subscript that no input has), are left to :func:`check_exercise`,
    which names the type first, else the case and the input shapes, and
    adds the ``crash_hint`` (such as :func:`_python_on_arrays`).
    With ``defer_broadcast``, an elementwise step of the 2-D case whose
    shapes do not broadcast (NumPy says "could not be broadcast") is left
    to :func:`check_exercise` too: it is not a matrix product's mistake,
    and there the ``crash_hint`` names the shapes and the learner's line.
    """
    def guarded(*args):
        try:
            return attempt(*args)
        except ValueError as error:
            if wrong_type_hint(error):
                raise
            if np.ndim(args[1]) == 2:
                if not refuses_shapes(error) or (defer_broadcast
                                                 and "could not be broadcast" in str(error)):
                    raise
                message = hint
            elif code_names(attempt) & {"T", "transpose"}:
                message = _TRANSPOSE_HINT
            else:
                message = _LEADING_AXES_HINT
            raise ExerciseError(name, f"{message} (NumPy said: {error})") from None
    return guarded


def _python_on_arrays(error, args):
    """A ``crash_hint``: Python's ``max``, ``if`` or ``and`` on an array."""
    return truth_value_hint(error)


def _named_shape(shape, sizes):
    """``shape`` in the book's letters, e.g. ``(3, 5)`` gives ``"(T, S)"``;
    None unless every size is one letter's. ``sizes`` maps letters to
    sizes, all different in the hidden cases."""
    letters = {n: letter for letter, n in sizes.items()}
    if len(letters) < len(sizes) or any(n not in letters for n in shape):
        return None
    return "(" + ", ".join(letters[n] for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _broadcast_hint_for(backward_note):
    """A ``crash_hint`` for Exercises 2 and 3: elementwise shape errors of
    the 2-D case, with arguments ``(dout, q, k, v)``, named in the book's
    letters.

    The classic one is a softmax whose row max or row sum lost its axis
    (``x.max(axis=-1)`` without ``keepdims=True``): a ``(T,)`` array met
    the ``(T, S)`` scores and, aligned from the right, landed on the keys.
    ``backward_note`` adds the backward's own row sum to that hint.
    """
    def hint(error, args):
        if truth_value_hint(error):                 # Python's max of the scores
            return truth_value_hint(error, of_scores=True)
        if not isinstance(error, ValueError) or "could not be broadcast" not in str(error):
            return None
        _, q, k, v = args
        t, s = q.shape[-2], k.shape[-2]
        sizes = {"T": t, "S": s, "Dk": q.shape[-1], "Dv": v.shape[-1]}
        shapes = shapes_in(str(error))
        if (t,) in shapes and (t, s) in shapes:
            return (f"An array of shape ({t},), one number per query (a row max or a row "
                    f"sum taken with axis=-1), met a ({t}, {s}) array, (T, S) like the "
                    f"scores; NumPy aligns shapes from the right, so the ({t},) lands on the "
                    f"S = {s} keys, not on the T = {t} queries. Keep that axis: "
                    "x.max(axis=-1, keepdims=True) and e.sum(axis=-1, keepdims=True) are "
                    f"(T, 1) = ({t}, 1){backward_note}")
        named = [_named_shape(shape, sizes) for shape in shapes]
        if len(shapes) != 2 or None in named:
            return None
        flipped = ", and one is the other transposed" if shapes[0] == shapes[1][::-1] else ""
        return (f"In the book's letters the shapes are {named[0]} and {named[1]} "
                f"(T = {t}, S = {s}, Dk = {sizes['Dk']}, Dv = {sizes['Dv']}){flipped}. "
                "The softmax and its backward work on (T, S) arrays: the scores, the "
                "weights and dweights = dout @ v^T")
    return hint


_CHAPTER_DK_HINT = (f"right when Dk = {_CHAPTER_DK}, wrong otherwise: you divided by "
                    f"sqrt({_CHAPTER_DK}) on every case. Is that the chapter's global "
                    f"Dk = {_CHAPTER_DK}? Read the width from the inputs, q.shape[-1]")
_OVERFLOW_HINT = ("your softmax overflows: one hidden case has scores near 1000, np.exp(1000.0) "
                  "is inf and inf / inf is NaN. Subtract each row's maximum before np.exp, "
                  "x - x.max(axis=-1, keepdims=True), as section 3 does: it changes no weight")
_GLOBAL_MAX_HINT = ("you subtracted the largest score of the whole array, x.max() without an "
                    "axis, where each row needs its own maximum: on the hidden case with "
                    "scores near 1000 in one sequence and ordinary ones in the other, "
                    "np.exp of the ordinary rows minus 1000 is 0, and 0 / 0 is NaN. Use "
                    "x.max(axis=-1, keepdims=True)")
_WHOLE_ARRAY_HINT = ("your weights were normalised over the whole array, e.sum() without an "
                     "axis: each query's weights sum to 1 over the keys, so use "
                     "e.sum(axis=-1, keepdims=True)")
_FRONT_AXIS_SOFTMAX_HINT = ("right without leading axes, wrong with them: your softmax runs "
                            "along axis=1, which is the keys only when the scores are (T, S); "
                            "count from the end, axis=-1")


def _stable_weights(q, k, d_k=None):
    d_k = q.shape[-1] if d_k is None else d_k
    return softmax_forward(q @ _swap(k) / np.sqrt(d_k))[0]


def _unstable_weights(q, k):
    e = np.exp(q @ _swap(k) / np.sqrt(q.shape[-1]))
    return e / e.sum(axis=-1, keepdims=True)


def _global_max_weights(q, k):
    scores = q @ _swap(k) / np.sqrt(q.shape[-1])
    e = np.exp(scores - scores.max())
    return e / e.sum(axis=-1, keepdims=True)


def _whole_array_weights(q, k):
    scores = q @ _swap(k) / np.sqrt(q.shape[-1])
    e = np.exp(scores - scores.max())
    return e / e.sum()


def _front_axis_weights(q, k):
    return softmax_forward(q @ _swap(k) / np.sqrt(q.shape[-1]), axis=1)[0]


def scaled_scores(q, k):
    """Reference: ``q @ k^T / sqrt(Dk)``, ``(..., T, S)``."""
    return scores_forward(q, k)[0]


def _scores_without_scale(q, k):
    return q @ _swap(k)


def _scores_divided_by_dk(q, k):
    return q @ _swap(k) / q.shape[-1]


def _scores_times_sqrt_dk(q, k):
    return q @ _swap(k) * np.sqrt(q.shape[-1])


def _scores_transposed(q, k):
    return k @ _swap(q) / np.sqrt(q.shape[-1])


def _scores_scaled_by_queries(q, k):
    return q @ _swap(k) / np.sqrt(q.shape[-2])


def _scores_scaled_by_keys(q, k):
    return q @ _swap(k) / np.sqrt(k.shape[-2])


def _scores_scaled_by_axis_1(q, k):
    return q @ _swap(k) / np.sqrt(q.shape[1])


def _scores_scaled_by_key_axis_1(q, k):
    return q @ _swap(k) / np.sqrt(k.shape[1])


def _scores_with_chapter_dk(q, k):
    return q @ _swap(k) / np.sqrt(_CHAPTER_DK)


def _scores_softmaxed(q, k):
    return softmax_forward(scaled_scores(q, k))[0]


def check_scaled_scores(attempt):
    """Exercise 1: ``scaled_scores(q, k) -> (..., T, S)``.

    ``q`` is ``(..., T, Dk)`` and ``k`` is ``(..., S, Dk)``.
    """
    name = "Exercise 1 (scaled scores)"
    require_function(name, attempt)
    cases = [(q, k) for _, q, k, _ in _attention_cases(_RNG_SEED)]
    check_exercise(
        name,
        _explain_shape_errors(name, attempt, "the shapes do not line up: q is (T, Dk) and k is "
                                       "(S, Dk), and the scores q k^T are (T, S)"),
        scaled_scores, cases,
        mistakes=[
            (_scores_without_scale, "you forgot the scale: divide q k^T by sqrt(Dk)"),
            (_scores_times_sqrt_dk, "you multiplied by sqrt(Dk); the scale divides, "
                                    "q k^T / sqrt(Dk), which brings the variance Dk back "
                                    "to 1 instead of raising it to Dk^2"),
            (_scores_divided_by_dk, "you divided by Dk; the scale is 1 / sqrt(Dk), which "
                                    "brings the variance Dk back to 1"),
            (_scores_transposed, "your scores are (S, T), keys by queries: each row must be "
                                 "one query, so compute q @ k^T, not k @ q^T"),
            (_scores_scaled_by_queries, "you divided by the square root of T, the number of "
                                        "queries; Dk is the last axis of q and k"),
            (_scores_scaled_by_keys, "you divided by the square root of S, the number of "
                                     "keys; Dk is the last axis of q and k"),
            (_scores_scaled_by_axis_1, "right without leading axes, wrong with them: "
                                       "q.shape[1] is Dk only when q is (T, Dk); count "
                                       "from the end, Dk = q.shape[-1]"),
            (_scores_scaled_by_key_axis_1, "right without leading axes, wrong with them: "
                                           "k.shape[1] is Dk only when k is (S, Dk); count "
                                           "from the end, Dk = k.shape[-1]"),
            (_scores_with_chapter_dk, _CHAPTER_DK_HINT),
            (_scores_softmaxed, "those are the weights: this exercise stops before the "
                                "softmax, at the scaled scores q k^T / sqrt(Dk)"),
        ],
        crash_hint=_python_on_arrays,
        rtol=1e-10, atol=1e-12,
    )


def attention_dv(dout, q, k, v):
    """Reference: ``dv`` of ``attention_forward(q, k, v)``."""
    _, cache = attention_forward(q, k, v)
    return attention_backward(dout, cache)[2]


def _dv_from_dout_transposed(dout, q, k, v):
    weights = softmax_forward(scaled_scores(q, k))[0]
    return _swap(dout) @ weights


def _dv_from_unscaled_weights(dout, q, k, v):
    weights = softmax_forward(q @ _swap(k))[0]
    return _swap(weights) @ dout


def _dv_from_scores(dout, q, k, v):
    return _swap(scaled_scores(q, k)) @ dout


def _dv_softmax_over_queries(dout, q, k, v):
    weights = softmax_forward(scaled_scores(q, k), axis=-2)[0]
    return _swap(weights) @ dout


def _dv_scaled(dout, q, k, v):
    return attention_dv(dout, q, k, v) / np.sqrt(q.shape[-1])


def _dv_summed_over_batch(dout, q, k, v):
    dv = attention_dv(dout, q, k, v)
    return dv.reshape(-1, *dv.shape[-2:]).sum(axis=0)


def _dv_unstable_softmax(dout, q, k, v):
    return _swap(_unstable_weights(q, k)) @ dout


def _dv_global_max_softmax(dout, q, k, v):
    return _swap(_global_max_weights(q, k)) @ dout


def _dv_softmax_over_whole_array(dout, q, k, v):
    return _swap(_whole_array_weights(q, k)) @ dout


def _dv_softmax_along_axis_1(dout, q, k, v):
    return _swap(_front_axis_weights(q, k)) @ dout


def _dv_with_chapter_dk(dout, q, k, v):
    return _swap(_stable_weights(q, k, _CHAPTER_DK)) @ dout


def _dv_returned_dweights(dout, q, k, v):
    return dout @ _swap(v)


def _dv_with_dq_dk(dout, q, k, v):
    _, cache = attention_forward(q, k, v)
    return attention_backward(dout, cache)


def check_attention_dv(attempt):
    """Exercise 2: ``attention_dv(dout, q, k, v)``, the gradient ``dv``."""
    name = "Exercise 2 (attention dv)"
    require_function(name, attempt)
    check_exercise(
        name,
        _explain_shape_errors(name, attempt, "the shapes do not line up; dv must have v's shape "
                                       "(S, Dv), and weights is (T, S) and dout (T, Dv): "
                                       "transpose the weights", defer_broadcast=True),
        attention_dv, [*_attention_cases(_RNG_SEED + 1), _large_scores_case(_RNG_SEED + 1)],
        mistakes=[
            (_dv_from_dout_transposed, "your dv is (Dv, S), the transpose of the answer: "
                                       "(dout^T W)^T = W^T dout, so transpose the weights, "
                                       "not dout"),
            (_dv_from_unscaled_weights, "the weights you multiply by are missing the "
                                        "1/sqrt(Dk): recompute them exactly as the forward "
                                        "did"),
            (_dv_from_scores, "you used the scores; out = weights @ v, so dv needs the "
                              "weights after the softmax"),
            (_dv_softmax_over_queries, "your weights were normalised over axis -2, the "
                                       "queries; each query's weights sum to 1 over the "
                                       "keys: softmax over the last axis"),
            (_dv_scaled, "dv is scaled by 1/sqrt(Dk): the scale sits inside the scores, "
                         "before the softmax; out = weights @ v is linear in v, so dv = "
                         "weights^T @ dout with nothing more"),
            (_dv_summed_over_batch, "v is an input, not a shared parameter: every sequence "
                                    "has its own v, so dv keeps the leading axes"),
            (_dv_unstable_softmax, _OVERFLOW_HINT),
            (_dv_global_max_softmax, _GLOBAL_MAX_HINT),
            (_dv_softmax_over_whole_array, _WHOLE_ARRAY_HINT),
            (_dv_softmax_along_axis_1, _FRONT_AXIS_SOFTMAX_HINT),
            (_dv_with_chapter_dk, _CHAPTER_DK_HINT),
            (_dv_returned_dweights, "that is dweights = dout @ v^T, shape (T, S), the "
                                    "gradient of the weights; dv is the gradient of v, "
                                    "weights^T @ dout, shape (S, Dv) like v"),
            (_dv_with_dq_dk, "you returned all three gradients (dq, dk, dv); this exercise "
                             "asks for dv alone"),
        ],
        crash_hint=_broadcast_hint_for(""),
    )


def attention_dq_dk(dout, q, k, v):
    """Reference: ``(dq, dk)`` of ``attention_forward(q, k, v)``."""
    _, cache = attention_forward(q, k, v)
    dq, dk, _ = attention_backward(dout, cache)
    return dq, dk


def _dq_dk_from(dscores, q, k, scale):
    return dscores @ k * scale, _swap(dscores) @ q * scale


def _weights_and_dweights(dout, q, k, v):
    weights = softmax_forward(scaled_scores(q, k))[0]
    return weights, dout @ _swap(v)


def _dq_dk_without_scale(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
    return _dq_dk_from(dscores, q, k, 1.0)


def _dq_dk_diagonal_only(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    return _dq_dk_from(weights * dweights, q, k, 1 / np.sqrt(q.shape[-1]))


def _dq_dk_plain_mean(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    dscores = weights * (dweights - dweights.mean(axis=-1, keepdims=True))
    return _dq_dk_from(dscores, q, k, 1 / np.sqrt(q.shape[-1]))


def _dq_dk_rowsum_over_queries(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-2, keepdims=True))
    return _dq_dk_from(dscores, q, k, 1 / np.sqrt(q.shape[-1]))


def _dq_dk_skipped_softmax(dout, q, k, v):
    _, dweights = _weights_and_dweights(dout, q, k, v)
    return _dq_dk_from(dweights, q, k, 1 / np.sqrt(q.shape[-1]))


def _dscores(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    return weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))


def _dq_dk_scaled_on_dq_only(dout, q, k, v):
    dscores = _dscores(dout, q, k, v)
    return dscores @ k / np.sqrt(q.shape[-1]), _swap(dscores) @ q


def _dq_dk_scaled_on_dk_only(dout, q, k, v):
    dscores = _dscores(dout, q, k, v)
    return dscores @ k, _swap(dscores) @ q / np.sqrt(q.shape[-1])


def _dq_dk_times_sqrt_dk(dout, q, k, v):
    return _dq_dk_from(_dscores(dout, q, k, v), q, k, np.sqrt(q.shape[-1]))


def _dq_dk_divided_by_dk(dout, q, k, v):
    return _dq_dk_from(_dscores(dout, q, k, v), q, k, 1 / q.shape[-1])


def _dq_dk_leading_weights_dropped(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    dscores = dweights - (dweights * weights).sum(axis=-1, keepdims=True)
    return _dq_dk_from(dscores, q, k, 1 / np.sqrt(q.shape[-1]))


def _dq_dk_unweighted_rowsum(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    dscores = weights * (dweights - dweights.sum(axis=-1, keepdims=True))
    return _dq_dk_from(dscores, q, k, 1 / np.sqrt(q.shape[-1]))


def _dq_dk_sign_flipped(dout, q, k, v):
    dq, dk = attention_dq_dk(dout, q, k, v)
    return -dq, -dk


def _dk_dq_swapped(dout, q, k, v):
    dq, dk = attention_dq_dk(dout, q, k, v)
    return dk, dq


def _dq_dk_through(weights, dout, q, k, v, d_k=None):
    """(dq, dk) from the given weights, the rest of the backward right."""
    d_k = q.shape[-1] if d_k is None else d_k
    dweights = dout @ _swap(v)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
    return _dq_dk_from(dscores, q, k, 1 / np.sqrt(d_k))


def _dq_dk_unstable_softmax(dout, q, k, v):
    return _dq_dk_through(_unstable_weights(q, k), dout, q, k, v)


def _dq_dk_global_max_softmax(dout, q, k, v):
    return _dq_dk_through(_global_max_weights(q, k), dout, q, k, v)


def _dq_dk_softmax_over_whole_array(dout, q, k, v):
    return _dq_dk_through(_whole_array_weights(q, k), dout, q, k, v)


def _dq_dk_softmax_over_queries(dout, q, k, v):
    weights = softmax_forward(scaled_scores(q, k), axis=-2)[0]
    return _dq_dk_through(weights, dout, q, k, v)


def _dq_dk_with_chapter_dk(dout, q, k, v):
    return _dq_dk_through(_stable_weights(q, k, _CHAPTER_DK), dout, q, k, v, _CHAPTER_DK)


def _dq_dk_with_chapter_dk_in_the_backward(dout, q, k, v):
    return _dq_dk_through(_stable_weights(q, k), dout, q, k, v, _CHAPTER_DK)


def _dq_dk_sigmoid_derivative(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    return _dq_dk_from(dweights * weights * (1 - weights), q, k, 1 / np.sqrt(q.shape[-1]))


def _dq_dk_rowsum_over_everything(dout, q, k, v):
    weights, dweights = _weights_and_dweights(dout, q, k, v)
    dscores = weights * (dweights - (dweights * weights).sum())
    return _dq_dk_from(dscores, q, k, 1 / np.sqrt(q.shape[-1]))


def _dq_dk_with_dv(dout, q, k, v):
    _, cache = attention_forward(q, k, v)
    return attention_backward(dout, cache)


def check_attention_dq_dk(attempt):
    """Exercise 3: ``attention_dq_dk(dout, q, k, v) -> (dq, dk)``."""
    name = "Exercise 3 (attention dq, dk)"
    require_function(name, attempt)
    check_exercise(
        name,
        _explain_shape_errors(name, attempt, "the shapes do not line up; dscores is (T, S), so "
                                       "dq = dscores @ k and dk = dscores^T @ q",
                              defer_broadcast=True),
        attention_dq_dk, [*_attention_cases(_RNG_SEED + 2), _large_scores_case(_RNG_SEED + 2)],
        mistakes=[
            (_dk_dq_swapped, "you returned (dk, dq); return them in the order of the "
                             "question, (dq, dk): dq has q's shape (T, Dk), dk has k's "
                             "(S, Dk)"),
            (_dq_dk_without_scale, "the forward multiplied the scores by 1/sqrt(Dk), so the "
                                   "backward multiplies dscores by 1/sqrt(Dk) too"),
            (_dq_dk_scaled_on_dq_only, "dq is right, dk is missing the 1/sqrt(Dk): the scale "
                                       "multiplies q k^T, so it reaches both q and k; "
                                       "dk = dscores^T @ q / sqrt(Dk) too"),
            (_dq_dk_scaled_on_dk_only, "dk is right, dq is missing the 1/sqrt(Dk): the scale "
                                       "multiplies q k^T, so it reaches both q and k; "
                                       "dq = dscores @ k / sqrt(Dk) too"),
            (_dq_dk_times_sqrt_dk, "you multiplied by sqrt(Dk): the forward divided the "
                                   "scores by sqrt(Dk), and the backward multiplies dscores "
                                   "by the same factor, 1/sqrt(Dk) (it does not undo it)"),
            (_dq_dk_divided_by_dk, "you divided by Dk: the scale is 1/sqrt(Dk), and the "
                                   "backward multiplies dscores by it once, for dq and for "
                                   "dk"),
            (_dq_dk_diagonal_only, "weights * dweights is only the diagonal of the softmax "
                                   "Jacobian; subtract weights * rowsum(dweights * weights)"),
            (_dq_dk_leading_weights_dropped, "the leading weights are missing from the "
                                             "softmax backward: dscores = weights * (dweights "
                                             "- rowsum(dweights * weights))"),
            (_dq_dk_unweighted_rowsum, "the row sum in the softmax backward is of dweights "
                                       "*times the weights*: dscores = weights * (dweights - "
                                       "rowsum(dweights * weights)), not rowsum(dweights)"),
            (_dq_dk_sign_flipped, "the signs are flipped: dscores = weights * (dweights - "
                                  "rowsum(dweights * weights)), dweights first"),
            (_dq_dk_plain_mean, "the softmax backward subtracts the mean of dweights "
                                "*weighted by the weights*, rowsum(dweights * weights), "
                                "not the plain mean"),
            (_dq_dk_rowsum_over_queries, "the softmax normalised each query's row over "
                                         "the keys, so its backward sums over the keys "
                                         "too: rowsum(dweights * weights) is a sum over "
                                         "axis -1, one number per query, not over the "
                                         "queries (axis -2)"),
            (_dq_dk_skipped_softmax, "you skipped the softmax backward: dweights must go "
                                     "through it before it reaches the scores"),
            (_dq_dk_sigmoid_derivative, "weights * (1 - weights) is the derivative of a "
                                        "sigmoid, or only the diagonal of the softmax "
                                        "Jacobian: each weight also depends on every other "
                                        "score of its row; dscores = weights * (dweights - "
                                        "rowsum(dweights * weights))"),
            (_dq_dk_rowsum_over_everything, "your row sum in the softmax backward runs over "
                                            "the whole array, .sum() without an axis: it is "
                                            "one number per query, (dweights * weights).sum("
                                            "axis=-1, keepdims=True)"),
            (_dq_dk_softmax_over_queries, "your forward weights were normalised over axis "
                                          "-2, the queries; each query's weights sum to 1 "
                                          "over the keys: softmax over the last axis"),
            (_dq_dk_unstable_softmax, _OVERFLOW_HINT),
            (_dq_dk_global_max_softmax, _GLOBAL_MAX_HINT),
            (_dq_dk_softmax_over_whole_array, _WHOLE_ARRAY_HINT),
            (_dq_dk_with_chapter_dk, _CHAPTER_DK_HINT),
            (_dq_dk_with_chapter_dk_in_the_backward, _CHAPTER_DK_HINT),
            (_dq_dk_with_dv, "you returned all three gradients (dq, dk, dv); this exercise "
                             "asks for (dq, dk), dv was Exercise 2"),
        ],
        crash_hint=_broadcast_hint_for(", and so is the backward's row sum, (dweights * "
                                       "weights).sum(axis=-1, keepdims=True)"),
    )


def additive_scores(q, k, w_1, w_2, v_a):
    """Reference: ``e[i, j] = v_a . tanh(q_i W_1 + k_j W_2)``.

    Additive attention (Bahdanau et al. 2015).

    Parameters
    ----------
    q : (..., T, Dq) ndarray
    k : (..., S, Dk) ndarray
        ``Dq`` and ``Dk`` may differ: each has its own projection.
    w_1 : (Dq, A) ndarray
    w_2 : (Dk, A) ndarray
    v_a : (A,) ndarray

    Returns
    -------
    scores : (..., T, S) ndarray
    """
    hidden = (q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]   # (..., T, S, A)
    return np.tanh(hidden) @ v_a                                       # (..., T, S)


def _additive_tanh_separately(q, k, w_1, w_2, v_a):
    return (np.tanh(q @ w_1) @ v_a)[..., :, None] + (np.tanh(k @ w_2) @ v_a)[..., None, :]


def _additive_keys_by_queries(q, k, w_1, w_2, v_a):
    return _swap(additive_scores(q, k, w_1, w_2, v_a))


def _additive_summed_without_v_a(q, k, w_1, w_2, v_a):
    hidden = (q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]
    return np.tanh(hidden).sum(axis=-1)


def _additive_without_tanh(q, k, w_1, w_2, v_a):
    hidden = (q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]
    return hidden @ v_a


def _additive_scaled(q, k, w_1, w_2, v_a):
    return additive_scores(q, k, w_1, w_2, v_a) / np.sqrt(w_1.shape[-1])


def _additive_tanh_after_v_a(q, k, w_1, w_2, v_a):
    hidden = (q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]
    return np.tanh(hidden @ v_a)


def _additive_v_a_on_the_left(q, k, w_1, w_2, v_a):
    hidden = (q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]
    return v_a @ np.tanh(hidden)


def _additive_scaled_by_key_width(q, k, w_1, w_2, v_a):
    return additive_scores(q, k, w_1, w_2, v_a) / np.sqrt(k.shape[-1])


def _additive_scaled_by_query_width(q, k, w_1, w_2, v_a):
    return additive_scores(q, k, w_1, w_2, v_a) / np.sqrt(q.shape[-1])


def _additive_softmaxed(q, k, w_1, w_2, v_a):
    return softmax_forward(additive_scores(q, k, w_1, w_2, v_a))[0]


def additive_cases(seed):
    """Hidden cases ``(q, k, w_1, w_2, v_a)``: ``Dq != Dk``, ``T != S``."""
    rng = np.random.default_rng(seed)
    cases = []
    for lead, t, s, d_q, d_k, a in [((), 3, 4, 2, 5, 6), ((2,), 4, 2, 3, 2, 5),
                                    ((2, 3), 2, 5, 4, 3, 7)]:
        cases.append((rng.normal(size=(*lead, t, d_q)), rng.normal(size=(*lead, s, d_k)),
                      rng.normal(size=(d_q, a)), rng.normal(size=(d_k, a)),
                      rng.normal(size=a)))
    return cases


_NO_SCALE_HINT = ("additive scores have no 1/sqrt scale: tanh already keeps every feature "
                  "in [-1, 1]")


def _additive_probe(seed):
    """A case ``(q, k, w_1, w_2, v_a)`` with ``S == A`` (= 4), all else different."""
    rng = np.random.default_rng(seed)
    t, s, d_q, d_k, a = 3, 4, 2, 5, 4
    return (rng.normal(size=(t, d_q)), rng.normal(size=(s, d_k)), rng.normal(size=(d_q, a)),
            rng.normal(size=(d_k, a)), rng.normal(size=a))


def check_additive_scores(attempt):
    """Exercise 4: ``additive_scores(q, k, w_1, w_2, v_a)``.

    Additive scores ``v_a . tanh(q_i W_1 + k_j W_2)``, ``(..., T, S)``.
    """
    name = "Exercise 4 (additive scores)"
    require_function(name, attempt)
    check_exercise(
        name,
        _explain_shape_errors(name, attempt, "the shapes do not line up; project first (q @ w_1 "
                                       "is (T, A), k @ w_2 is (S, A)), then add them as "
                                       "(T, 1, A) + (1, S, A)"),
        additive_scores, additive_cases(_RNG_SEED + 3),
        mistakes=[
            (_additive_tanh_separately, "tanh must act on the sum q W_1 + k W_2; applied "
                                        "to each part separately the score splits into a "
                                        "query term plus a key term, and the softmax over "
                                        "keys ignores the query term entirely"),
            (_additive_without_tanh, "the tanh is missing: without it v_a . (q W_1 + k W_2) "
                                     "splits into a query term plus a key term, and the "
                                     "softmax over keys ignores the query term; apply tanh "
                                     "to the sum before the dot product with v_a"),
            (_additive_keys_by_queries, "your scores are (S, T): put the new axis so that "
                                        "q's projection is (T, 1, A) and k's is (1, S, A)"),
            (_additive_summed_without_v_a, "you summed the A features; each one is weighted "
                                           "by v_a: end with a dot product with v_a"),
            (_additive_tanh_after_v_a, "tanh goes on the A features, before the dot "
                                       "product: v_a . tanh(q_i W_1 + k_j W_2), not "
                                       "tanh(v_a . (q_i W_1 + k_j W_2))"),
            (_additive_softmaxed, "those are the weights: this exercise stops before the "
                                  "softmax, at the scores v_a . tanh(q_i W_1 + k_j W_2)"),
            (_additive_scaled, _NO_SCALE_HINT),
            (_additive_scaled_by_key_width, _NO_SCALE_HINT),
            (_additive_scaled_by_query_width, _NO_SCALE_HINT),
            (_additive_v_a_on_the_left, "v_a @ x contracts v_a with the second-to-last axis "
                                        "of x, the keys, not with the A features: put v_a "
                                        "on the right, np.tanh(...) @ v_a"),
        ],
        # v_a on the left runs only when S == A: this probe names it
        probes=[_additive_probe(_RNG_SEED + 4)],
        crash_hint=_python_on_arrays,
        rtol=1e-10, atol=1e-12,
    )
