"""Checkers for Chapter 4's exercises, "Multi-head attention"."""

import inspect

import numpy as np

from attention_from_scratch.core.multi_head import merge_heads, split_heads
from attention_from_scratch.exercises import (
    ExerciseError,
    check_exercise,
    inputs_kept,
    require_function,
)
from attention_from_scratch.measure.flops import multi_head_matmul_flops

_RNG_SEED = 2044
# why a backward must leave its dout as it was, for inputs_kept
RESIDUAL_DOUT = {"dout": "A block's backward uses dout again: the residual path sends the "
                         "same dout around the sub-layer, dx = dout + dsublayer"}

# (shape of x, H): leading axes, T, H and Dh all different; the 2-D case
# first, then one and two leading axes
_SPLIT_CASES = [((3, 8), 2), ((2, 5, 12), 4), ((3, 2, 4, 30), 5)]


def _split_cases(seed):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=shape), h) for shape, h in _SPLIT_CASES]


def _straight_reshape(x, n_heads):
    *lead, t, d = x.shape
    return x.reshape(*lead, n_heads, t, d // n_heads)


def _no_swap(x, n_heads):
    *lead, t, d = x.shape
    return x.reshape(*lead, t, n_heads, d // n_heads)


def _every_h_th_column(x, n_heads):
    *lead, t, d = x.shape
    return np.swapaxes(np.swapaxes(x.reshape(*lead, t, d // n_heads, n_heads), -1, -2), -2, -3)


def _swap_front_axes(x, n_heads):
    *lead, t, d = x.shape
    return np.swapaxes(x.reshape(*lead, t, n_heads, d // n_heads), 0, 1)


def _stack_on_first_axis(x, n_heads):
    d_head = x.shape[-1] // n_heads
    return np.stack([x[..., h * d_head:(h + 1) * d_head] for h in range(n_heads)], axis=0)


_FRONT_AXES_HINT = ("it works without leading axes but not with them: count axes from the "
                    "end, T is axis -3 and H axis -2 of the reshaped array, not 0 and 1")


_SPLIT_NAME = "Exercise 1 (split_heads)"


def _one_array(attempt):
    """Wrap ``attempt`` so that a list of heads gets its own hint."""
    def checked(*args):
        result = attempt(*args)
        if isinstance(result, (list, tuple)):
            raise ExerciseError(
                _SPLIT_NAME, "return one array of shape (..., H, T, Dh), not a "
                f"{type(result).__name__} of {len(result)} heads; np.stack(heads, axis=-3) "
                "stacks them")
        return result
    return checked


def _n_heads_passed(split):
    """Call ``split(x, n_heads=h)`` when ``split`` has a parameter ``n_heads``
    (the package's is keyword-only), else ``split(x, h)``: an answer that
    renamed it, ``my_split_heads(x, h)``, still gets checked."""
    try:
        by_name = "n_heads" in inspect.signature(split).parameters
    except (TypeError, ValueError):          # no signature to read: try the name
        by_name = True
    if by_name:
        return lambda x, n_heads: split(x, n_heads=n_heads)
    return lambda x, n_heads: split(x, n_heads)


def leading_axes_hint(error, args):
    """The hint for a shape unpacked into a fixed number of names, or None.

    ``b, t, d = x.shape`` fits one number of axes only; the hidden cases
    have several.
    """
    if isinstance(error, ValueError) and "values to unpack" in str(error):
        return ("The arrays may have any number of leading axes (the `...` of the "
                "shapes), and the hidden cases have several numbers of them. Unpack a shape "
                "from the end with a starred name, as in `*lead, t, d = x.shape`, and count "
                "axes from the end, -1, -2, ...")
    return None


def _split_crash_hint(error, args):
    """The hint for a head width computed with ``/``, or for a fixed number
    of axes; None for anything else."""
    if isinstance(error, TypeError) and "'float' object cannot be interpreted" in str(error):
        x, n_heads = args
        return (f"D / H is a float ({x.shape[-1]} / {n_heads} = {x.shape[-1] / n_heads}), and "
                "a shape takes integers: the head width is d // n_heads")
    return leading_axes_hint(error, args)


def check_split_heads(attempt):
    """Exercise 1a: ``my_split_heads(x, n_heads)``.

    ``(..., T, D) -> (..., H, T, Dh)``.
    """
    require_function(_SPLIT_NAME, attempt)
    check_exercise(
        _SPLIT_NAME, _one_array(_n_heads_passed(attempt)), _n_heads_passed(split_heads),
        _split_cases(_RNG_SEED),
        mistakes=[
            (_straight_reshape, "you reshaped (..., T, D) straight to (..., H, T, Dh): that "
                                "cuts the rows into chunks and mixes positions; reshape to "
                                "(..., T, H, Dh) and then swap the T and H axes"),
            (_no_swap, "that is (..., T, H, Dh): the heads must come before the positions, "
                       "swap axes -3 and -2"),
            (_every_h_th_column, "head h owns the block of columns h*Dh to (h+1)*Dh - 1, "
                                 "not every H-th column: reshape the last axis to (H, Dh), "
                                 "not (Dh, H)"),
            (_swap_front_axes, _FRONT_AXES_HINT),
            (_stack_on_first_axis, "np.stack(heads, axis=0) puts the heads in front of the "
                                   "leading (batch) axes; count from the end: stack along "
                                   "axis=-3, just before T"),
        ],
        rtol=0, atol=0, crash_hint=_split_crash_hint,
    )


def _merge_cases(seed):
    return [(split_heads(x, n_heads=h),) for x, h in _split_cases(seed)]


def _merge_straight_reshape(heads):
    *lead, h, t, d_head = heads.shape
    return heads.reshape(*lead, t, h * d_head)


def _merge_along_positions(heads):
    return np.concatenate([heads[..., h, :, :] for h in range(heads.shape[-3])], axis=-2)


def _merge_front_axes(heads):
    *lead, h, t, d_head = heads.shape
    return np.swapaxes(heads, 0, 1).reshape(*lead, t, h * d_head)


def _merge_list_of_first_axis(heads):
    return np.concatenate(list(heads), axis=-1)


def _merge_every_h_th_column(heads):
    *lead, h, t, d_head = heads.shape
    return np.moveaxis(heads, -3, -1).reshape(*lead, t, h * d_head)


def _merge_swapped_last_axes(heads):
    *lead, h, t, d_head = heads.shape
    return np.swapaxes(heads, -1, -2).reshape(*lead, t, h * d_head)


def check_merge_heads(attempt):
    """Exercise 1b: ``my_merge_heads(heads)``.

    ``(..., H, T, Dh) -> (..., T, D)``.
    """
    check_exercise(
        "Exercise 1 (merge_heads)", attempt, merge_heads, _merge_cases(_RNG_SEED + 1),
        mistakes=[
            (_merge_straight_reshape, "you reshaped (..., H, T, Dh) straight to (..., T, D): "
                                      "that mixes positions; swap the H and T axes first, "
                                      "then reshape"),
            (_merge_along_positions, "you stacked the heads along the positions; concatenate "
                                     "them along the feature axis (-1)"),
            (_merge_front_axes, "it works without leading axes but not with them: count "
                                "axes from the end, H and T are axes -3 and -2 of "
                                "(..., H, T, Dh), not 0 and 1"),
            (_merge_list_of_first_axis, "list(heads) runs over the first axis, which is the "
                                        "batch once there are leading axes, not the heads: "
                                        "take heads[..., h, :, :] for h in range(H), or swap "
                                        "H and T and reshape"),
            (_merge_swapped_last_axes, "you swapped the last two axes, T and Dh; swap H and "
                                       "T, axes -3 and -2, then reshape"),
            (_merge_every_h_th_column, "moving H to the end interleaves the heads' columns "
                                       "(every H-th column); head h owns the block of "
                                       "columns h*Dh to (h+1)*Dh - 1: swap H and T, axes -3 "
                                       "and -2, then reshape"),
        ],
        rtol=0, atol=0, crash_hint=leading_axes_hint,
    )


def output_projection_backward(dout, heads, w_o):
    """Reference: gradients ``(dheads, dw_o, db_o)`` of
    ``out = merge_heads(heads) @ w_o + b_o``."""
    d_model = w_o.shape[0]
    concat = merge_heads(heads)                                   # (..., T, D)
    dconcat = dout @ w_o.T                                        # (..., T, D)
    dw_o = concat.reshape(-1, d_model).T @ dout.reshape(-1, d_model)
    db_o = dout.reshape(-1, d_model).sum(axis=0)
    return split_heads(dconcat, n_heads=heads.shape[-3]), dw_o, db_o


def _backward_cases(seed):
    rng = np.random.default_rng(seed)
    cases = []
    # no leading axis, one, then two: a sum over the first leading axis alone
    # is right on the first three
    for heads_shape in [(2, 3, 4), (2, 3, 5, 4), (4, 3, 2, 5), (3, 2, 4, 5, 6)]:
        *lead, h, t, d_head = heads_shape
        d = h * d_head
        cases.append((rng.normal(size=(*lead, t, d)), rng.normal(size=heads_shape),
                      rng.normal(size=(d, d))))
    return cases


def _dheads_not_split(dout, heads, w_o):
    _, dw_o, db_o = output_projection_backward(dout, heads, w_o)
    return dout @ w_o.T, dw_o, db_o


def _dheads_straight_reshape(dout, heads, w_o):
    _, dw_o, db_o = output_projection_backward(dout, heads, w_o)
    return _straight_reshape(dout @ w_o.T, heads.shape[-3]), dw_o, db_o


def _w_o_not_transposed(dout, heads, w_o):
    _, dw_o, db_o = output_projection_backward(dout, heads, w_o)
    return split_heads(dout @ w_o, n_heads=heads.shape[-3]), dw_o, db_o


def _dw_o_transposed(dout, heads, w_o):
    dheads, dw_o, db_o = output_projection_backward(dout, heads, w_o)
    return dheads, dw_o.T, db_o


def _db_o_averaged(dout, heads, w_o):
    dheads, dw_o, db_o = output_projection_backward(dout, heads, w_o)
    return dheads, dw_o, db_o / (dout.size // dout.shape[-1])


def _dw_o_from_straight_merge(dout, heads, w_o):
    dheads, _, db_o = output_projection_backward(dout, heads, w_o)
    d = w_o.shape[0]
    return dheads, _merge_straight_reshape(heads).reshape(-1, d).T @ dout.reshape(-1, d), db_o


def _dw_o_summed_over_first_axis(dout, heads, w_o):
    dheads, _, _ = output_projection_backward(dout, heads, w_o)
    concat = merge_heads(heads)                                   # (..., T, D)
    dw_o = np.swapaxes(concat, -1, -2) @ dout                     # (..., D, D)
    db_o = dout.sum(axis=-2)                                      # (..., D)
    if dw_o.ndim == 3:                                            # one leading axis only
        dw_o, db_o = dw_o.sum(axis=0), db_o.sum(axis=0)
    return dheads, dw_o, db_o


def _dheads_not_swapped(dout, heads, w_o):
    _, dw_o, db_o = output_projection_backward(dout, heads, w_o)
    return _no_swap(dout @ w_o.T, heads.shape[-3]), dw_o, db_o


def _dw_o_per_sequence(dout, heads, w_o):
    dheads, _, _ = output_projection_backward(dout, heads, w_o)
    concat = merge_heads(heads)                                   # (..., T, D)
    return dheads, np.swapaxes(concat, -1, -2) @ dout, dout.sum(axis=-2)


def _dheads_every_h_th_column(dout, heads, w_o):
    _, dw_o, db_o = output_projection_backward(dout, heads, w_o)
    return _every_h_th_column(dout @ w_o.T, heads.shape[-3]), dw_o, db_o


def _dw_o_from_interleaved_merge(dout, heads, w_o):
    dheads, _, db_o = output_projection_backward(dout, heads, w_o)
    d = w_o.shape[0]
    concat = _merge_every_h_th_column(heads)
    return dheads, concat.reshape(-1, d).T @ dout.reshape(-1, d), db_o


def check_output_projection_backward(attempt):
    """Exercise 2: ``my_output_backward(dout, heads, w_o)``.

    Returns ``(dheads, dw_o, db_o)``.
    """
    name = "Exercise 2 (output projection backward)"
    require_function(name, attempt)           # before the wrapper, callable anyway
    check_exercise(
        name, inputs_kept(name, attempt, output_projection_backward, rtol=1e-8, atol=1e-10,
                          fix="dconcat = dout @ w_o.T, not dout @= w_o.T", why=RESIDUAL_DOUT),
        output_projection_backward, _backward_cases(_RNG_SEED + 2),
        mistakes=[
            (_dheads_not_split, "dheads must have the heads' shape (..., H, T, Dh): the "
                                "backward of merge_heads is split_heads"),
            (_dheads_straight_reshape, "the backward of merge_heads is its inverse, "
                                       "split_heads: reshape to (..., T, H, Dh) and swap T "
                                       "and H, not a straight reshape to (..., H, T, Dh)"),
            (_w_o_not_transposed, "the gradient flows back through W_O transposed: "
                                  "dconcat = dout @ w_o.T"),
            (_dw_o_transposed, "dw_o is transposed: it is concat^T @ dout, of shape "
                               "(D_in, D_out); with a square W_O the shape cannot warn you"),
            (_db_o_averaged, "db_o is averaged; every position adds its own term, so it is "
                             "a sum over all positions"),
            (_dw_o_from_straight_merge, "dw_o needs the merged heads, concat = "
                                        "merge_heads(heads): swap H and T, then reshape"),
            (_dheads_not_swapped, "dheads is (..., T, H, Dh): split_heads ends by swapping "
                                  "T and H, axes -3 and -2, for (..., H, T, Dh)"),
            (_dw_o_per_sequence, "dw_o and db_o have one gradient per sequence here: W_O and "
                                 "b_o are shared by every sequence and position, so sum "
                                 "over all the leading axes too, concat.reshape(-1, D).T @ "
                                 "dout.reshape(-1, D)"),
            (_dheads_every_h_th_column, "dheads takes every H-th column of dconcat for a "
                                        "head; head h owns the block of columns h*Dh to "
                                        "(h+1)*Dh - 1: reshape the last axis to (H, Dh), "
                                        "not (Dh, H), then swap T and H"),
            (_dw_o_from_interleaved_merge, "dw_o needs concat = merge_heads(heads), whose "
                                           "columns are head 0's block, then head 1's ...; "
                                           "moving H to the end interleaves them: swap H "
                                           "and T, axes -3 and -2, then reshape"),
            (_dw_o_summed_over_first_axis, "dw_o and db_o sum over every leading axis, not "
                                           "only the first: with heads of shape (B1, B2, "
                                           "H, T, Dh) there are two; flatten them all into "
                                           "rows, concat.reshape(-1, D).T @ "
                                           "dout.reshape(-1, D)"),
        ],
        # float64 in, float64 out: float32's round-off (about 1e-7) is refused
        rtol=1e-8, atol=1e-10, crash_hint=leading_axes_hint,
    )


def multi_head_cost(b, t, s, d, n_heads):
    """Reference: ``(parameters, forward FLOPs)`` of the layer."""
    return 4 * d * d + 4 * d, multi_head_matmul_flops(b, t, d, n_heads, s=s)[0]


# (b, t, s, d, n_heads): in the first case B, T, S, D, H and Dh all differ,
# so no two planted mistakes give the same number
_COST_CASES = [(3, 4, 5, 12, 6), (4, 16, 9, 12, 2), (1, 7, 7, 64, 8), (3, 10, 4, 30, 5)]


def _params_per_head(b, t, s, d, n_heads):
    return n_heads * (4 * d * d + 4 * d), multi_head_cost(b, t, s, d, n_heads)[1]


def _no_biases(b, t, s, d, n_heads):
    return 4 * d * d, multi_head_cost(b, t, s, d, n_heads)[1]


def _multiply_adds(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops // 2


def _no_batch(b, t, s, d, n_heads):
    return multi_head_cost(1, t, s, d, n_heads)


def _one_head_only(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops - (n_heads - 1) * 2 * (2 * b * t * s * (d // n_heads))


def _no_weighted_sum(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops - 2 * b * t * s * d


def _keys_with_t(b, t, s, d, n_heads):
    return multi_head_cost(b, t, t, d, n_heads)


def _kv_projections_with_t(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops + 2 * (2 * b * (t - s) * d * d)


def _three_matrices_per_head(extra):
    """Planted mistake: every head owns its own (D, D) W_Q, W_K, W_V."""
    def wrong(b, t, s, d, n_heads):
        return (n_heads * 3 * d * d + extra(d), multi_head_cost(b, t, s, d, n_heads)[1])
    return wrong


def _heads_of_width_d(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops + (n_heads - 1) * 4 * b * t * s * d


def _no_output_projection(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops - 2 * b * t * d * d


def _bias_additions_counted(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops + 2 * b * t * d + 2 * b * s * d


def _scale_counted(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params, flops + b * n_heads * t * s


def _key_bias_left_out(b, t, s, d, n_heads):
    params, flops = multi_head_cost(b, t, s, d, n_heads)
    return params - d, flops


def check_multi_head_cost(attempt):
    """Exercise 3: ``my_multi_head_cost(b, t, s, d, n_heads)``.

    Returns ``(params, flops)``.
    """
    check_exercise(
        "Exercise 3 (multi-head cost)", attempt, multi_head_cost, _COST_CASES,
        mistakes=[
            (_params_per_head, "H heads do not multiply the parameters: each head owns "
                               "D/H columns of the same four (D, D) matrices"),
            (_no_biases, "count the four bias vectors too, D numbers each"),
            (_multiply_adds, "count 2 FLOPs per multiply-add, one multiply and one add"),
            (_no_batch, "every sequence of the batch pays for its own products: the FLOPs "
                        "grow with b"),
            (_one_head_only, "the scores and the weighted sum are computed in every head: "
                             "H heads x 2 x (2 B T S Dh)"),
            (_no_weighted_sum, "count the weighted sum weights @ V too: 2 B T S Dh in "
                               "every head, as much as the scores"),
            (_keys_with_t, "keys and values are projected from x_kv, which has S positions, "
                           "and the scores are T x S"),
            (_kv_projections_with_t, "the key and value projections run over x_kv, which "
                                     "has S positions, not T: 2 x (2 B S D^2)"),
            *((_three_matrices_per_head(extra), "the heads do not each own three (D, D) "
                                                "matrices (H 3 D^2): the H heads share one "
                                                "W_Q, W_K and W_V of shape (D, D), each head "
                                                "using D/H of their columns; with W_O and "
                                                "the biases that is 4 D^2 + 4 D")
              for extra in (lambda d: 0, lambda d: d * d, lambda d: d * d + 4 * d)),
            (_heads_of_width_d, "each head works in Dh = D / H dimensions, so the H heads "
                                "together cost what one head of width D costs"),
            (_no_output_projection, "don't forget the output projection concat @ W_O"),
            (_bias_additions_counted, "leave the bias additions out, as the exercise says: "
                                      "count the matrix products only (the four biases "
                                      "add 2 B T D + 2 B S D)"),
            (_scale_counted, "leave the scaling by 1/sqrt(Dh) out, as the exercise says: "
                             "count the matrix products only (the scale is B H T S "
                             "multiplications)"),
            (_key_bias_left_out, "count all four biases, b_k too: its gradient is always "
                                 "zero (softmax ignores a shift shared by a query's "
                                 "scores), but it is one of the layer's parameters, D "
                                 "numbers"),
        ],
        rtol=0, atol=0,
    )
