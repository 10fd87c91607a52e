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
    wrong_type_hint,
)

_RNG_SEED = 2026

# (lead, T, S, Dk, Dv): T != S, Dk != Dv, and 1, sqrt(T), sqrt(S), Dk and
# sqrt(Dk) all different, so every wrong scale gets its own hint; the 2-D
# case first
_SHAPES = [((), 3, 5, 2, 4), ((2,), 4, 3, 5, 2), ((2, 3), 2, 5, 3, 4)]


def _swap(x):
    return np.swapaxes(x, -1, -2)


def _attention_cases(seed):
    rng = np.random.default_rng(seed)
    cases = []
    for lead, t, s, d_k, d_v in _SHAPES:
        cases.append((rng.normal(size=(*lead, t, d_v)), rng.normal(size=(*lead, t, d_k)),
                      rng.normal(size=(*lead, s, d_k)), rng.normal(size=(*lead, s, d_v))))
    return cases


_TRANSPOSE_HINT = ("it works without leading axes but not with them, and you transpose: "
                   "x.T and np.transpose(x) reverse *all* axes, np.swapaxes(x, -1, -2) "
                   "swaps the last two")
_LEADING_AXES_HINT = ("it works without leading axes but not with them: count axes from "
                      "the end (-1, -2), not from the front (0, 1, len(x), x.shape[0]), "
                      "and transpose only the last two")


def _explain_shape_errors(name, attempt, hint, *, broadcast_hint=None):
    """Turn a NumPy shape error raised by ``attempt`` into a hint.

    ``hint`` is for the 2-D case. The checker runs that case first, so
    reaching a case with leading axes means the 2-D one was right: an
    error there comes from an axis counted from the front, and ``.T`` is
    named only when the attempt uses it (or ``np.transpose``). Other
    exceptions, and a ``ValueError`` that is really about a wrong type (a
    tuple where an array belongs), are left to :func:`check_exercise`,
    which names the type first, else the case and the input shapes.
    ``broadcast_hint``, when given, replaces ``hint`` for an elementwise
    step whose shapes do not broadcast (NumPy says "could not be
    broadcast"), which is not a matrix product's mistake.
    """
    def guarded(*args):
        try:
            return attempt(*args)
        except ValueError as error:
            if wrong_type_hint(error):
                raise
            if np.ndim(args[1]) == 2:
                broadcast = broadcast_hint and "could not be broadcast" in str(error)
                message = broadcast_hint if broadcast else hint
            elif code_names(attempt) & {"T", "transpose"}:
                message = _TRANSPOSE_HINT
            else:
                message = _LEADING_AXES_HINT
            raise ExerciseError(name, f"{message} (NumPy said: {error})") from None
    return guarded


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


def _scores_softmaxed(q, k):
    return softmax_forward(scaled_scores(q, k))[0]


def check_scaled_scores(attempt):
    """Exercise 1: ``scaled_scores(q, k) -> (..., T, S)``.

    ``q`` is ``(..., T, Dk)`` and ``k`` is ``(..., S, Dk)``.
    """
    name = "Exercise 1 (scaled scores)"
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
            (_scores_softmaxed, "those are the weights: this exercise stops before the "
                                "softmax, at the scaled scores q k^T / sqrt(Dk)"),
        ],
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


def check_attention_dv(attempt):
    """Exercise 2: ``attention_dv(dout, q, k, v)``, the gradient ``dv``."""
    name = "Exercise 2 (attention dv)"
    check_exercise(
        name,
        _explain_shape_errors(name, attempt, "the shapes do not line up; dv must have v's shape "
                                       "(S, Dv), and weights is (T, S) and dout (T, Dv): "
                                       "transpose the weights"),
        attention_dv, _attention_cases(_RNG_SEED + 1),
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
        ],
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


def check_attention_dq_dk(attempt):
    """Exercise 3: ``attention_dq_dk(dout, q, k, v) -> (dq, dk)``."""
    name = "Exercise 3 (attention dq, dk)"
    check_exercise(
        name,
        _explain_shape_errors(name, attempt, "the shapes do not line up; dscores is (T, S), so "
                                       "dq = dscores @ k and dk = dscores^T @ q",
                              broadcast_hint="an elementwise step got shapes that do not "
                                             "broadcast; if it is the softmax backward's row "
                                             "sum, keep its axis: (dweights * weights).sum("
                                             "axis=-1, keepdims=True) is (T, 1), one number "
                                             "per query, not (T,)"),
        attention_dq_dk, _attention_cases(_RNG_SEED + 2),
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
        ],
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


def check_additive_scores(attempt):
    """Exercise 4: ``additive_scores(q, k, w_1, w_2, v_a)``.

    Additive scores ``v_a . tanh(q_i W_1 + k_j W_2)``, ``(..., T, S)``.
    """
    name = "Exercise 4 (additive scores)"
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
            (_additive_scaled, "additive scores have no 1/sqrt scale: tanh already keeps "
                               "every feature in [-1, 1]"),
        ],
        rtol=1e-10, atol=1e-12,
    )
