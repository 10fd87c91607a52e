"""Chapter 6's checkers accept the right answers and reject planted wrong ones."""

import numpy as np
import pytest

from attention_from_scratch.common.masks import sliding_window_mask
from attention_from_scratch.exercises import chapter06 as ex


def test_attention_flops(capsys):
    ex.check_attention_flops(ex.attention_flops_reference)
    ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * s * (d_k + d_v))
    assert capsys.readouterr().out.count("✓ Exercise 1 (attention FLOPs)") == 2
    with pytest.raises(AssertionError, match="each is 2 FLOPs"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: t * s * (d_k + d_v))
    with pytest.raises(AssertionError, match=r"not \(T, T\)"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * t * (d_k + d_v))
    with pytest.raises(AssertionError, match="second product"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * s * d_k)
    with pytest.raises(AssertionError, match="need not equal Dk"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 4 * t * s * d_k)
    with pytest.raises(AssertionError, match="leave the softmax out"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * s * (d_k + d_v) + t * s)
    with pytest.raises(AssertionError, match=r"Exercise 1 \(attention FLOPs\): output 0 is wrong"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * s * (d_k + d_v) + t)


def test_attention_flops_not_attempted(capsys):
    def stub(t, s, d_k, d_v):
        raise NotImplementedError

    ex.check_attention_flops(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_online_softmax_update(capsys):
    ex.check_online_softmax_update(ex.online_softmax_update)
    assert "✓ Exercise 2 (online softmax update)" in capsys.readouterr().out

    def without_rescale(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        return new_max, row_sum + np.exp(scores - new_max[:, None]).sum(axis=1)

    def upside_down(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        return new_max, row_sum * np.exp(new_max - row_max) + np.exp(
            scores - new_max[:, None]).sum(axis=1)

    def first_block_nan(row_max, row_sum, scores):   # right, except before the first block
        new_max = np.maximum(row_max, scores.max(axis=1))
        if np.isneginf(row_max).any():
            return new_max, np.full_like(row_sum, np.nan)
        return ex.online_softmax_update(row_max, row_sum, scores)

    def block_max(row_max, row_sum, scores):
        m = scores.max(axis=1)
        return m, row_sum * np.exp(row_max - m) + np.exp(scores - m[:, None]).sum(axis=1)

    def block_terms_old_max(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        rescale = np.exp(row_max - new_max)
        return new_max, row_sum * rescale + np.exp(scores - row_max[:, None]).sum(axis=1)

    def max_not_updated(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        new_sum = row_sum * np.exp(row_max - new_max) + np.exp(
            scores - new_max[:, None]).sum(axis=1)
        return row_max, new_sum

    with pytest.raises(AssertionError, match="multiply it by exp"):
        ex.check_online_softmax_update(without_rescale)
    with pytest.raises(AssertionError, match="at most 1; you have its inverse"):
        ex.check_online_softmax_update(upside_down)
    with pytest.raises(AssertionError, match="not the block's alone"):
        ex.check_online_softmax_update(block_max)
    with pytest.raises(AssertionError, match=r"relative to the new maximum, exp\(scores"):
        ex.check_online_softmax_update(block_terms_old_max)
    with pytest.raises(AssertionError, match="return the updated maximum"):
        ex.check_online_softmax_update(max_not_updated)
    with pytest.raises(AssertionError, match=r"new_sum \(output 1\) holds NaN on case 4"):
        ex.check_online_softmax_update(first_block_nan)


def test_the_update_reproduces_the_log_sum_exp():
    rng = np.random.default_rng(0)
    scores = 3 * rng.normal(size=(4, 10))
    row_max, row_sum = np.full(4, -np.inf), np.zeros(4)
    for block in np.split(scores, [3, 4, 8], axis=1):
        row_max, row_sum = ex.online_softmax_update(row_max, row_sum, block)
    np.testing.assert_allclose(row_max + np.log(row_sum),
                               np.log(np.exp(scores).sum(axis=1)), rtol=1e-12)


def by_comparisons(t, window):
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    return (j <= i) & (j > i - window)


def test_sliding_window_mask(capsys):
    ex.check_sliding_window_mask(by_comparisons)

    def with_tril(t, window):
        return np.tril(np.ones((t, t), dtype=bool)) & ~np.tril(np.ones((t, t), dtype=bool),
                                                               k=-window)

    ex.check_sliding_window_mask(with_tril)
    assert capsys.readouterr().out.count("✓ Exercise 3 (sliding-window mask)") == 2
    with pytest.raises(AssertionError, match="including itself"):
        ex.check_sliding_window_mask(
            lambda t, w: np.tril(np.ones((t, t), bool)) & ~np.tril(np.ones((t, t), bool),
                                                                   k=-w - 1))
    with pytest.raises(AssertionError, match="look.* back only"):
        ex.check_sliding_window_mask(
            lambda t, w: np.abs(np.arange(t)[:, None] - np.arange(t)) < w)
    with pytest.raises(AssertionError, match="transpose"):
        ex.check_sliding_window_mask(lambda t, w: by_comparisons(t, w).T)


@pytest.mark.parametrize("dtype", [int, float, np.uint8])
def test_sliding_window_mask_must_be_boolean(dtype):
    with pytest.raises(AssertionError, match=f"return a boolean array.*got dtype "
                                             f"{np.dtype(dtype)}"):
        ex.check_sliding_window_mask(lambda t, w: by_comparisons(t, w).astype(dtype))


def test_sliding_window_mask_refuses_the_package():
    with pytest.raises(AssertionError, match=r"mask builders \(you used sliding_window_mask\)"):
        ex.check_sliding_window_mask(ex.sliding_window_mask_reference)
    with pytest.raises(AssertionError, match="without the package's"):
        ex.check_sliding_window_mask(lambda t, w: sliding_window_mask(t, w))

    def via_causal(t, window):
        from attention_from_scratch.common.masks import causal_mask
        return causal_mask(t) & ~causal_mask(t - window, t)   # imported here: still seen

    with pytest.raises(AssertionError, match="without the package's"):
        ex.check_sliding_window_mask(via_causal)

    def mentions_it(t, window):
        """Not sliding_window_mask: comparisons."""
        return by_comparisons(t, window)    # a comment naming causal_mask is fine

    ex.check_sliding_window_mask(mentions_it)


def test_linear_attention(capsys):
    ex.check_linear_attention(ex.linear_attention)

    def outer_products(q_feat, k_feat, v):   # right and linear, by (S, M, Dv) outer products
        kv = (k_feat[:, :, None] * v[:, None, :]).sum(axis=0)
        return q_feat @ kv / (q_feat @ k_feat.sum(axis=0))[:, None]

    ex.check_linear_attention(outer_products)
    assert capsys.readouterr().out.count("✓ Exercise 4 (linear attention)") == 2
    with pytest.raises(AssertionError, match="must sum to 1"):
        ex.check_linear_attention(lambda q, k, v: q @ (k.T @ v))
    with pytest.raises(AssertionError, match="its own sum"):
        ex.check_linear_attention(lambda q, k, v: q @ (k.T @ v) / (q @ k.sum(axis=0)).sum())
    with pytest.raises(AssertionError, match="no softmax on top"):
        def softmaxed(q, k, v):
            s = q @ k.T
            w = np.exp(s - s.max(axis=1, keepdims=True))
            return w / w.sum(axis=1, keepdims=True) @ v
        ex.check_linear_attention(softmaxed)


def test_linear_attention_refuses_the_quadratic_way():
    def quadratic(q_feat, k_feat, v):    # right numbers, through a (T, S) array
        weights = q_feat @ k_feat.T
        return weights / weights.sum(axis=1, keepdims=True) @ v

    def rows_in_a_list(q_feat, k_feat, v):   # no (T, S) array, but T rows of S: as much
        weights = [q_i @ k_feat.T for q_i in q_feat]
        return np.stack([w @ v / w.sum() for w in weights])

    with pytest.raises(AssertionError, match=r"at least what a \(T, S\) array of booleans "
                                             r"takes \(4 MiB\) .*multiply phi\(K\)\^T V first"):
        ex.check_linear_attention(quadratic)
    with pytest.raises(AssertionError, match=r"at least what a \(T, S\) array of booleans"):
        ex.check_linear_attention(rows_in_a_list)


def test_linear_attention_not_attempted(capsys):
    def stub(q_feat, k_feat, v):
        raise NotImplementedError

    ex.check_linear_attention(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_attention_flops_exact_additions_named():
    def attention_flops(t, s, d_k, d_v):       # n - 1 additions per dot product of length n
        return t * s * (2 * d_k - 1) + t * d_v * (2 * s - 1)

    with pytest.raises(AssertionError, match="n - 1 additions per dot product"):
        ex.check_attention_flops(attention_flops)


def _right_update(row_max, row_sum, scores):
    new_max = np.maximum(row_max, scores.max(axis=1))
    shift = np.where(np.isneginf(new_max), 0.0, new_max)
    return shift, new_max, row_sum * np.exp(row_max - shift) + np.exp(
        scores - shift[:, None]).sum(axis=1)


def test_online_softmax_update_mistakes_named():
    def swapped(row_max, row_sum, scores):
        _, new_max, new_sum = _right_update(row_max, row_sum, scores)
        return new_sum, new_max

    def guard_as_max(row_max, row_sum, scores):   # the 0 used as shift returned as the max
        shift, _, new_sum = _right_update(row_max, row_sum, scores)
        return shift, new_sum

    def whole_block_max(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max())
        shift = np.where(np.isneginf(new_max), 0.0, new_max)
        return new_max, row_sum * np.exp(row_max - shift) + np.exp(
            scores - shift[:, None]).sum(axis=1)

    def unshifted_block(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        shift = np.where(np.isneginf(new_max), 0.0, new_max)
        return new_max, row_sum * np.exp(row_max - shift) + np.exp(scores).sum(axis=1)

    with pytest.raises(AssertionError, match=r"return \(new_max, new_sum\), in that order"):
        ex.check_online_softmax_update(swapped)
    with pytest.raises(AssertionError, match="new_max must stay -inf"):
        ex.check_online_softmax_update(guard_as_max)
    with pytest.raises(AssertionError, match=r"per row: scores.max\(axis=1\)"):
        ex.check_online_softmax_update(whole_block_max)
    with pytest.raises(AssertionError, match=r"not\s+exp\(scores\)"):
        ex.check_online_softmax_update(unshifted_block)


def test_sliding_window_mask_off_by_one_and_half_windows_named():
    def rows_cols(t):
        return np.arange(t)[:, None], np.arange(t)[None, :]

    def without_itself(t, window):
        i, j = rows_cols(t)
        return (j < i) & (j >= i - window)

    def too_narrow(t, window):
        i, j = rows_cols(t)
        return (j <= i) & (j > i - window + 1)

    def lower_bound_only(t, window):
        i, j = rows_cols(t)
        return j > i - window

    with pytest.raises(AssertionError, match="a query always sees itself"):
        ex.check_sliding_window_mask(without_itself)
    with pytest.raises(AssertionError, match="yours sees window - 1"):
        ex.check_sliding_window_mask(too_narrow)
    with pytest.raises(AssertionError, match="that is the causal mask"):
        ex.check_sliding_window_mask(lambda t, w: np.tril(np.ones((t, t), dtype=bool)))
    with pytest.raises(AssertionError, match="but not its upper one"):
        ex.check_sliding_window_mask(lower_bound_only)


def test_linear_attention_normalised_by_the_mean_named():
    with pytest.raises(AssertionError, match="S times too large"):
        ex.check_linear_attention(lambda q, k, v: q @ (k.T @ v) / (q @ k.mean(axis=0))[:, None])


def test_online_softmax_update_a_column_named():
    def kept_dims(row_max, row_sum, scores):      # keepdims=True carried to the end
        block_max = scores.max(axis=1, keepdims=True)                  # (N, 1)
        new_max = np.maximum(row_max[:, None], block_max)              # (N, 1)
        shift = np.where(np.isneginf(new_max), 0.0, new_max)
        new_sum = row_sum * np.exp(row_max - shift[:, 0]) + np.exp(scores - shift).sum(axis=1)
        return new_max, new_sum

    with pytest.raises(AssertionError, match=r"in a column of shape \(N, 1\)"):
        ex.check_online_softmax_update(kept_dims)


def test_online_softmax_update_without_the_max_subtraction_named():
    # right in exact arithmetic and on small scores: the exponentials of the
    # raw scores overflow (or underflow) before the division by exp(new_max)
    def exp_then_divide(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        total = row_sum * np.exp(row_max) + np.exp(scores).sum(axis=1)
        return new_max, np.where(np.isneginf(new_max), 0.0, total / np.exp(new_max))

    def times_exp_minus_max(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        total = row_sum * np.exp(row_max) + np.exp(scores).sum(axis=1)
        return new_max, np.where(np.isneginf(new_max), 0.0, total * np.exp(-new_max))

    for wrong in (exp_then_divide, times_exp_minus_max):
        with pytest.raises(AssertionError, match="exp of a raw score overflows"):
            ex.check_online_softmax_update(wrong)


def test_online_softmax_update_right_answers_written_differently(capsys):
    def by_log_sum_exp(row_max, row_sum, scores):
        new_max = np.maximum(row_max, scores.max(axis=1))
        shift = np.where(np.isneginf(new_max), 0.0, new_max)
        with np.errstate(divide="ignore"):
            total = np.logaddexp(row_max + np.log(row_sum),
                                 np.logaddexp.reduce(scores, axis=1))
        return new_max, np.exp(total - shift)

    def rescale_only_when_the_max_moves(row_max, row_sum, scores):
        block_max = scores.max(axis=1)
        new_max = np.maximum(row_max, block_max)
        shift = np.where(np.isinf(new_max), 0.0, new_max)
        rescale = np.where(block_max > row_max, np.exp(row_max - shift), 1.0)
        return new_max, row_sum * rescale + np.exp(scores - shift[:, None]).sum(axis=1)

    ex.check_online_softmax_update(by_log_sum_exp)
    ex.check_online_softmax_update(rescale_only_when_the_max_moves)
    assert capsys.readouterr().out.count("✓ Exercise 2 (online softmax update)") == 2


def test_a_closure_variable_assigned_after_the_check_is_the_attempts_error():
    def make():
        def my_mask(t, window):
            i = np.arange(t)
            return ok(i[None, :], i[:, None], window)
        ex.check_sliding_window_mask(my_mask)

        def ok(j, i, window):
            return (j <= i) & (j > i - window)

    with pytest.raises(AssertionError, match="your function raised NameError"):
        make()


def test_sliding_window_mask_accepts_a_learners_own_causal_mask(capsys):
    namespace = {"np": np, "__name__": "learner"}
    exec("def causal_mask(t):\n"                               # noqa: S102 - a learner's cell
         "    i = np.arange(t)\n"
         "    return i[None] <= i[:, None]\n"
         "def my_sliding_window_mask(t, window):\n"
         "    i = np.arange(t)\n"
         "    return causal_mask(t) & (i[None] > i[:, None] - window)\n", namespace)
    ex.check_sliding_window_mask(namespace["my_sliding_window_mask"])
    assert capsys.readouterr().out.startswith("✓ Exercise 3 (sliding-window mask): correct")


def test_sliding_window_mask_refuses_every_mask_builder():
    from attention_from_scratch.common.masks import decoder_self_mask
    from attention_from_scratch.common.tiles import tile_mask

    def via_decoder_self_mask(t, window):   # the causal part from Chapter 5's builder
        i, j = np.arange(t)[:, None], np.arange(t)[None, :]
        return decoder_self_mask(t) & (j > i - window)

    def via_tile_mask(t, window):           # one tile covering everything
        i, j = np.arange(t)[:, None], np.arange(t)[None, :]
        causal = tile_mask(slice(0, t), slice(0, t), t, t, causal=True)
        return (np.ones((t, t), dtype=bool) if causal is None else causal) & (j > i - window)

    with pytest.raises(AssertionError, match=r"you used decoder_self_mask"):
        ex.check_sliding_window_mask(via_decoder_self_mask)
    with pytest.raises(AssertionError, match=r"you used tile_mask"):
        ex.check_sliding_window_mask(via_tile_mask)


def test_flops_and_window_mistakes_with_generic_messages_before_are_named():
    def loop_with_negative_starts(t, window):
        mask = np.zeros((t, t), dtype=bool)
        for i in range(t):
            mask[i, i - window + 1:i + 1] = True
        return mask

    with pytest.raises(AssertionError, match=r"not \(S, S\)"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * s * s * (d_k + d_v))
    with pytest.raises(AssertionError, match=r"max\(0, i - window \+ 1\)"):
        ex.check_sliding_window_mask(loop_with_negative_starts)

    def by_nested_comprehension(t, window):     # right, and written nothing like the solution
        return np.array([[max(0, i - window + 1) <= j <= i for j in range(t)]
                         for i in range(t)])

    ex.check_sliding_window_mask(by_nested_comprehension)


def test_online_softmax_update_masked_scores_as_a_large_negative_named():
    # the magic constant of Chapter 3 used here to dodge the NaN: a fully
    # masked row then counts each of its scores as exp(0) = 1
    def with_minus_1e30(row_max, row_sum, scores):
        row_max = np.where(np.isneginf(row_max), -1e30, row_max)
        scores = np.where(np.isneginf(scores), -1e30, scores)
        new_max = np.maximum(row_max, scores.max(axis=1))
        return new_max, row_sum * np.exp(row_max - new_max) + np.exp(
            scores - new_max[:, None]).sum(axis=1)

    with pytest.raises(AssertionError, match=r"counts as exp\(c - c\) = 1"):
        ex.check_online_softmax_update(with_minus_1e30)
