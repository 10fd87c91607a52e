"""Checkers for the exercises of Chapter 1, "Queries, keys and values"."""

import re
import types

import numpy as np

from attention_from_scratch.core.linear import linear_forward
from attention_from_scratch.core.softmax import softmax_forward
from attention_from_scratch.exercises import (
    ExerciseError,
    broadcast_hint,
    check_exercise,
    refuses_shapes,
    require_function,
    truth_value_hint,
)

_RNG_SEED = 2025


def _explain_crash(explain, *, per_row=None):
    """A ``crash_hint`` for :func:`check_exercise`, for this chapter's arrays.

    When NumPy refuses the shapes, the learner gets the shared
    :func:`broadcast_hint` (a keepdims slip) if it applies, then
    ``explain(*args)``, which spells out the shapes of this case and how
    they combine. Python's ``max`` on a 2-D array (it compares whole
    rows) and a sum into an integer array get their own hint; any other
    error gets none.

    ``per_row(*args)``, when given, is an array with one number per row
    of the exercise's scores, shape ``(N,)``: the shared hint names an
    ``(N, N)`` table built from such a quantity only when one is among
    the arguments, and a lookup's arguments have none.
    """
    def hint(error, args):
        python_on_arrays = truth_value_hint(error, of_scores=per_row is not None)
        if python_on_arrays:
            return python_on_arrays
        if isinstance(error, TypeError) and re.search(r"Cannot cast .* to dtype\('u?int",
                                                      str(error)):
            return ("An array of integers cannot take floats in place (+=): build it as "
                    "floats, np.zeros(shape) without dtype=int, or np.zeros_like of a "
                    "float array")
        if not refuses_shapes(error):
            return None
        shared = broadcast_hint(error, args if per_row is None else (*args, per_row(*args)))
        return f"{shared}. {explain(*args)}" if shared else explain(*args)
    return hint


def _is_pair(part):
    """Whether ``part`` is a forward's ``(out, cache)``: a cache is a NamedTuple."""
    return isinstance(part, tuple) and any(hasattr(p, "_fields") for p in part)


def _kind_of_result(name, attempt, *, pieces=None):
    """``attempt``, with a hint when its result is the wrong kind of thing.

    A generator (a ``(... for ...)`` expression without ``tuple``) and a
    tuple of ``(out, cache)`` pairs get their own hint. ``pieces(result,
    args)``, for an exercise whose answer is one array, gives the hint for
    a list or tuple of arrays, which would otherwise count as so many
    answers.
    """
    def run(*args):
        result = attempt(*args)
        if isinstance(result, types.GeneratorType):
            raise ExerciseError(
                name, "your function returned a generator, from a `(... for ...)` "
                "expression: it holds no arrays until it is run; write tuple(...) around "
                "it, or return the arrays themselves")
        if not isinstance(result, tuple | list):
            return result
        if pieces is None and any(_is_pair(part) for part in result):
            raise ExerciseError(
                name, "your function returned pairs (out, cache) where arrays belong: "
                "linear_forward, like every forward, returns the pair; unpack each one, "
                "e.g. `q, _ = linear_forward(x, params[\"w_q\"], params[\"b_q\"])`")
        if (pieces is not None and len(result) > 1
                and all(isinstance(part, np.ndarray) for part in result)):
            raise ExerciseError(name, pieces(result, args))
        return result
    return run


def soft_lookup(queries, keys, values):
    """Reference: ``softmax(queries @ keys.T) @ values``, over the keys."""
    weights, _ = softmax_forward(queries @ keys.T, axis=-1)     # (T, S)
    return weights @ values                                     # (T, Dv)


def _hard_lookup(queries, keys, values):
    best = np.argmax(queries @ keys.T, axis=-1)                 # (T,)
    return values[best]


def _softmax_over_queries(queries, keys, values):
    weights, _ = softmax_forward(queries @ keys.T, axis=0)
    return weights @ values


def _not_normalised(queries, keys, values):
    return np.exp(queries @ keys.T) @ values


def _normalised_over_everything(queries, keys, values):
    e = np.exp(queries @ keys.T)
    return e / e.sum() @ values


def _raw_scores(queries, keys, values):
    return (queries @ keys.T) @ values


def _plain_mean(queries, keys, values):
    return np.broadcast_to(values.mean(axis=0), (len(queries), values.shape[1]))


def _scaled_by_sqrt_dk(queries, keys, values):
    return soft_lookup(queries / np.sqrt(queries.shape[-1]), keys, values)


def _scores_divided_by_s(queries, keys, values):
    return soft_lookup(queries / len(keys), keys, values)


def _output_divided_by_s(queries, keys, values):
    return soft_lookup(queries, keys, values) / len(keys)


def _keys_averaged(queries, keys, values):
    return soft_lookup(queries, keys, keys)


def _max_of_each_column(queries, keys, values):
    scores = queries @ keys.T                                   # (T, S)
    e = np.exp(scores - scores.max(axis=0))                     # one max per key
    return e / e.sum(axis=-1, keepdims=True) @ values


def _weights_returned(queries, keys, values):
    weights, _ = softmax_forward(queries @ keys.T, axis=-1)
    return weights


def _lookup_shapes(queries, keys, values):
    return (f"Here queries is {queries.shape} (T, Dk), keys {keys.shape} (S, Dk) "
            f"and values {values.shape} (S, Dv): the scores queries @ keys.T are "
            "(T, S), one row per query, and weights @ values is (T, Dv).")


def check_soft_lookup(attempt):
    """Exercise 1: ``soft_lookup(queries, keys, values) -> (T, Dv)``."""
    rng = np.random.default_rng(_RNG_SEED)
    cases = []
    for t, s, d_k, d_v in [(3, 4, 2, 5), (1, 5, 3, 2), (6, 2, 5, 3)]:
        cases.append((rng.normal(size=(t, d_k)), rng.normal(size=(s, d_k)),
                      rng.normal(size=(s, d_v))))
    name = "Exercise 1 (soft lookup)"
    require_function(name, attempt)

    def pieces(result, args):
        queries, _, values = args
        found = f"your function returned a {type(result).__name__} of {len(result)} arrays"
        if all(part.shape == values.shape[1:] for part in result):
            return (f"{found}, one row per query, where the answer is one (T, Dv) array: "
                    "build it with np.stack(rows), or do every query at once, "
                    "weights @ values")
        return f"{found}: return only the answer, one (T, Dv) array"

    check_exercise(
        name, _kind_of_result(name, attempt, pieces=pieces), soft_lookup, cases,
        # each query has one row of scores: a per-query max or sum is (T,)
        crash_hint=_explain_crash(_lookup_shapes, per_row=lambda q, k, v: q[:, 0]),
        mistakes=[
            (_hard_lookup, "that is the hard lookup (all the weight on the best key); "
                           "soften it: weights = softmax(scores), then a weighted average"),
            (_softmax_over_queries, "each query's weights must sum to 1 over the keys: "
                                    "take the softmax over the last axis, not the queries"),
            (_not_normalised, "exp(scores) are not weights yet: divide each row by its sum "
                              "(that is the softmax) so the output is an average"),
            (_normalised_over_everything, "exp(scores) was divided by its sum over the "
                                          "whole (T, S) matrix: each query's weights must "
                                          "sum to 1 on their own, so divide each row by "
                                          "its own sum, .sum(axis=-1, keepdims=True)"),
            (_raw_scores, "the raw scores are not weights (they can be negative and do not "
                          "sum to 1): pass them through a softmax first"),
            (_plain_mean, "every query got the plain mean of the values: the weights must "
                          "come from how well the query matches each key"),
            (_scaled_by_sqrt_dk, "the scores were divided by sqrt(Dk): attention_forward "
                                 "does that (Chapter 2 explains why), but this lookup uses "
                                 "the plain dot products queries @ keys.T, with no scale"),
            (_scores_divided_by_s, "the scores were divided by S: use the plain dot "
                                   "products queries @ keys.T; the softmax does all the "
                                   "normalising"),
            (_keys_averaged, "the weights averaged the keys: the keys only decide the "
                             "weights, the output is their weighted average of the values, "
                             "weights @ values"),
            (_output_divided_by_s, "the output was divided by S: the softmax weights "
                                   "already sum to 1, so weights @ values is already the "
                                   "weighted average"),
            (_max_of_each_column, "the max subtracted was each key's (axis=0), not each "
                                  "query's: a softmax is unchanged only by the same "
                                  "number taken from its whole row, so subtract "
                                  "scores.max(axis=-1, keepdims=True)"),
            (_weights_returned, "that is the weights, one row of S numbers per query: the "
                                "answer is what they average, weights @ values, (T, Dv)"),
        ],
    )


def project_qkv(x, params):
    """Reference: ``(q, k, v)``, each ``x @ w + b``, its own weights."""
    q, _ = linear_forward(x, params["w_q"], params["b_q"])      # (B, T, Dk)
    k, _ = linear_forward(x, params["w_k"], params["b_k"])      # (B, T, Dk)
    v, _ = linear_forward(x, params["w_v"], params["b_v"])      # (B, T, Dv)
    return q, k, v


def _without_biases(missing):
    """Planted mistake: the projections in ``missing`` lack their bias."""
    def wrong(x, params):
        return tuple(x @ params[f"w_{n}"] + (0.0 if n in missing else params[f"b_{n}"])
                     for n in "qkv")
    return wrong


def _missing_bias_hint(missing):
    if len(missing) == 3:
        return "the biases are missing: q = x @ w_q + b_q, and the same for k and v"
    if len(missing) == 1:
        which = f"{missing[0]} is missing its bias"
    else:
        which = f"{' and '.join(missing)} are missing their biases"
    return f"{which}: " + ", ".join(f"{n} = x @ w_{n} + b_{n}" for n in missing)


_BIAS_SUBSETS = ("q", "k", "v", "qk", "qv", "kv", "qkv")


def _keys_with_query_weights(x, params):
    q, _, v = project_qkv(x, params)
    return q, x @ params["w_q"] + params["b_q"], v


def _in_order(order):
    """The projections right, returned in ``order`` (e.g. ``"kqv"``) instead of q, k, v."""
    def wrong(x, params):
        q, k, v = project_qkv(x, params)
        return tuple({"q": q, "k": k, "v": v}[name] for name in order)
    return wrong


def _values_with_key_weights(x, params):
    q, k, _ = project_qkv(x, params)
    return q, k, x @ params["w_k"] + params["b_k"]


def _query_bias_for_keys(x, params):
    q, _, v = project_qkv(x, params)
    return q, x @ params["w_k"] + params["b_q"], v


def _query_bias_for_values(x, params):
    q, k, _ = project_qkv(x, params)
    return q, k, x @ params["w_v"] + params["b_q"]


def _query_bias_everywhere(x, params):
    return tuple(x @ params[f"w_{n}"] + params["b_q"] for n in "qkv")


def _no_query_key_projection(x, params):
    return x, x, x @ params["w_v"] + params["b_v"]


def _no_projection(x, params):
    return x, x, x


def _values_not_projected(x, params):
    q, k, _ = project_qkv(x, params)
    return q, k, x


def _random_params(rng, d, d_k, d_v):
    shapes = {"w_q": (d, d_k), "b_q": (d_k,), "w_k": (d, d_k), "b_k": (d_k,),
              "w_v": (d, d_v), "b_v": (d_v,)}
    return {key: rng.normal(size=shape) for key, shape in shapes.items()}


def _projection_shapes(x, params):
    return (f"Here x is {x.shape} (B, T, D) and w_q is {params['w_q'].shape} (D, Dk): "
            "the weights multiply from the right, so x @ w_q + b_q is (B, T, Dk), "
            "and the same for k and v.")


def check_project_qkv(attempt):
    """Exercise 2: ``project_qkv(x, params) -> (q, k, v)``."""
    rng = np.random.default_rng(_RNG_SEED + 1)
    cases = []
    for b, t, d, d_k, d_v in [(2, 3, 4, 5, 2), (1, 4, 3, 2, 6), (3, 1, 5, 3, 4)]:
        cases.append((rng.normal(size=(b, t, d)), _random_params(rng, d, d_k, d_v)))
    # Dk = Dv in the probe: the query bias then fits the values too, so an
    # attempt that adds b_q to v runs there and gets its hint
    probe = (rng.normal(size=(2, 3, 4)), _random_params(rng, 4, 3, 3))
    name = "Exercise 2 (project q, k, v)"
    require_function(name, attempt)
    check_exercise(
        name, _kind_of_result(name, attempt), project_qkv, cases,
        probes=[probe], crash_hint=_explain_crash(_projection_shapes),
        mistakes=[
            *((_without_biases(m), _missing_bias_hint(m)) for m in _BIAS_SUBSETS),
            (_keys_with_query_weights, "the keys were made with the query weights: each "
                                       "projection has its own, k = x @ w_k + b_k"),
            (_in_order("qvk"), "k and v are swapped: return them in the order (q, k, v)"),
            (_in_order("kqv"), "q and k are swapped: return them in the order (q, k, v), "
                           "q = x @ w_q + b_q first"),
            (_in_order("vkq"), "q and v are swapped: return them in the order (q, k, v)"),
            *((wrong, "q, k and v are in the wrong order: return them as (q, k, v)")
              for wrong in (_in_order("kvq"), _in_order("vqk"))),
            (_values_with_key_weights, "the values were made with the key weights: each "
                                       "projection has its own, v = x @ w_v + b_v"),
            *((wrong, "the query bias b_q was reused: each projection has its own bias, "
                      "k = x @ w_k + b_k and v = x @ w_v + b_v")
              for wrong in (_query_bias_for_keys, _query_bias_for_values,
                            _query_bias_everywhere)),
            (_no_query_key_projection, "q and k must be projections of x, not x itself; "
                                       "with q = k = x each token mostly attends to itself"),
            (_no_projection, "q, k and v are x itself: each is its own projection of x, "
                             "q = x @ w_q + b_q, k = x @ w_k + b_k, v = x @ w_v + b_v"),
            (_values_not_projected, "v is x itself: the values are a projection of x too, "
                                    "v = x @ w_v + b_v, (B, T, Dv)"),
        ],
    )


def self_attention_dx(dq, dk, dv, params):
    """Reference: ``dx`` of self-attention from ``dq``, ``dk``, ``dv``."""
    dx_q = dq @ params["w_q"].T                                 # (B, T, D)
    dx_k = dk @ params["w_k"].T                                 # (B, T, D)
    dx_v = dv @ params["w_v"].T                                 # (B, T, D)
    return dx_q + dx_k + dx_v


def _query_path_only(dq, dk, dv, params):
    return dq @ params["w_q"].T


def _value_path_dropped(dq, dk, dv, params):
    return dq @ params["w_q"].T + dk @ params["w_k"].T


def _key_path_dropped(dq, dk, dv, params):
    return dq @ params["w_q"].T + dv @ params["w_v"].T


def _query_path_dropped(dq, dk, dv, params):
    return dk @ params["w_k"].T + dv @ params["w_v"].T


def _key_path_with_query_weights(dq, dk, dv, params):
    return dq @ params["w_q"].T + dk @ params["w_q"].T + dv @ params["w_v"].T


def _value_path_only(dq, dk, dv, params):
    return dv @ params["w_v"].T


def _query_key_weights_swapped(dq, dk, dv, params):
    return dq @ params["w_k"].T + dk @ params["w_q"].T + dv @ params["w_v"].T


def _summed_over_batch(dq, dk, dv, params):
    return self_attention_dx(dq, dk, dv, params).sum(axis=0)


def _paths_concatenated(dq, dk, dv, params):
    return np.concatenate([dq @ params["w_q"].T, dk @ params["w_k"].T,
                           dv @ params["w_v"].T], axis=-1)


def _paths_averaged(dq, dk, dv, params):
    return self_attention_dx(dq, dk, dv, params) / 3


def _dx_shapes(dq, dk, dv, params):
    return (f"Here dq is {dq.shape} (B, T, Dk) and w_q is {params['w_q'].shape} "
            "(D, Dk): each path is its gradient times its weights transposed, "
            "dq @ w_q.T, which is (B, T, D) like x; the same for k and v.")


def check_self_attention_dx(attempt):
    """Exercise 3: ``self_attention_dx(dq, dk, dv, params) -> dx``."""
    rng = np.random.default_rng(_RNG_SEED + 2)
    cases = []
    for b, t, d, d_k, d_v in [(2, 3, 4, 5, 2), (1, 4, 6, 3, 5), (3, 2, 3, 2, 4)]:
        params = _random_params(rng, d, d_k, d_v)
        cases.append((rng.normal(size=(b, t, d_k)), rng.normal(size=(b, t, d_k)),
                      rng.normal(size=(b, t, d_v)), params))
    name = "Exercise 3 (self-attention dx)"
    require_function(name, attempt)

    def pieces(result, args):
        found = f"your function returned a {type(result).__name__} of {len(result)} arrays"
        if len(result) == 3:
            return (f"{found}, where dx is one (B, T, D) array: x feeds all three paths, "
                    "so their gradients add, dx = dq @ w_q.T + dk @ w_k.T + dv @ w_v.T")
        return f"{found}: return only dx, one (B, T, D) array"

    check_exercise(
        name, _kind_of_result(name, attempt, pieces=pieces), self_attention_dx, cases,
        crash_hint=_explain_crash(_dx_shapes),
        mistakes=[
            (_query_path_only, "only the query path: x also feeds the keys and the values, "
                               "and each path adds its own term to dx"),
            (_value_path_dropped, "the value path is missing: v = x @ w_v + b_v depends on "
                                  "x too, so add dv @ w_v.T"),
            (_key_path_dropped, "the key path is missing: k = x @ w_k + b_k depends on x "
                                "too, so add dk @ w_k.T"),
            (_query_path_dropped, "the query path is missing: q = x @ w_q + b_q depends on "
                                  "x too, so add dq @ w_q.T"),
            (_key_path_with_query_weights, "the key path went back through w_q: each "
                                           "path goes back through the weights that made "
                                           "it, so the key path is dk @ w_k.T"),
            (_value_path_only, "only the value path: x also feeds the queries and the keys, "
                               "and each path adds its own term to dx"),
            (_query_key_weights_swapped, "the query and key paths went back through each "
                                         "other's weights: dq came from w_q, so it goes "
                                         "back through w_q.T, and dk through w_k.T"),
            (_summed_over_batch, "x is an input, not a shared parameter: every sequence "
                                 "has its own x, so dx keeps the batch axis, (B, T, D)"),
            (_paths_concatenated, "the three paths add up, they are not placed side by "
                                  "side: each is (B, T, D) like x, and dx is their sum"),
            (_paths_averaged, "the three paths add up, they are not averaged: the chain "
                              "rule sums over every path from x to the loss"),
        ],
    )
