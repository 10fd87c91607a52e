"""Chapter 6's checkers accept the right answers and reject planted wrong ones."""

import numpy as np
import pytest

from attention_from_scratch.exercises import chapter06 as ex


def test_attention_flops(capsys):
    ex.check_attention_flops(ex.attention_flops_reference)
    ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * s * (d_k + d_v))
    assert capsys.readouterr().out.count("✓ attention FLOPs") == 2
    with pytest.raises(AssertionError, match="each is 2 FLOPs"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: t * s * (d_k + d_v))
    with pytest.raises(AssertionError, match=r"not \(T, T\)"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * t * (d_k + d_v))
    with pytest.raises(AssertionError, match="second product"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * s * d_k)
    with pytest.raises(AssertionError, match="attention FLOPs: output 0 is wrong"):
        ex.check_attention_flops(lambda t, s, d_k, d_v: 2 * t * s * d_k * d_v)


def test_attention_flops_not_attempted(capsys):
    def stub(t, s, d_k, d_v):
        raise NotImplementedError

    ex.check_attention_flops(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_online_softmax_update(capsys):
    ex.check_online_softmax_update(ex.online_softmax_update)
    assert "✓ online softmax update" in capsys.readouterr().out

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

    with pytest.raises(AssertionError, match="multiply it by exp"):
        ex.check_online_softmax_update(without_rescale)
    with pytest.raises(AssertionError, match="at most 1; you have its inverse"):
        ex.check_online_softmax_update(upside_down)
    with pytest.raises(AssertionError, match="not the block's alone"):
        ex.check_online_softmax_update(block_max)
    with pytest.raises(AssertionError, match="output 1 is wrong on case 4"):
        ex.check_online_softmax_update(first_block_nan)


def test_the_update_reproduces_the_log_sum_exp():
    rng = np.random.default_rng(0)
    scores = 3 * rng.normal(size=(4, 10))
    row_max, row_sum = np.full(4, -np.inf), np.zeros(4)
    for block in np.split(scores, [3, 4, 8], axis=1):
        row_max, row_sum = ex.online_softmax_update(row_max, row_sum, block)
    np.testing.assert_allclose(row_max + np.log(row_sum),
                               np.log(np.exp(scores).sum(axis=1)), rtol=1e-12)


def test_sliding_window_mask(capsys):
    ex.check_sliding_window_mask(ex.sliding_window_mask_reference)

    def with_tril(t, window):
        return np.tril(np.ones((t, t), dtype=bool)) & ~np.tril(np.ones((t, t), dtype=bool),
                                                               k=-window)

    ex.check_sliding_window_mask(with_tril)
    assert capsys.readouterr().out.count("✓ sliding-window mask") == 2
    with pytest.raises(AssertionError, match="including itself"):
        ex.check_sliding_window_mask(
            lambda t, w: np.tril(np.ones((t, t), bool)) & ~np.tril(np.ones((t, t), bool),
                                                                   k=-w - 1))
    with pytest.raises(AssertionError, match="look.* back only"):
        ex.check_sliding_window_mask(
            lambda t, w: np.abs(np.arange(t)[:, None] - np.arange(t)) < w)
    with pytest.raises(AssertionError, match="transpose"):
        ex.check_sliding_window_mask(lambda t, w: ex.sliding_window_mask_reference(t, w).T)


def test_linear_attention(capsys):
    ex.check_linear_attention(ex.linear_attention)
    assert "✓ linear attention" in capsys.readouterr().out

    def quadratic(q_feat, k_feat, v):    # right answer, the O(T S) way
        weights = q_feat @ k_feat.T
        return weights / weights.sum(axis=1, keepdims=True) @ v

    ex.check_linear_attention(quadratic)
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
