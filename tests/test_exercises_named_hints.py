"""The mistakes learners made in Chapters 0-6, each planted as a learner
wrote it, each answered by its own named hint."""

import time

import numpy as np
import pytest

from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.core.multi_head import multi_head_attention_forward
from attention_from_scratch.core.softmax import softmax_forward
from attention_from_scratch.exercises import ExerciseError, broadcast_hint
from attention_from_scratch.exercises import chapter00 as ch0
from attention_from_scratch.exercises import chapter01 as ch1
from attention_from_scratch.exercises import chapter02 as ch2
from attention_from_scratch.exercises import chapter03 as ch3
from attention_from_scratch.exercises import chapter04 as ch4
from attention_from_scratch.exercises import chapter05 as ch5
from attention_from_scratch.exercises import chapter06 as ch6


def hint_of(check, attempt):
    with pytest.raises(ExerciseError) as caught:
        check(attempt)
    return caught.value.message


def softmax_rows(scores, axis=-1):
    e = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# Chapter 0

def test_ch0_ex1_division_by_two_times_eps():
    def central_difference(f, x, eps):
        return (f(x + eps) - f(x - eps)) / 2*eps
    assert "`(a / 2) * eps`" in hint_of(ch0.check_central_difference, central_difference)


def test_ch0_ex3_leading_y_forgotten():
    def fixed_softmax_backward(dy, y):
        return dy - (dy * y).sum(axis=-1, keepdims=True)
    assert "the leading y is missing" in hint_of(ch0.check_fixed_softmax_backward,
                                                 fixed_softmax_backward)


# Chapter 1

def test_ch1_ex1_the_out_cache_pair_used_as_the_weights():
    def soft_lookup(queries, keys, values):
        weights = softmax_forward(queries @ keys.T, axis=-1)
        return weights @ values
    hint = hint_of(ch1.check_soft_lookup, soft_lookup)
    assert hint.startswith("a tuple or list was used where an array belongs")
    assert "weights, _ = softmax_forward(scores)" in hint
    assert "NumPy refused the shapes" not in hint          # no shape tutorial
    assert "`return weights @ values`" in hint             # the learner's own line


def test_ch1_ex1_the_out_cache_pair_returned():
    def soft_lookup(queries, keys, values):
        weights, _ = softmax_forward(queries @ keys.T, axis=-1)
        return softmax_forward(weights @ values, axis=-1)
    hint = hint_of(ch1.check_soft_lookup, soft_lookup)
    assert hint.startswith("your function returned a tuple of 2 items")
    assert "(out, cache)" in hint


@pytest.mark.parametrize("which", ["k", "v", "kv"])
def test_ch1_ex2_the_query_bias_reused(which):
    def project_qkv(x, params):
        return tuple(x @ params[f"w_{n}"] + params["b_q" if n in which else f"b_{n}"]
                     for n in "qkv")
    # with b_q on v the widths Dk != Dv clash on every hidden case; a probe names it
    assert "the query bias b_q was reused" in hint_of(ch1.check_project_qkv, project_qkv)


def test_ch1_ex3_query_path_dropped_and_value_path_only():
    def without_query_path(dq, dk, dv, params):
        return dk @ params["w_k"].T + dv @ params["w_v"].T

    def value_path_only(dq, dk, dv, params):
        return dv @ params["w_v"].T
    assert "the query path is missing" in hint_of(ch1.check_self_attention_dx,
                                                   without_query_path)
    assert "only the value path" in hint_of(ch1.check_self_attention_dx, value_path_only)


def test_ch1_ex1_the_keys_averaged():
    def soft_lookup(queries, keys, values):
        return softmax_rows(queries @ keys.T) @ keys
    assert "the weights averaged the keys" in hint_of(ch1.check_soft_lookup, soft_lookup)


def test_ch1_ex2_q_and_k_swapped():
    def project_qkv(x, params):
        q = x @ params["w_q"] + params["b_q"]
        k = x @ params["w_k"] + params["b_k"]
        v = x @ params["w_v"] + params["b_v"]
        return k, q, v
    assert "q and k are swapped" in hint_of(ch1.check_project_qkv, project_qkv)


def test_ch1_ex2_values_with_the_key_weights():
    def project_qkv(x, params):
        q = x @ params["w_q"] + params["b_q"]
        k = x @ params["w_k"] + params["b_k"]
        return q, k, x @ params["w_k"] + params["b_k"]      # copied the line above
    assert "made with the key weights" in hint_of(ch1.check_project_qkv, project_qkv)


def test_ch1_ex3_query_and_key_weights_swapped():
    def self_attention_dx(dq, dk, dv, params):
        return dq @ params["w_k"].T + dk @ params["w_q"].T + dv @ params["w_v"].T
    assert "through each other's weights" in hint_of(ch1.check_self_attention_dx,
                                                     self_attention_dx)


def test_ch1_ex3_summed_over_the_batch():
    def self_attention_dx(dq, dk, dv, params):
        dx = dq @ params["w_q"].T + dk @ params["w_k"].T + dv @ params["w_v"].T
        return dx.sum(axis=0)                  # as a weight's gradient would be
    assert "dx keeps the batch axis" in hint_of(ch1.check_self_attention_dx,
                                                self_attention_dx)


def test_ch1_ex3_paths_side_by_side():
    def self_attention_dx(dq, dk, dv, params):
        return np.concatenate([dq @ params["w_q"].T, dk @ params["w_k"].T,
                               dv @ params["w_v"].T], axis=-1)
    assert "not placed side by side" in hint_of(ch1.check_self_attention_dx,
                                                self_attention_dx)


# Chapter 2

def test_ch2_ex1_multiplied_by_sqrt_dk():
    def scaled_scores(q, k):
        return q @ np.swapaxes(k, -1, -2) * np.sqrt(q.shape[-1])
    assert "you multiplied by sqrt(Dk)" in hint_of(ch2.check_scaled_scores, scaled_scores)


def test_ch2_ex2_softmax_over_the_queries():
    def attention_dv(dout, q, k, v):
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        return np.swapaxes(softmax_rows(scores, axis=-2), -1, -2) @ dout
    assert "normalised over axis -2" in hint_of(ch2.check_attention_dv, attention_dv)


def test_ch2_ex3_dk_and_dq_in_the_wrong_order():
    def attention_dq_dk(dout, q, k, v):
        dq, dk = ch2.attention_dq_dk(dout, q, k, v)
        return dk, dq
    assert "you returned (dk, dq)" in hint_of(ch2.check_attention_dq_dk, attention_dq_dk)


def test_ch2_ex4_tanh_dropped():
    def additive_scores(q, k, w_1, w_2, v_a):
        return ((q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]) @ v_a
    assert "the tanh is missing" in hint_of(ch2.check_additive_scores, additive_scores)


def test_ch2_ex2_dv_scaled():
    def attention_dv(dout, q, k, v):
        d_k = q.shape[-1]
        weights = softmax_rows(q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k))
        return np.swapaxes(weights, -1, -2) @ dout / np.sqrt(d_k)
    assert "dv is scaled by 1/sqrt(Dk)" in hint_of(ch2.check_attention_dv, attention_dv)


def _dscores(dout, q, k, v):
    weights = softmax_rows(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))
    dweights = dout @ np.swapaxes(v, -1, -2)
    return weights, dweights


@pytest.mark.parametrize("scaled", ["dq", "dk"])
def test_ch2_ex3_the_scale_on_one_gradient_only(scaled):
    def attention_dq_dk(dout, q, k, v):
        weights, dweights = _dscores(dout, q, k, v)
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
        scale = 1 / np.sqrt(q.shape[-1])
        dq = dscores @ k * (scale if scaled == "dq" else 1.0)
        dk = np.swapaxes(dscores, -1, -2) @ q * (scale if scaled == "dk" else 1.0)
        return dq, dk
    other = "dk" if scaled == "dq" else "dq"
    hint = hint_of(ch2.check_attention_dq_dk, attention_dq_dk)
    assert hint.startswith(f"{scaled} is right, {other} is missing the 1/sqrt(Dk)")


@pytest.mark.parametrize(("scale", "says"), [
    (lambda d: np.sqrt(d), "you multiplied by sqrt(Dk)"),
    (lambda d: 1 / d, "you divided by Dk"),
])
def test_ch2_ex3_a_wrong_scale_on_both(scale, says):
    def attention_dq_dk(dout, q, k, v):
        weights, dweights = _dscores(dout, q, k, v)
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
        s = scale(q.shape[-1])
        return dscores @ k * s, np.swapaxes(dscores, -1, -2) @ q * s
    assert says in hint_of(ch2.check_attention_dq_dk, attention_dq_dk)


@pytest.mark.parametrize(("softmax_backward", "says"), [
    (lambda w, dw: dw - (dw * w).sum(axis=-1, keepdims=True), "leading weights are missing"),
    (lambda w, dw: w * (dw - dw.sum(axis=-1, keepdims=True)), "*times the weights*"),
    (lambda w, dw: w * ((dw * w).sum(axis=-1, keepdims=True) - dw), "signs are flipped"),
])
def test_ch2_ex3_softmax_backward_slips(softmax_backward, says):
    def attention_dq_dk(dout, q, k, v):
        weights, dweights = _dscores(dout, q, k, v)
        dscores = softmax_backward(weights, dweights)
        scale = 1 / np.sqrt(q.shape[-1])
        return dscores @ k * scale, np.swapaxes(dscores, -1, -2) @ q * scale
    assert says in hint_of(ch2.check_attention_dq_dk, attention_dq_dk)


def test_ch2_ex4_tanh_after_the_dot_product():
    def additive_scores(q, k, w_1, w_2, v_a):
        return np.tanh(((q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]) @ v_a)
    assert "tanh goes on the A features" in hint_of(ch2.check_additive_scores,
                                                    additive_scores)


def test_ch2_ex4_softmax_taken():
    def additive_scores(q, k, w_1, w_2, v_a):
        scores = np.tanh((q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]) @ v_a
        return softmax_rows(scores)
    assert "those are the weights" in hint_of(ch2.check_additive_scores, additive_scores)


# Chapter 3

def test_ch3_ex1_offset_with_the_wrong_sign():
    def my_causal_mask(t, s):
        return np.arange(s)[None, :] <= np.arange(t)[:, None] - (s - t)
    assert "the offset has the wrong sign" in hint_of(ch3.check_causal_mask, my_causal_mask)


def test_ch3_ex2_sides_swapped():
    def my_padding_mask(lengths, s, side):
        positions, lengths = np.arange(s)[None, :], np.asarray(lengths)[:, None]
        real = positions >= s - lengths if side == "right" else positions < lengths
        return real[:, None, :]
    assert "the sides are swapped" in hint_of(ch3.check_padding_mask, my_padding_mask)


@pytest.mark.parametrize("empty_rows_zeroed", [False, True])
def test_ch3_ex4_zeros_in_the_scores(empty_rows_zeroed):
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        weights = softmax_rows(scores * mask)              # "masks put zeros in the scores"
        if empty_rows_zeroed:
            weights = weights * np.broadcast_to(mask, weights.shape).any(-1, keepdims=True)
        return weights @ v
    hint = hint_of(ch3.check_fixed_masked_attention, fixed_masked_attention)
    assert hint.startswith("a score of 0 is not a mask")


def test_ch3_ex4_hint_for_a_constant_says_more_negative_not_larger():
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        weights = softmax_rows(np.where(mask, scores, -1e9))
        return weights * np.broadcast_to(mask, weights.shape).any(-1, keepdims=True) @ v
    hint = hint_of(ch3.check_fixed_masked_attention, fixed_masked_attention)
    assert "more negative than it" in hint and "larger" not in hint
    # what the hint says of the hidden case is true of it
    q, k, _, mask = ch3._masked_attention_cases(ch3._RNG_SEED)[4]
    assert ch3._scores(q, k).max() < -1e17


def test_ch3_ex1_one_key_too_many():
    def my_causal_mask(t, s):
        return np.arange(s)[None, :] < np.arange(s - t, s)[:, None] + 2
    assert "one key too many" in hint_of(ch3.check_causal_mask, my_causal_mask)


def test_ch3_ex2_size_one_axis_last():
    def my_padding_mask(lengths, s, side):
        positions, lengths = np.arange(s)[None, :], np.asarray(lengths)[:, None]
        real = positions < lengths if side == "right" else positions >= s - lengths
        return real[:, :, None]
    assert "not (B, S, 1)" in hint_of(ch3.check_padding_mask, my_padding_mask)


def test_ch3_ex3_causal_alone():
    def my_decoder_mask(lengths, t):
        return np.arange(t)[None, :] <= np.arange(t)[:, None]
    assert "the causal mask alone" in hint_of(ch3.check_decoder_mask, my_decoder_mask)


def test_ch3_ex3_padding_inverted():
    def my_decoder_mask(lengths, t):
        return causal_mask(t) & ~padding_mask(lengths, t, side="left")   # True = padding
    assert "padding mask is inverted" in hint_of(ch3.check_decoder_mask, my_decoder_mask)


def test_ch3_ex3_diagonal_lost():
    def my_decoder_mask(lengths, t):
        keys, queries = np.arange(t)[None, :], np.arange(t)[:, None]
        return (keys < queries) & padding_mask(lengths, t, side="left")
    assert "every query must see itself" in hint_of(ch3.check_decoder_mask, my_decoder_mask)


# Chapter 4

def test_ch4_ex3_key_projections_with_t():
    def my_multi_head_cost(b, t, s, d, n_heads):
        projections = 2 * b * t * d * d * 4                # all four over the T queries
        return 4 * d * d + 4 * d, projections + 4 * b * t * s * d
    assert "run over x_kv, which has S positions" in hint_of(ch4.check_multi_head_cost,
                                                             my_multi_head_cost)


@pytest.mark.parametrize("params", [
    lambda d, h: h * 3 * d * d,
    lambda d, h: h * 3 * d * d + d * d,
    lambda d, h: h * 3 * d * d + d * d + 4 * d,
])
def test_ch4_ex3_three_matrices_per_head(params):
    def my_multi_head_cost(b, t, s, d, n_heads):
        flops = 2 * b * t * d * d * 2 + 2 * b * s * d * d * 2 + 4 * b * t * s * d
        return params(d, n_heads), flops
    assert "(H 3 D^2)" in hint_of(ch4.check_multi_head_cost, my_multi_head_cost)


# Chapter 5

def test_ch5_ex1_base_1000():
    def sinusoidal_encoding(t, d):
        angles = np.arange(t)[:, None] / 1000.0 ** (np.arange(0, d, 2) / d)
        pe = np.empty((t, d))
        pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
        return pe
    assert "the base is 10000, not 1000" in hint_of(ch5.check_sinusoidal_encoding,
                                                    sinusoidal_encoding)


def _layer_norm_backward(dout, x, gamma, eps, *, mean_path=True):
    lead = tuple(range(x.ndim - 1))
    x_hat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    dx_hat = dout * gamma
    dx = dx_hat - x_hat * (dx_hat * x_hat).mean(-1, keepdims=True)
    if mean_path:
        dx = dx - dx_hat.mean(-1, keepdims=True)
    return dx / np.sqrt(x.var(-1, keepdims=True) + eps), (dout * x_hat).sum(lead), \
        dout.sum(lead)


def test_ch5_ex2_no_mean_path_and_eps_ignored():
    def no_mean_path(dout, x, gamma, eps):
        return _layer_norm_backward(dout, x, gamma, eps, mean_path=False)

    def eps_ignored(dout, x, gamma, eps):
        return _layer_norm_backward(dout, x, gamma, 0.0)
    ch5.check_layer_norm_backward(_layer_norm_backward)      # written right, it passes
    assert "the mean's is missing" in hint_of(ch5.check_layer_norm_backward, no_mean_path)
    assert "eps is missing" in hint_of(ch5.check_layer_norm_backward, eps_ignored)


def test_ch5_ex3_padding_applied_to_the_queries():
    def my_cross_attention(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, memory.shape[-2])[:, :, :, None]   # (B, 1, S, 1)
        out, _ = multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)
        return out
    assert "not on the queries" in hint_of(ch5.check_cross_attention, my_cross_attention)


@pytest.mark.parametrize(("length", "named"), [
    (lambda h, memory, lengths: h.shape[1], "which is T, the decoder's length"),
    (lambda h, memory, lengths: len(lengths), "which is B, the batch size"),
    (lambda h, memory, lengths: memory.shape[-1], "which is D, the model width"),
])
def test_ch5_ex3_padding_mask_over_the_wrong_length(length, named):
    # padding_mask refuses lengths above its s, or attention refuses the mask's last axis
    def my_cross_attention(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, length(h, memory, memory_lengths))[:, None]
        out, _ = multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)
        return out
    hint = hint_of(ch5.check_cross_attention, my_cross_attention)
    assert "padding_mask(memory_lengths, memory.shape[1])" in hint
    assert named in hint
    assert "It happened in `my_cross_attention`" in hint


def test_ch5_ex3_a_mask_without_the_head_axis_gets_no_length_hint():
    def my_cross_attention(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, memory.shape[1])                # (B, 1, S)
        out, _ = multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)
        return out
    hint = hint_of(ch5.check_cross_attention, my_cross_attention)
    assert "is ambiguous" in hint and "Yours was built for" not in hint


# Chapter 6

def test_ch6_ex1_dk_times_dv_and_softmax_flops():
    assert "they add, not multiply" in hint_of(
        ch6.check_attention_flops, lambda t, s, d_k, d_v: 2 * t * s * d_k * d_v)
    for per_score in (1, 3, 5):      # max, exp, sum, divide ... counted in
        hint = hint_of(ch6.check_attention_flops,
                       lambda t, s, d_k, d_v, n=per_score: 2 * t * s * (d_k + d_v) + n * t * s)
        assert hint.startswith("leave the softmax out")


def test_ch6_ex2_an_online_softmax_without_the_guard():
    def online_softmax_update(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        rescale = np.exp(row_max - new_max)
        return new_max, row_sum * rescale + np.exp(scores - new_max[:, None]).sum(axis=1)
    hint = hint_of(ch6.check_online_softmax_update, online_softmax_update)
    assert hint.startswith("right until a row has seen only masked scores")


def test_ch6_ex2_keepdims_on_one_side_crashes_on_a_table():
    def online_softmax_update(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1, keepdims=True))   # (N, N)
        shift = np.where(np.isneginf(new_max), 0.0, new_max)
        new_sum = row_sum * np.exp(row_max - shift) + np.exp(scores - shift).sum(axis=1)
        return new_max, new_sum
    hint = hint_of(ch6.check_online_softmax_update, online_softmax_update)
    assert "NumPy built a (4, 4) table" in hint
    assert "a column of shape (4, 1) (from keepdims=True" in hint
    assert "It happened in `online_softmax_update`" in hint


def test_ch6_ex2_a_table_returned_is_named():
    # every line runs when the block's scores are only used through the max
    def online_softmax_update(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1, keepdims=True))   # (N, N)
        shift = np.where(np.isneginf(new_max), 0.0, new_max)
        new_sum = row_sum * np.exp(row_max - shift) + np.exp(scores - shift[:, :1]).sum(axis=1)
        return new_max, new_sum
    hint = hint_of(ch6.check_online_softmax_update, online_softmax_update)
    assert hint.startswith("new_max (output 0) has shape (4, 4), expected (4,)")
    assert "NumPy built a (4, 4) table" in hint


def test_ch6_ex2_the_max_not_made_a_column():
    def online_softmax_update(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        shift = np.where(np.isneginf(new_max), 0.0, new_max)
        new_sum = row_sum * np.exp(row_max - shift) + np.exp(scores - shift).sum(axis=1)
        return new_max, new_sum
    hint = hint_of(ch6.check_online_softmax_update, online_softmax_update)
    assert "make it a column of shape (4, 1)" in hint and "table" not in hint


def test_a_table_is_named_only_beside_one_number_per_row_and_no_square_input():
    error = ValueError("operands could not be broadcast together with shapes (3,3) (3,5) ")
    assert broadcast_hint(error, (np.ones(3), np.ones((3, 3)))) is None
    assert broadcast_hint(error, ({"x": np.ones((3, 5))},)) is None    # (T, T) scores
    assert "a (3, 3) table" in broadcast_hint(error, (np.ones(3), {"x": np.ones((3, 5))}))
    assert broadcast_hint(ValueError("lengths must lie in [0, s]"), ()) is None


def test_ch6_ex2_the_reference_is_nan_free_on_a_masked_block():
    new_max, new_sum = ch6.online_softmax_update(
        np.array([-np.inf, 2.0]), np.array([0.0, 1.0]), np.full((2, 3), -np.inf))
    assert new_max[0] == -np.inf and new_sum[0] == 0.0
    assert new_max[1] == 2.0 and new_sum[1] == 1.0          # a masked block adds nothing


def test_ch6_ex3_inverted_window():
    def my_sliding_window_mask(t, window):
        i, j = np.arange(t)[:, None], np.arange(t)[None, :]
        return ~((j <= i) & (j > i - window))
    assert "the mask is inverted" in hint_of(ch6.check_sliding_window_mask,
                                             my_sliding_window_mask)


def _einsum_without_optimize(q_feat, k_feat, v):
    numerator = np.einsum("tm,sm,sd->td", q_feat, k_feat, v)      # no (T, S) array stored
    return numerator / np.einsum("tm,sm->t", q_feat, k_feat)[:, None]


def test_ch6_ex4_an_einsum_without_optimize_is_refused_for_its_time():
    hint = hint_of(ch6.check_linear_attention, _einsum_without_optimize)
    assert "time grows like T x S" in hint and "optimize=True" in hint


def test_ch6_ex4_the_time_check_sees_growth_not_speed():
    # the same einsum, optimised, is linear; a slow but linear answer passes. (The
    # normaliser sums the keys first: NumPy 2.3 computes einsum("tm,sm->t", ...,
    # optimize=True) pair by pair, quadratic work that the check rightly flags.)
    def optimised(q_feat, k_feat, v):
        numerator = np.einsum("tm,sm,sd->td", q_feat, k_feat, v, optimize=True)
        return numerator / np.einsum("tm,m->t", q_feat, k_feat.sum(axis=0))[:, None]

    def slow_but_linear(q_feat, k_feat, v):
        kv, k_sum = k_feat.T @ v, k_feat.sum(axis=0)
        rows = []
        for q in q_feat:                                   # a Python loop over queries
            time.sleep(0)
            rows.append(q @ kv / (q @ k_sum))
        return np.array(rows)
    ch6.check_linear_attention(optimised)
    ch6.check_linear_attention(slow_but_linear)
    rng = np.random.default_rng(0)
    q, k, v = (rng.uniform(0.1, 2, size=(1024, 8)), rng.uniform(0.1, 2, size=(1024, 8)),
               rng.normal(size=(1024, 4)))
    quadratic, _, _ = ch6.time_growth(_einsum_without_optimize, q, k, v)
    linear, _, _ = ch6.time_growth(slow_but_linear, q, k, v)
    assert quadratic > ch6._GROWTH_LIMIT > linear
