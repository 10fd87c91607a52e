"""Chapter 3's checkers accept the right answers and reject planted wrong ones."""

import math

import numpy as np
import pytest

from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.exercises import ExerciseError
from attention_from_scratch.exercises import chapter03 as ex


def solution_causal_mask(t, s):
    keys = np.arange(s)[None, :]                  # (1, S)
    queries = np.arange(s - t, s)[:, None]        # (T, 1): the last T positions
    return keys <= queries


def solution_padding_mask(lengths, s, side):
    positions = np.arange(s)[None, :]             # (1, S)
    lengths = np.asarray(lengths)[:, None]        # (B, 1)
    real = positions < lengths if side == "right" else positions >= s - lengths
    return real[:, None, :]                       # (B, 1, S)


def solution_decoder_mask(lengths, t):
    return causal_mask(t) & padding_mask(lengths, t, side="left")


def solution_masked_attention(q, k, v, mask):
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])     # float32 stays float32
    scores = np.where(mask, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    row_max[np.isneginf(row_max)] = 0.0
    weights = np.exp(scores - row_max)
    total = weights.sum(axis=-1, keepdims=True)
    weights = weights / np.where(total > 0, total, 1.0)
    return weights @ v


def not_attempted(*args):
    raise NotImplementedError


MASKED_ATTENTION = "Exercise 4 (fixed masked attention)"


@pytest.mark.parametrize(("check", "solution", "label"), [
    (ex.check_causal_mask, solution_causal_mask, "Exercise 1 (causal mask)"),
    (ex.check_padding_mask, solution_padding_mask, "Exercise 2 (padding mask)"),
    (ex.check_decoder_mask, solution_decoder_mask, "Exercise 3 (decoder mask)"),
    (ex.check_fixed_masked_attention, solution_masked_attention, MASKED_ATTENTION),
    (ex.check_fixed_masked_attention, ex.fixed_masked_attention, MASKED_ATTENTION),
])
def test_solutions_pass_and_stubs_are_not_attempted(capsys, check, solution, label):
    check(solution)
    assert capsys.readouterr().out.startswith(f"✓ {label}: correct on")
    check(not_attempted)
    assert capsys.readouterr().out.strip() == f"{label}: not attempted yet"


def test_causal_mask_refuses_shortcuts_by_what_the_code_calls():
    lower = np.tril
    for shortcut in (
        lambda t, s: np.tril(np.ones((t, s), bool), s - t),
        lambda t, s: ~np.triu(np.ones((t, s), bool), s - t + 1),
        lambda t, s: np.tri(t, s, s - t, dtype=bool),
        lambda t, s: causal_mask(t, s),
        lambda t, s: lower(np.ones((t, s), bool), s - t),        # an alias
        lambda t, s: helper_with_tril(t, s),                     # through a helper
    ):
        with pytest.raises(AssertionError, match="without np.tril, np.triu, np.tri"):
            ex.check_causal_mask(shortcut)


def helper_with_tril(t, s):
    return np.tril(np.ones((t, s), bool), s - t)


def test_causal_mask_accepts_a_right_answer_that_mentions_the_shortcuts(capsys):
    def documented(t, s):
        """Like causal_mask(t, s) or np.tril(np.ones((t, s)), s - t), by hand."""
        keys = np.arange(s)[None, :]                 # np.tril would be shorter
        return keys <= np.arange(s - t, s)[:, None]  # causal_mask( does this too

    def tri_is_only_a_variable(t, s):
        tri = np.arange(s)[None, :] <= np.arange(s - t, s)[:, None]
        return tri

    ex.check_causal_mask(documented)
    ex.check_causal_mask(tri_is_only_a_variable)
    assert capsys.readouterr().out.count("✓ Exercise 1 (causal mask)") == 2


def test_causal_mask_rejects_planted_mistakes():
    with pytest.raises(AssertionError, match="query i sits at position S - T \\+ i"):
        ex.check_causal_mask(lambda t, s: np.arange(s)[None] <= np.arange(t)[:, None])
    with pytest.raises(AssertionError, match="must see itself"):
        ex.check_causal_mask(lambda t, s: np.arange(s)[None] < np.arange(s - t, s)[:, None])
    with pytest.raises(AssertionError, match="upper triangle"):
        ex.check_causal_mask(lambda t, s: np.arange(s)[None] >= np.arange(s - t, s)[:, None])
    with pytest.raises(AssertionError, match="polarity is reversed"):
        ex.check_causal_mask(lambda t, s: np.arange(s)[None] > np.arange(s - t, s)[:, None])
    with pytest.raises(AssertionError, match="return a boolean array .* got dtype int64"):
        ex.check_causal_mask(lambda t, s: solution_causal_mask(t, s).astype(np.int64))


def test_padding_mask_rejects_planted_mistakes():
    def off_by_one(lengths, s, side, *, wrong_sides=("right", "left")):
        positions = np.arange(s)[None, :]
        lengths = np.asarray(lengths)[:, None]
        if side == "right":
            real = positions <= lengths if side in wrong_sides else positions < lengths
        else:
            real = positions > s - lengths if side in wrong_sides else positions >= s - lengths
        return real[:, None, :]

    with pytest.raises(AssertionError, match="off by one with side='right'"):
        ex.check_padding_mask(off_by_one)
    with pytest.raises(AssertionError, match="off by one with side='right'.*position < n"):
        ex.check_padding_mask(lambda lengths, s, side: off_by_one(lengths, s, side,
                                                                  wrong_sides=("right",)))
    with pytest.raises(AssertionError,
                       match="off by one with side='left'.*position >= s - n") as info:
        ex.check_padding_mask(lambda lengths, s, side: off_by_one(lengths, s, side,
                                                                  wrong_sides=("left",)))
    assert "right" not in str(info.value)
    with pytest.raises(AssertionError, match="key_padding_mask"):
        ex.check_padding_mask(lambda lengths, s, side: ~solution_padding_mask(lengths, s, side))
    with pytest.raises(AssertionError, match=r"return shape \(B, 1, S\), not \(B, S\)"):
        ex.check_padding_mask(lambda lengths, s, side: solution_padding_mask(lengths, s,
                                                                             side)[:, 0])
    with pytest.raises(AssertionError, match="padding comes first"):
        ex.check_padding_mask(lambda lengths, s, side: solution_padding_mask(lengths, s,
                                                                             "right"))
    with pytest.raises(AssertionError, match="got dtype float64"):
        ex.check_padding_mask(lambda lengths, s, side: 1.0 * solution_padding_mask(
            lengths, s, side))


def test_decoder_mask_rejects_planted_mistakes():
    with pytest.raises(AssertionError, match="combine them with &, not \\|"):
        ex.check_decoder_mask(
            lambda lengths, t: causal_mask(t) | padding_mask(lengths, t, side="left"))
    with pytest.raises(AssertionError, match="padded on the left"):
        ex.check_decoder_mask(lambda lengths, t: causal_mask(t) & padding_mask(lengths, t))
    with pytest.raises(AssertionError, match="padding is missing"):
        ex.check_decoder_mask(
            lambda lengths, t: np.repeat(causal_mask(t)[None], len(lengths), axis=0))
    with pytest.raises(AssertionError, match="causal part is missing"):
        ex.check_decoder_mask(lambda lengths, t: np.repeat(
            padding_mask(lengths, t, side="left"), t, axis=1))
    with pytest.raises(AssertionError, match=r"the causal mask alone, \(T, T\)"):
        ex.check_decoder_mask(lambda lengths, t: causal_mask(t))


def masked_softmax_attention(q, k, v, mask, *, fill=-np.inf, added=False,
                             zero_empty_rows=False):
    """Masked attention the ways people write it, right and wrong."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = scores + np.where(mask, 0.0, fill) if added else np.where(mask, scores, fill)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = weights / weights.sum(axis=-1, keepdims=True)
    if zero_empty_rows:
        empty = ~np.broadcast_to(mask, weights.shape).any(axis=-1, keepdims=True)
        weights = np.where(empty, 0.0, weights)
    return weights @ v


def test_fixed_masked_attention_rejects_planted_mistakes():
    with pytest.raises(AssertionError, match="still masking after the softmax"):
        ex.check_fixed_masked_attention(ex.buggy_masked_attention)
    with pytest.raises(AssertionError, match="finite constant such as -1e9 works in most"):
        ex.check_fixed_masked_attention(
            lambda q, k, v, mask: masked_softmax_attention(q, k, v, mask, fill=-1e4))
    with pytest.raises(AssertionError, match="added constant such as -1e4"):
        ex.check_fixed_masked_attention(lambda q, k, v, mask: masked_softmax_attention(
            q, k, v, mask, fill=-1e4, added=True))
    with np.errstate(invalid="ignore"), \
            pytest.raises(AssertionError, match="NaN in the rows with nothing to attend to"):
        ex.check_fixed_masked_attention(masked_softmax_attention)

    def renormalised(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True)) * mask
        return weights / weights.sum(axis=-1, keepdims=True) @ v

    with np.errstate(invalid="ignore"), \
            pytest.raises(AssertionError, match="NaN in the rows with nothing to attend to"):
        ex.check_fixed_masked_attention(renormalised)
    with pytest.raises(AssertionError, match="scale is missing"):
        ex.check_fixed_masked_attention(
            lambda q, k, v, mask: solution_masked_attention(q * np.sqrt(q.shape[-1]), k, v,
                                                            mask))


@pytest.mark.parametrize("fill", [-1e4, -1e9, -1e10, -9e15])
@pytest.mark.parametrize("added", [False, True])
def test_constants_that_pass_ordinary_cases_leak_on_large_scores(fill, added):
    def constant(q, k, v, mask):
        return masked_softmax_attention(q, k, v, mask, fill=fill, added=added,
                                        zero_empty_rows=True)

    with pytest.raises(AssertionError, match="case 5|every score is below -1e17") as info:
        ex.check_fixed_masked_attention(constant)
    assert "finite constant such as -1e9 or -1e4, put in place of the masked scores or " \
           "added to them, fails" in str(info.value)


def test_renormalising_after_the_softmax_fails_when_a_masked_key_dominates():
    def guarded(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True)) * mask
        total = weights.sum(axis=-1, keepdims=True)
        return weights / np.where(total > 0, total, 1.0) @ v

    with pytest.raises(AssertionError, match="renormalising the weights after the softmax"):
        ex.check_fixed_masked_attention(guarded)


def test_a_softmax_without_the_row_maximum_fails_on_large_scores():
    def without_max(q, k, v, mask):
        weights = np.exp(np.where(mask, q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]),
                                  -np.inf))
        total = weights.sum(axis=-1, keepdims=True)
        return weights / np.where(total > 0, total, 1.0) @ v

    with pytest.raises(AssertionError, match="subtract the row maximum before exp"):
        ex.check_fixed_masked_attention(without_max)


def test_reversed_polarity_gets_its_own_hint_with_or_without_nan():
    with pytest.raises(AssertionError, match="the polarity is reversed"):
        ex.check_fixed_masked_attention(
            lambda q, k, v, mask: solution_masked_attention(q, k, v, ~mask))
    with np.errstate(invalid="ignore"), \
            pytest.raises(AssertionError, match="NaN in the rows where every key is "
                                                "allowed: the polarity is reversed"):
        ex.check_fixed_masked_attention(
            lambda q, k, v, mask: masked_softmax_attention(q, k, v, ~mask))


def test_the_right_answer_passes_computed_in_float32(capsys):
    def in_float32(q, k, v, mask):      # math.sqrt is a Python float: float32 stays float32
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = np.where(mask, scores, -np.inf)
        row_max = scores.max(axis=-1, keepdims=True)
        row_max[np.isneginf(row_max)] = 0
        weights = np.exp(scores - row_max)
        total = weights.sum(axis=-1, keepdims=True)
        out = weights / np.where(total > 0, total, 1) @ v
        assert out.dtype == q.dtype
        return out

    ex.check_fixed_masked_attention(in_float32)
    assert capsys.readouterr().out.startswith(f"✓ {MASKED_ATTENTION}: correct on 6")


def test_nan_to_num_over_the_naive_softmax_gets_the_overflow_hint():
    def naive_then_nan_to_num(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = np.where(mask, scores, -np.inf)
        weights = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
        return np.nan_to_num(weights) @ v           # empty rows: NaN -> 0, as wanted

    with pytest.raises(ExerciseError, match="np.nan_to_num hid the NaN") as caught:
        ex.check_fixed_masked_attention(naive_then_nan_to_num)
    assert "exp overflowed" in caught.value.message
    assert "Subtract the row maximum" in caught.value.message
    assert "def " not in str(caught.value)
    # what the hint says of a row with scores [1000, 999] is true
    np.testing.assert_allclose(ex.fixed_masked_attention(
        np.array([[1000.0]]), np.array([[1.0], [0.999]]), np.eye(2), np.ones((1, 2), bool)),
        [[0.731, 0.269]], atol=5e-4)

    # the same nan_to_num after a stable softmax is right
    def stable_then_nan_to_num(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = np.where(mask, scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return np.nan_to_num(weights / weights.sum(axis=-1, keepdims=True)) @ v

    ex.check_fixed_masked_attention(stable_then_nan_to_num)


def test_a_float64_answer_to_float32_inputs_gets_the_dtype_hint(capsys):
    def promoted(q, k, v, mask):        # np.sqrt gives a NumPy float64 scalar
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        scores = np.where(mask, scores, -np.inf)
        row_max = scores.max(axis=-1, keepdims=True)
        row_max[np.isneginf(row_max)] = 0.0
        weights = np.exp(scores - row_max)
        total = weights.sum(axis=-1, keepdims=True)
        return weights / np.where(total > 0, total, 1.0) @ v

    with pytest.raises(ExerciseError, match="the values are right, the dtype is not: for "
                                            "float32 inputs return float32") as caught:
        ex.check_fixed_masked_attention(promoted)
    assert "got float64" in caught.value.message
    # what the hint says of NumPy's promotion is true
    x = np.ones(3, dtype=np.float32)
    assert (x / np.sqrt(4)).dtype == np.float64 and (x / math.sqrt(4)).dtype == np.float32
    ex.check_fixed_masked_attention(
        lambda q, k, v, mask: promoted(q, k, v, mask).astype(q.dtype))
    assert capsys.readouterr().out.startswith(f"✓ {MASKED_ATTENTION}: correct on")


def test_the_hidden_cases_hold_what_their_docstring_says():
    cases = ex._masked_attention_cases(ex._RNG_SEED)
    q, k, _, mask = cases[1]
    assert not np.broadcast_to(mask, (2, 4, 4)).any(axis=-1).all()     # empty rows
    q, k, _, mask = cases[3]
    scores = ex._scores(q, k)
    assert np.all((990 < scores) & (scores < 1010))
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(scores)).all()                           # exp overflows
    assert np.all(np.broadcast_to(mask, scores.shape).any(axis=-1))     # every row has keys
    q, k, _, mask = cases[4]
    assert np.all(q @ np.swapaxes(k, -1, -2) < -1e17)
    assert np.all(np.broadcast_to(mask, (2, 3, 5)).any(axis=-1))       # every row has keys
    q, k, _, mask = cases[5]
    assert q.dtype == np.float32 and q.shape[-2] > k.shape[-2]
    assert not mask.any(axis=-1).all()


def test_the_bug_breaks_the_row_sums_and_renormalising_matches_except_empty_rows():
    # the lesson behind exercise 4, checked on one example
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), np.eye(4)
    mask = causal_mask(3, 4)
    weights_bug = ex.buggy_masked_attention(q, k, v, mask)           # v = I: out = weights
    assert np.all(weights_bug[~mask] == 0.0)
    assert np.all(weights_bug.sum(axis=-1)[:2] < 1.0)               # rows that lost keys
    np.testing.assert_allclose(weights_bug.sum(axis=-1)[2], 1.0)    # the last row lost none
    np.testing.assert_allclose(weights_bug / weights_bug.sum(axis=-1, keepdims=True),
                               ex.fixed_masked_attention(q, k, v, mask))


def test_decoder_mask_padding_on_the_queries_gets_its_own_hint(capsys):
    with pytest.raises(AssertionError, match=r"hides \*keys\*, not queries"):
        ex.check_decoder_mask(lambda lengths, t: causal_mask(t) & np.swapaxes(
            padding_mask(lengths, t, side="left"), -1, -2))
    # masking the padding queries as well as the keys is right: with left padding and
    # the causal mask their rows are empty already
    ex.check_decoder_mask(lambda lengths, t: causal_mask(t)
                          & padding_mask(lengths, t, side="left")
                          & np.swapaxes(padding_mask(lengths, t, side="left"), -1, -2))
    assert "✓ Exercise 3 (decoder mask)" in capsys.readouterr().out
