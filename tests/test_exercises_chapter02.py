"""Chapter 2's checkers accept the right answers and reject planted wrong ones."""

import re

import numpy as np
import pytest

from attention_from_scratch import steps
from attention_from_scratch.exercises import chapter02 as ex


def swap(x):
    return np.swapaxes(x, -1, -2)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def weights_of(q, k):
    return softmax(q @ swap(k) / np.sqrt(q.shape[-1]))


def test_stubs_are_not_attempted_yet(capsys):
    def stub(*args):
        raise NotImplementedError

    for check in (ex.check_scaled_scores, ex.check_attention_dv, ex.check_attention_dq_dk,
                  ex.check_additive_scores):
        check(stub)
    assert capsys.readouterr().out.count("not attempted yet") == 4


def test_scaled_scores(capsys):
    ex.check_scaled_scores(ex.scaled_scores)
    ex.check_scaled_scores(lambda q, k: np.einsum("...td,...sd->...ts", q, k)
                           / np.sqrt(k.shape[-1]))
    assert capsys.readouterr().out.count("✓ Exercise 1 (scaled scores)") == 2
    with pytest.raises(AssertionError, match="forgot the scale"):
        ex.check_scaled_scores(lambda q, k: q @ swap(k))
    with pytest.raises(AssertionError, match="divided by Dk"):
        ex.check_scaled_scores(lambda q, k: q @ swap(k) / q.shape[-1])
    with pytest.raises(AssertionError, match=r"\(S, T\), keys by queries"):
        ex.check_scaled_scores(lambda q, k: swap(q @ swap(k)) / np.sqrt(q.shape[-1]))
    with pytest.raises(AssertionError, match="square root of T"):
        ex.check_scaled_scores(lambda q, k: q @ swap(k) / np.sqrt(len(q)))
    with pytest.raises(AssertionError, match="square root of S, the number of keys"):
        ex.check_scaled_scores(lambda q, k: q @ swap(k) / np.sqrt(k.shape[-2]))
    with pytest.raises(AssertionError, match="the scores q k\\^T are \\(T, S\\)"):
        ex.check_scaled_scores(lambda q, k: q @ k / np.sqrt(q.shape[-1]))


@pytest.mark.parametrize("wrong_scale", ["sqrt_t", "sqrt_s", "d_k", "none"])
def test_every_hidden_case_tells_the_wrong_scales_apart(wrong_scale):
    # a wrong scale that equals another on some case would get that one's hint
    for q, k in [(q, k) for _, q, k, _ in ex._attention_cases(0)]:
        t, s, d_k = q.shape[-2], k.shape[-2], q.shape[-1]
        scales = {"sqrt_t": np.sqrt(t), "sqrt_s": np.sqrt(s), "d_k": d_k, "none": 1.0}
        others = [np.sqrt(d_k)] + [v for key, v in scales.items() if key != wrong_scale]
        assert not np.any(np.isclose(scales[wrong_scale], others))


def test_shape_errors_blame_transposes_only_where_they_are_used():
    def with_dot_t(q, k):
        return q @ k.T / np.sqrt(q.shape[-1])           # right in 2-D only

    def with_swap_from_the_front(q, k):
        """Not k.T, and not np.transpose either."""
        return q @ np.swapaxes(k, 0, 1) / np.sqrt(q.shape[-1])

    with pytest.raises(AssertionError, match="you transpose: x.T and np.transpose"):
        ex.check_scaled_scores(with_dot_t)
    with pytest.raises(AssertionError, match="you transpose"):
        ex.check_scaled_scores(lambda q, k: q @ np.transpose(k) / np.sqrt(q.shape[-1]))
    with pytest.raises(AssertionError, match="count axes from the end") as info:
        ex.check_scaled_scores(with_swap_from_the_front)
    assert ".T" not in str(info.value)
    with pytest.raises(AssertionError, match="count axes from the end"):
        ex.check_attention_dv(lambda dout, q, k, v: np.swapaxes(weights_of(q, k), 0, 1) @ dout)


def test_other_crashes_name_the_case():
    def crashes(q, k):
        return q @ swap(k) / np.sqrt(q.shape["last"])

    with pytest.raises(AssertionError, match="raised TypeError on case 1"):
        ex.check_scaled_scores(crashes)


def test_scaled_scores_reference_is_the_steps_function():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    np.testing.assert_allclose(ex.scaled_scores(q, k),
                               steps.attention.scores_forward(q, k)[0], rtol=1e-12)


def test_attention_dv(capsys):
    ex.check_attention_dv(ex.attention_dv)
    ex.check_attention_dv(lambda dout, q, k, v: swap(weights_of(q, k)) @ dout)
    assert capsys.readouterr().out.count("✓ Exercise 2 (attention dv)") == 2
    with pytest.raises(AssertionError, match="transpose the weights"):
        ex.check_attention_dv(lambda dout, q, k, v: weights_of(q, k) @ dout)
    with pytest.raises(AssertionError, match=r"your dv is \(Dv, S\)"):
        ex.check_attention_dv(lambda dout, q, k, v: swap(dout) @ weights_of(q, k))
    with pytest.raises(AssertionError, match="missing the 1/sqrt\\(Dk\\)"):
        ex.check_attention_dv(lambda dout, q, k, v: swap(softmax(q @ swap(k))) @ dout)
    with pytest.raises(AssertionError, match="you used the scores"):
        ex.check_attention_dv(
            lambda dout, q, k, v: swap(q @ swap(k) / np.sqrt(q.shape[-1])) @ dout)
    with pytest.raises(AssertionError, match="not a shared parameter"):
        ex.check_attention_dv(lambda dout, q, k, v: np.sum(
            (swap(weights_of(q, k)) @ dout).reshape(-1, k.shape[-2], v.shape[-1]), axis=0))


def test_attention_dq_dk(capsys):
    ex.check_attention_dq_dk(ex.attention_dq_dk)

    def by_hand(dout, q, k, v):
        scale = 1 / np.sqrt(q.shape[-1])
        weights = weights_of(q, k)
        dweights = dout @ swap(v)
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
        return dscores @ k * scale, swap(dscores) @ q * scale

    ex.check_attention_dq_dk(by_hand)
    assert capsys.readouterr().out.count("✓ Exercise 3 (attention dq, dk)") == 2

    def variant(dscores_of, scale_of=lambda q: 1 / np.sqrt(q.shape[-1])):
        def attempt(dout, q, k, v):
            weights, dweights = weights_of(q, k), dout @ swap(v)
            dscores = dscores_of(weights, dweights)
            return dscores @ k * scale_of(q), swap(dscores) @ q * scale_of(q)
        return attempt

    right = variant(lambda w, dw: w * (dw - (dw * w).sum(axis=-1, keepdims=True)))
    ex.check_attention_dq_dk(right)
    with pytest.raises(AssertionError, match="multiplies dscores by 1/sqrt\\(Dk\\) too"):
        ex.check_attention_dq_dk(
            variant(lambda w, dw: w * (dw - (dw * w).sum(axis=-1, keepdims=True)),
                    scale_of=lambda q: 1.0))
    with pytest.raises(AssertionError, match="only the diagonal"):
        ex.check_attention_dq_dk(variant(lambda w, dw: w * dw))
    with pytest.raises(AssertionError, match="not the plain mean"):
        ex.check_attention_dq_dk(
            variant(lambda w, dw: w * (dw - dw.mean(axis=-1, keepdims=True))))
    with pytest.raises(AssertionError, match="skipped the softmax backward"):
        ex.check_attention_dq_dk(variant(lambda w, dw: dw))
    with pytest.raises(AssertionError, match="dk = dscores\\^T @ q"):
        ex.check_attention_dq_dk(
            lambda dout, q, k, v: (by_hand(dout, q, k, v)[0],
                                   weights_of(q, k) @ q))   # (T, S) @ (T, Dk)


def test_additive_scores(capsys):
    ex.check_additive_scores(ex.additive_scores)

    def with_loops(q, k, w_1, w_2, v_a):
        scores = np.empty(q.shape[:-1] + k.shape[-2:-1])
        for idx in np.ndindex(scores.shape):
            *lead, i, j = idx
            scores[idx] = v_a @ np.tanh(q[(*lead, i)] @ w_1 + k[(*lead, j)] @ w_2)
        return scores

    ex.check_additive_scores(with_loops)
    assert capsys.readouterr().out.count("✓ Exercise 4 (additive scores)") == 2
    with pytest.raises(AssertionError, match="tanh must act on the sum"):
        ex.check_additive_scores(
            lambda q, k, w_1, w_2, v_a: (np.tanh(q @ w_1) @ v_a)[..., :, None]
            + (np.tanh(k @ w_2) @ v_a)[..., None, :])
    with pytest.raises(AssertionError, match=r"your scores are \(S, T\)"):
        ex.check_additive_scores(
            lambda q, k, w_1, w_2, v_a: np.tanh((q @ w_1)[..., None, :, :]
                                                + (k @ w_2)[..., :, None, :]) @ v_a)
    with pytest.raises(AssertionError, match="end with a dot product with v_a"):
        ex.check_additive_scores(
            lambda q, k, w_1, w_2, v_a: np.tanh((q @ w_1)[..., :, None, :]
                                                + (k @ w_2)[..., None, :, :]).sum(-1))
    with pytest.raises(AssertionError, match="add them as"):
        ex.check_additive_scores(
            lambda q, k, w_1, w_2, v_a: np.tanh(q @ w_1 + k @ w_2) @ v_a)


def test_tanh_separately_really_ignores_the_query():
    # the point of the "tanh must act on the sum" hint: the query term is
    # constant along each row, and the softmax over keys cancels it
    q, k, w_1, w_2, v_a = ex.additive_cases(0)[0]
    wrong = (np.tanh(q @ w_1) @ v_a)[:, None] + (np.tanh(k @ w_2) @ v_a)[None, :]
    weights = softmax(wrong)
    np.testing.assert_allclose(weights, np.broadcast_to(weights[0], weights.shape))
    right = softmax(ex.additive_scores(q, k, w_1, w_2, v_a))
    assert not np.allclose(right, np.broadcast_to(right[0], right.shape))


def test_attention_dq_dk_row_sum_mistakes_get_their_own_hints():
    def attempt(rowsum):
        def dq_dk(dout, q, k, v):
            scale = 1 / np.sqrt(q.shape[-1])
            weights, dweights = weights_of(q, k), dout @ swap(v)
            dscores = weights * (dweights - rowsum(dweights * weights))
            return dscores @ k * scale, swap(dscores) @ q * scale
        return dq_dk

    with pytest.raises(AssertionError, match=r"the backward's row sum, \(dweights \* "
                                             r"weights\)\.sum\(axis=-1, keepdims=True\)") as info:
        ex.check_attention_dq_dk(attempt(lambda a: a.sum(axis=-1)))        # (T,) vs (T, S)
    assert "dq = dscores @ k" not in str(info.value)
    assert "`dscores = weights * (dweights - rowsum(dweights * weights))`" in str(info.value)
    with pytest.raises(AssertionError, match=r"not over the queries \(axis -2\)"):
        ex.check_attention_dq_dk(attempt(lambda a: a.sum(axis=-2, keepdims=True)))
    ex.check_attention_dq_dk(attempt(lambda a: a.sum(axis=-1, keepdims=True)))   # right
    with pytest.raises(AssertionError, match="dk = dscores\\^T @ q"):   # a product's error
        ex.check_attention_dq_dk(
            lambda dout, q, k, v: (weights_of(q, k) @ k, weights_of(q, k) @ q))


def test_scaled_scores_front_axis_and_softmax_mistakes_get_their_own_hints():
    with pytest.raises(AssertionError, match=r"q\.shape\[1\] is Dk only when q is \(T, Dk\)"):
        ex.check_scaled_scores(lambda q, k: q @ swap(k) / np.sqrt(q.shape[1]))
    with pytest.raises(AssertionError, match="stops before the softmax"):
        ex.check_scaled_scores(lambda q, k: weights_of(q, k))


# Mistakes a learner makes in the softmax that Exercises 2 and 3 recompute,
# each written as a learner would write it, each with its own hint.

def dv_with(softmax_of):
    def attention_dv(dout, q, k, v):
        weights = softmax_of(q @ swap(k) / np.sqrt(q.shape[-1]))
        return swap(weights) @ dout
    return attention_dv


def dq_dk_with(softmax_of):
    def attention_dq_dk(dout, q, k, v):
        scale = 1 / np.sqrt(q.shape[-1])
        weights = softmax_of(q @ swap(k) * scale)
        dweights = dout @ swap(v)
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
        return dscores @ k * scale, swap(dscores) @ q * scale
    return attention_dq_dk


def softmax_without_the_max(x):
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_with_the_global_max(x):
    e = np.exp(x - x.max())
    return e / e.sum(axis=-1, keepdims=True)


def softmax_over_everything(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def softmax_max_without_keepdims(x):
    e = np.exp(x - x.max(axis=-1))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_sum_without_keepdims(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1)


def softmax_along_axis_1(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("check, make", [(ex.check_attention_dv, dv_with),
                                         (ex.check_attention_dq_dk, dq_dk_with)])
@pytest.mark.parametrize("softmax_of, says", [
    (softmax_without_the_max, "your softmax overflows"),
    (softmax_with_the_global_max, "x.max() without an axis"),
    (softmax_over_everything, "normalised over the whole array"),
])
def test_an_unstable_or_misnormalised_softmax_is_named(check, make, softmax_of, says):
    with pytest.raises(AssertionError, match=re.escape(says)):
        check(make(softmax_of))


def test_the_large_scores_case_is_healthy_and_overflows_a_naive_softmax():
    dout, q, k, v = ex._large_scores_case(0)
    scores = q @ swap(k) / np.sqrt(q.shape[-1])
    assert scores[0].min() > 900 and np.abs(scores[1]).max() < 10
    with np.errstate(all="ignore"):
        assert np.isnan(softmax_without_the_max(scores)[0]).all()
        assert np.isnan(softmax_with_the_global_max(scores)[1]).all()
    weights = softmax(scores)
    # the offset is a constant per row: the weights are as spread as ordinary ones
    np.testing.assert_allclose(weights[0], softmax(scores[0] - 1000.0), rtol=1e-9)
    assert weights.max() < 0.99
    dq, dk = ex.attention_dq_dk(dout, q, k, v)
    assert np.abs(dq[0]).max() > 1e-2 and np.abs(dk[0]).max() > 1e-2


@pytest.mark.parametrize("check, make, backward_too", [
    (ex.check_attention_dv, dv_with, False), (ex.check_attention_dq_dk, dq_dk_with, True)])
@pytest.mark.parametrize("softmax_of, line", [
    (softmax_max_without_keepdims, "`e = np.exp(x - x.max(axis=-1))`"),
    (softmax_sum_without_keepdims, "`return e / e.sum(axis=-1)`"),
])
def test_a_softmax_without_keepdims_gets_the_per_row_hint_and_its_line(check, make,
                                                                      backward_too,
                                                                      softmax_of, line):
    with pytest.raises(AssertionError) as info:
        check(make(softmax_of))
    message = str(info.value)
    assert "NumPy aligns shapes from the right, so the (3,) lands on the S = 5 keys" in message
    assert "x.max(axis=-1, keepdims=True) and e.sum(axis=-1, keepdims=True)" in message
    assert line in message                                    # the learner's own line
    assert ("the backward's row sum" in message) == backward_too
    assert "transpose the weights" not in message             # not a matmul's hint
    assert "dq = dscores @ k" not in message


def test_a_softmax_along_axis_1_is_named_where_it_goes_wrong():
    with pytest.raises(AssertionError, match="your softmax runs along axis=1"):
        ex.check_attention_dv(dv_with(softmax_along_axis_1))


def test_elementwise_shape_errors_in_the_backward_are_named_in_letters():
    def dweights_transposed(dout, q, k, v):
        weights = weights_of(q, k)
        dweights = v @ swap(dout)                                # (S, T)
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
        return dscores @ k, swap(dscores) @ q

    def dout_for_dweights(dout, q, k, v):
        weights = weights_of(q, k)
        dscores = weights * (dout - (dout * weights).sum(axis=-1, keepdims=True))
        return dscores @ k, swap(dscores) @ q

    with pytest.raises(AssertionError, match=r"\(S, T\) and \(T, S\) .*one is the other "
                                             r"transposed"):
        ex.check_attention_dq_dk(dweights_transposed)
    with pytest.raises(AssertionError, match=r"\(T, Dv\) and \(T, S\)") as info:
        ex.check_attention_dq_dk(dout_for_dweights)
    assert "dweights = dout @ v^T" in str(info.value)


def test_the_chapters_global_dk_is_named():
    Dk = 2                                                     # as the chapter sets it

    def scaled_scores(q, k):
        return q @ swap(k) / np.sqrt(Dk)

    def attention_dv(dout, q, k, v):
        return swap(softmax(q @ swap(k) / np.sqrt(Dk))) @ dout

    def attention_dq_dk(dout, q, k, v):                        # Dk in the backward only
        scale = 1 / np.sqrt(Dk)
        weights, dweights = weights_of(q, k), dout @ swap(v)
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
        return dscores @ k * scale, swap(dscores) @ q * scale

    for check, attempt in [(ex.check_scaled_scores, scaled_scores),
                           (ex.check_attention_dv, attention_dv),
                           (ex.check_attention_dq_dk, attention_dq_dk)]:
        with pytest.raises(AssertionError, match=r"the chapter's global Dk = 2\?"):
            check(attempt)


def test_more_named_slips():
    with pytest.raises(AssertionError, match=r"k\.shape\[1\] is Dk only when k is \(S, Dk\)"):
        ex.check_scaled_scores(lambda q, k: q @ swap(k) / np.sqrt(k.shape[1]))
    with pytest.raises(AssertionError, match="that is dweights = dout @ v\\^T"):
        ex.check_attention_dv(lambda dout, q, k, v: dout @ swap(v))
    with pytest.raises(AssertionError, match="this exercise asks for dv alone"):
        ex.check_attention_dv(
            lambda dout, q, k, v: steps.attention.attention_backward(
                dout, steps.attention.attention_forward(q, k, v)[1]))
    with pytest.raises(AssertionError, match="dv was Exercise 2"):
        ex.check_attention_dq_dk(
            lambda dout, q, k, v: steps.attention.attention_backward(
                dout, steps.attention.attention_forward(q, k, v)[1]))
    with pytest.raises(AssertionError, match="derivative of a sigmoid"):
        ex.check_attention_dq_dk(variant_dq_dk(lambda w, dw: dw * w * (1 - w)))
    with pytest.raises(AssertionError, match=r"\.sum\(\) without an axis: it is one number"):
        ex.check_attention_dq_dk(variant_dq_dk(lambda w, dw: w * (dw - (dw * w).sum())))
    with pytest.raises(AssertionError, match="your forward weights were normalised over axis"):
        ex.check_attention_dq_dk(dq_dk_with(lambda x: softmax(swap(x)).swapaxes(-1, -2)))


def variant_dq_dk(dscores_of):
    def attention_dq_dk(dout, q, k, v):
        scale = 1 / np.sqrt(q.shape[-1])
        weights, dweights = weights_of(q, k), dout @ swap(v)
        dscores = dscores_of(weights, dweights)
        return dscores @ k * scale, swap(dscores) @ q * scale
    return attention_dq_dk


def test_additive_v_a_on_the_left_and_a_scale_by_a_width_are_named():
    def v_a_first(q, k, w_1, w_2, v_a):
        return v_a @ np.tanh((q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :])

    with pytest.raises(AssertionError, match="put v_a on the right") as info:
        ex.check_additive_scores(v_a_first)              # crashes: S != A in every case
    assert "project first" not in str(info.value)
    for width in (lambda q, k: k.shape[-1], lambda q, k: q.shape[-1]):
        with pytest.raises(AssertionError, match="additive scores have no 1/sqrt scale"):
            ex.check_additive_scores(
                lambda q, k, w_1, w_2, v_a, width=width: ex.additive_scores(q, k, w_1, w_2, v_a)
                / np.sqrt(width(q, k)))


# Only NumPy's refusals of shapes are shape errors: other ValueErrors of the
# 2-D case keep their own message and get their own hint

def test_pythons_max_of_the_scores_gets_the_truth_value_hint_not_a_shape_hint():
    def attention_dv(dout, q, k, v):
        scores = q @ k.T / np.sqrt(q.shape[-1])
        e = np.exp(scores - max(scores))                # Python's max of a 2-D array
        weights = e / e.sum(axis=-1, keepdims=True)
        return weights.T @ dout
    with pytest.raises(AssertionError) as info:
        ex.check_attention_dv(attention_dv)
    hint = str(info.value)
    assert "do not line up" not in hint
    assert "Python's own max, min, `if` and `and` want one True or False" in hint
    assert "scores.max(axis=-1, keepdims=True)" in hint
    assert "It happened in `attention_dv`" in hint


def test_an_einsum_typo_is_not_called_a_shape_error():
    def scaled_scores(q, k):
        return np.einsum("...td,...sd->...tx", q, k) / np.sqrt(q.shape[-1])    # x, not s
    with pytest.raises(AssertionError, match="raised ValueError on case 1 .*output "
                                             "subscript 'x' which never appeared") as info:
        ex.check_scaled_scores(scaled_scores)
    assert "do not line up" not in str(info.value)


def test_an_if_on_an_array_gets_the_truth_value_hint_in_the_additive_scores():
    def additive_scores(q, k, w_1, w_2, v_a):
        hidden = (q @ w_1)[..., :, None, :] + (k @ w_2)[..., None, :, :]
        if hidden:                                      # one True or False for an array
            hidden = np.tanh(hidden)
        return hidden @ v_a
    with pytest.raises(AssertionError, match="Python's own max, min, `if` and `and`") as info:
        ex.check_additive_scores(additive_scores)
    assert "do not line up" not in str(info.value)


def test_a_real_shape_refusal_of_the_2d_case_keeps_its_shape_hint():
    with pytest.raises(AssertionError, match=r"dv must have v's shape \(S, Dv\)") as info:
        ex.check_attention_dv(lambda dout, q, k, v: weights_of(q, k) @ dout)
    assert "mismatch in its core dimension" in str(info.value)
