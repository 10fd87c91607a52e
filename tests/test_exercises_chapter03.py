"""Chapter 3's checkers accept the right answers and reject planted wrong ones."""

import math
import re

import numpy as np
import pytest

from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.exercises import ExerciseError
from attention_from_scratch.exercises import chapter03 as ex


def _guarded_softmax(scores):
    """The softmax of a right answer, over the keys, with a row that sees no
    key left at 0 (its maximum taken as 0, its sum as 1): the part of the
    planted answers below that is not their mistake."""
    row_max = scores.max(axis=-1, keepdims=True)
    row_max[np.isneginf(row_max)] = 0
    weights = np.exp(scores - row_max)
    total = weights.sum(axis=-1, keepdims=True)
    return weights / np.where(total > 0, total, 1.0)


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


@pytest.mark.parametrize("fill", [-1e4, -1e9, -1e10, -9e15, -1e20, -1e30, -1e100])
@pytest.mark.parametrize("added", [False, True])
def test_constants_that_pass_ordinary_cases_leak_on_large_scores(fill, added):
    def constant(q, k, v, mask):
        return masked_softmax_attention(q, k, v, mask, fill=fill, added=added,
                                        zero_empty_rows=True)

    with pytest.raises(AssertionError, match="every score is below -1e299") as info:
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


def test_the_row_maximum_taken_before_masking_gets_the_same_hint():
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = scores - scores.max(axis=-1, keepdims=True)    # masked keys included
        weights = np.exp(np.where(mask, scores, -np.inf))
        total = weights.sum(axis=-1, keepdims=True)
        return weights / np.where(total > 0, total, 1.0) @ v
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert hint.startswith("the row maximum took the masked keys into account")
    assert "subtracting the maximum of all the scores before masking" in hint


def test_the_maximum_over_the_whole_array_gets_its_own_hint():
    def fixed_masked_attention(q, k, v, mask):
        scores = np.where(mask, q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]), -np.inf)
        weights = np.exp(scores - scores.max())                 # no axis
        total = weights.sum(axis=-1, keepdims=True)
        return weights / np.where(total > 0, total, 1.0) @ v
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert hint.startswith("the maximum was taken over the whole array")
    # what the hint says of the hidden case is true: one row keeps its weights
    q, k, _, mask = ex._masked_attention_cases(ex._RNG_SEED)[4]
    scores = np.where(mask, ex._scores(q, k), -np.inf)
    row_max = scores.max(axis=-1)                               # (B, T)
    assert np.sum(row_max - scores.max() > -745) == 1
    assert (row_max.max() - row_max.min()) > 1e299


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
        return _guarded_softmax(scores) @ v

    with pytest.raises(ExerciseError, match="the values are right, the dtype is not: for "
                                            "float32 inputs return float32") as caught:
        ex.check_fixed_masked_attention(promoted)
    assert "got float64" in caught.value.message
    assert "a NumPy float64 scalar: np.sqrt(q.shape[-1]) is one" in caught.value.message
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
    assert np.all(ex._scores(q, k) < -1e299) and np.all(np.isfinite(ex._scores(q, k)))
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


def test_the_most_negative_finite_float_is_accepted(capsys):
    # np.finfo(dtype).min is below every finite score: with empty rows given
    # zeros it is right, though the chapter prefers -inf
    def finfo_min(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = np.where(mask, scores, np.finfo(q.dtype).min)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = weights / weights.sum(axis=-1, keepdims=True)
        return weights * np.broadcast_to(mask, weights.shape).any(-1, keepdims=True) @ v

    ex.check_fixed_masked_attention(finfo_min)
    assert capsys.readouterr().out.startswith(f"✓ {MASKED_ATTENTION}: correct on")


def hint_of(check, attempt):
    with pytest.raises(ExerciseError) as caught:
        check(attempt)
    return caught.value.message


# Exercise 1: mistakes learners make, each planted as written, each with its hint

def test_causal_mask_transposed_gets_its_own_hint():
    def my_causal_mask(t, s):
        keys = np.arange(s)[:, None]                  # keys down the rows
        queries = np.arange(s - t, s)[None, :]
        return keys <= queries
    hint = hint_of(ex.check_causal_mask, my_causal_mask)
    assert hint.startswith("rows are queries and columns are keys")
    assert "upper triangle" not in hint


def test_causal_mask_from_two_1d_position_arrays_gets_its_own_hint():
    def my_causal_mask(t, s):
        return np.arange(s) <= np.arange(s - t, s)          # no [:, None]
    hint = hint_of(ex.check_causal_mask, my_causal_mask)
    assert "Two 1-D arrays are compared entry by entry" in hint


def test_causal_mask_without_the_cached_keys_gets_its_own_hint():
    def my_causal_mask(t, s):
        return np.arange(t)[None, :] <= np.arange(t)[:, None]   # s unused
    assert "one column per key" in hint_of(ex.check_causal_mask, my_causal_mask)


def test_causal_mask_with_every_position_a_query_gets_its_own_hint():
    def my_causal_mask(t, s):
        return np.arange(s)[None, :] <= np.arange(s)[:, None]   # (S, S)
    assert "one row per *query*" in hint_of(ex.check_causal_mask, my_causal_mask)


@pytest.mark.parametrize("check", [ex.check_causal_mask, ex.check_padding_mask])
def test_a_mask_built_as_a_list_of_rows_gets_its_own_hint(check):
    def rows_in_a_loop(*args):
        if check is ex.check_causal_mask:
            t, s = args
            return [[j <= i + s - t for j in range(s)] for i in range(t)]
        lengths, s, side = args
        return [solution_padding_mask(lengths, s, side)[b] for b in range(len(lengths))]
    hint = hint_of(check, rows_in_a_loop)
    assert hint.startswith("your function returned a list of")
    assert "np.array(rows)" in hint and "array(s), got" not in hint


# Exercise 2

def test_padding_left_slice_with_minus_zero_gets_its_own_hint():
    def my_padding_mask(lengths, s, side):
        mask = np.zeros((len(lengths), 1, s), dtype=bool)
        for b, n in enumerate(lengths):
            if side == "right":
                mask[b, 0, :n] = True
            else:
                mask[b, 0, -n:] = True                # n = 0: the whole row
        return mask
    hint = hint_of(ex.check_padding_mask, my_padding_mask)
    assert "x[-0:] = x[0:], the whole row" in hint


def test_padding_left_counted_from_n_gets_its_own_hint():
    def my_padding_mask(lengths, s, side):
        positions, lengths = np.arange(s)[None, :], np.asarray(lengths)[:, None]
        real = positions < lengths if side == "right" else positions >= lengths
        return real[:, None, :]
    assert "not position >= n" in hint_of(ex.check_padding_mask, my_padding_mask)


@pytest.mark.parametrize(("side", "wrong", "hint"), [
    ("right", lambda positions, lengths, s: positions < lengths - 1,
     "off by one with side='right'"),
    ("left", lambda positions, lengths, s: positions >= s - 1 - lengths,
     "off by one with side='left'"),
])
def test_padding_one_position_the_other_way_is_off_by_one(side, wrong, hint):
    def my_padding_mask(lengths, s, side_):
        positions, lengths = np.arange(s)[None, :], np.asarray(lengths)[:, None]
        if side_ == side:
            return wrong(positions, lengths, s)[:, None, :]
        return solution_padding_mask(lengths[:, 0], s, side_)
    assert hint_of(ex.check_padding_mask, my_padding_mask).startswith(hint)


def test_padding_mask_with_the_sequences_on_the_last_axis_gets_its_own_hint():
    def my_padding_mask(lengths, s, side):
        positions = np.arange(s)[:, None]             # (S, 1)
        lengths = np.asarray(lengths)[None, :]        # (1, B)
        real = positions < lengths if side == "right" else positions >= s - lengths
        return real[:, None, :]                       # (S, 1, B)
    assert "yours is (S, 1, B)" in hint_of(ex.check_padding_mask, my_padding_mask)


def test_padding_mask_with_the_size_one_axis_first_gets_its_own_hint():
    def my_padding_mask(lengths, s, side):
        return solution_padding_mask(lengths, s, side)[:, 0][None]
    assert hint_of(ex.check_padding_mask, my_padding_mask).startswith(
        "return shape (B, 1, S), not (1, B, S)")


# Exercise 3

def test_decoder_mask_padding_alone_gets_its_own_hint():
    def my_decoder_mask(lengths, t):
        return padding_mask(lengths, t, side="left")
    assert "the padding mask alone, (B, 1, T)" in hint_of(ex.check_decoder_mask,
                                                          my_decoder_mask)


def test_decoder_mask_upper_triangle_gets_its_own_hint():
    def my_decoder_mask(lengths, t):
        return np.triu(np.ones((t, t), bool)) & padding_mask(lengths, t, side="left")
    assert "the causal part is the upper triangle" in hint_of(ex.check_decoder_mask,
                                                              my_decoder_mask)


def test_decoder_mask_one_key_ahead_gets_its_own_hint():
    def my_decoder_mask(lengths, t):
        return np.tril(np.ones((t, t), bool), k=1) & padding_mask(lengths, t, side="left")
    assert "one key too many" in hint_of(ex.check_decoder_mask, my_decoder_mask)


def test_decoder_mask_with_python_and_gets_its_own_hint():
    def my_decoder_mask(lengths, t):
        return causal_mask(t) and padding_mask(lengths, t, side="left")
    hint = hint_of(ex.check_decoder_mask, my_decoder_mask)
    assert "Python's `and`" in hint and "entry by entry with &" in hint


def test_decoder_mask_with_side_positional_gets_its_own_hint():
    def my_decoder_mask(lengths, t):
        return causal_mask(t) & padding_mask(lengths, t, "left")
    assert "`side` is keyword-only" in hint_of(ex.check_decoder_mask, my_decoder_mask)


def test_decoder_mask_padding_without_its_size_one_axis_gets_its_own_hint():
    def my_decoder_mask(lengths, t):
        return causal_mask(t) & padding_mask(lengths, t, side="left")[:, 0]    # (B, T)
    assert "lost its axis of size 1" in hint_of(ex.check_decoder_mask, my_decoder_mask)


# Exercise 4

@pytest.mark.parametrize("minus_inf_where_masked", [
    lambda mask: (1 - mask) * -np.inf,
    lambda mask: ~mask * -np.inf,
])
def test_zero_times_inf_gets_its_own_hint(minus_inf_where_masked):
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = scores + minus_inf_where_masked(mask)          # 0 * -inf = NaN
        return _guarded_softmax(scores) @ v
    with np.errstate(invalid="ignore"):
        hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert "0 * inf is NaN" in hint and "subtract the row maximum" not in hint


def test_returning_the_weights_too_gets_its_own_hint():
    def fixed_masked_attention(q, k, v, mask):
        out = solution_masked_attention(q, k, v, mask)
        return out, np.ones(out.shape[:-1] + k.shape[-2:-1])    # (out, weights)
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert hint.startswith("your function returned a tuple of 2 items (ndarray, ndarray)")
    assert "(out, cache)" not in hint


def test_the_package_attention_is_refused():
    from attention_from_scratch.core.attention import attention_forward

    def fixed_masked_attention(q, k, v, mask):
        out, _ = attention_forward(q, k, v, mask=mask)
        return out
    assert "not with the package's attention_forward" in hint_of(
        ex.check_fixed_masked_attention, fixed_masked_attention)


def test_k_transposed_with_dot_t_gets_its_own_hint():
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ k.T / math.sqrt(q.shape[-1])        # right for 2-D k only
        scores = np.where(mask, scores, -np.inf)
        return _guarded_softmax(scores) @ v
    assert "`k.T` reverses *every* axis" in hint_of(ex.check_fixed_masked_attention,
                                                  fixed_masked_attention)


def test_masking_by_boolean_index_gets_its_own_hint():
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores[~mask] = -np.inf                 # needs mask of the scores' own shape
        return _guarded_softmax(scores) @ v
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert "A boolean index must match the leading axes" in hint


def test_softmax_over_the_queries_gets_its_own_hint():
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = np.where(mask, scores, -np.inf)
        row_max = scores.max(axis=-2, keepdims=True)
        row_max[np.isneginf(row_max)] = 0
        weights = np.exp(scores - row_max)
        total = weights.sum(axis=-2, keepdims=True)
        return weights / np.where(total > 0, total, 1.0) @ v
    assert "the softmax ran over the queries" in hint_of(ex.check_fixed_masked_attention,
                                                         fixed_masked_attention)


def test_a_float64_mask_array_gets_the_dtype_hint_that_names_it():
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = scores + np.where(mask, 0.0, -np.inf)          # a float64 array
        return _guarded_softmax(scores) @ v
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert "np.where(mask, 0.0, -np.inf) is a float64 array" in hint
    # what the hint says of NumPy's promotion is true
    scores = np.ones((2, 2), np.float32)
    mask = np.eye(2, dtype=bool)
    assert (scores + np.where(mask, 0.0, -np.inf)).dtype == np.float64
    assert np.where(mask, scores, -np.inf).dtype == np.float32


def test_a_float32_answer_to_float64_inputs_is_not_told_about_promotion():
    def fixed_masked_attention(q, k, v, mask):
        return solution_masked_attention(q, k, v, mask).astype(np.float32)
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert "for float64 inputs return float64" in hint
    assert "turns float32 into float64" not in hint


def test_zeroing_empty_rows_by_a_boolean_index_gets_the_same_hint():
    def fixed_masked_attention(q, k, v, mask):
        scores = np.where(mask, q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]), -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        out = weights / weights.sum(axis=-1, keepdims=True) @ v
        out[~mask.any(axis=-1)] = 0                 # mask (T, S) cannot index (B, T, Dv)
        return out
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert "A boolean index must match the leading axes" in hint
    assert "np.broadcast_to(mask, scores.shape)" in hint


def test_decoder_mask_with_a_head_axis_gets_its_own_hint():
    def my_decoder_mask(lengths, t):
        return (causal_mask(t) & padding_mask(lengths, t, side="left"))[:, None]
    assert "without an axis for heads" in hint_of(ex.check_decoder_mask, my_decoder_mask)


def test_decoder_mask_right_padding_on_keys_and_queries_gets_the_left_padding_hint():
    def my_decoder_mask(lengths, t):
        real = padding_mask(lengths, t)                             # side="right"
        return causal_mask(t) & real & np.swapaxes(real, -1, -2)
    assert "padded on the left" in hint_of(ex.check_decoder_mask, my_decoder_mask)


@pytest.mark.parametrize("size", ["dk", "dv", "s"])
def test_a_scale_by_the_wrong_size_gets_the_scale_hint(size):
    def fixed_masked_attention(q, k, v, mask):
        d = {"dk": q.shape[-1] ** 2, "dv": v.shape[-1], "s": k.shape[-2]}[size]
        return solution_masked_attention(q * math.sqrt(q.shape[-1] / d), k, v, mask)
    hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert hint.startswith("the mask is right, the scale is not: divide the scores by sqrt(Dk)")


def test_nan_from_infinities_on_ordinary_scores_is_not_blamed_on_the_row_maximum():
    def fixed_masked_attention(q, k, v, mask):
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = np.where(mask, scores, -np.inf) * mask    # -inf * False = NaN
        return _guarded_softmax(scores) @ v
    with np.errstate(invalid="ignore"):
        hint = hint_of(ex.check_fixed_masked_attention, fixed_masked_attention)
    assert "makes NaN out of infinities" in hint
    assert "subtract the row maximum" not in hint


def test_a_wrong_padding_mask_names_its_case_by_the_lengths_and_the_side():
    def last_key_always_allowed(lengths, s, side):
        mask = solution_padding_mask(lengths, s, side)
        mask[..., -1] = True
        return mask

    with pytest.raises(ExerciseError, match=re.escape(
            "wrong on case 1 (arguments lengths=[2, 0, 3], s=4, side='right')")):
        ex.check_padding_mask(last_key_always_allowed)


# A mask returned as a list or tuple is named as such before its dtype is read

@pytest.mark.parametrize(("check", "attempt"), [
    (ex.check_causal_mask,
     lambda t, s: [np.ones(s - t + i + 1, bool) for i in range(t)]),        # ragged rows
    (ex.check_padding_mask,
     lambda lengths, s, side: [np.ones(n, bool) for n in lengths]),          # ragged rows
])
def test_a_ragged_list_of_rows_gets_the_list_hint(check, attempt):
    hint = hint_of(check, attempt)
    assert hint.startswith("your function returned a list of")
    assert "np.array(rows)" in hint
    assert "softmax_forward" not in hint


def test_a_mask_returned_beside_its_shape_gets_its_own_hint():
    def my_causal_mask(t, s):
        mask = solution_causal_mask(t, s)
        return mask, mask.shape
    hint = hint_of(ex.check_causal_mask, my_causal_mask)
    assert hint.startswith("your function returned a tuple of 2 items (ndarray, tuple)")
    assert "return the mask alone" in hint
    assert "softmax_forward" not in hint


# `k.T` is named only when the attempt transposes

def _masked_attention_with_scores(scores_of, weighted_sum=lambda w, v: w @ v):
    def fixed_masked_attention(q, k, v, mask):
        scores = np.where(mask, scores_of(q, k), -np.inf)
        return weighted_sum(_guarded_softmax(scores), v)
    return fixed_masked_attention


@pytest.mark.parametrize("attempt", [
    _masked_attention_with_scores(                      # right in 2-D only
        lambda q, k: q @ np.swapaxes(k, 0, 1) / math.sqrt(q.shape[-1])),
    _masked_attention_with_scores(                      # the error is about v
        lambda q, k: q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]),
        lambda w, v: w @ v.reshape(-1, v.shape[-1])),
])
def test_a_batched_matmul_error_without_a_transpose_does_not_blame_k_t(attempt):
    hint = hint_of(ex.check_fixed_masked_attention, attempt)
    assert "raised ValueError on case 2" in hint
    assert "k.T" not in hint


def test_np_transpose_of_k_is_named_too():
    attempt = _masked_attention_with_scores(
        lambda q, k: q @ np.transpose(k) / math.sqrt(q.shape[-1]))
    assert "`k.T` reverses *every* axis" in hint_of(ex.check_fixed_masked_attention, attempt)


# The package's functions are refused by what they are, not by their name

def test_the_steps_attention_is_refused_too():
    from attention_from_scratch import steps

    def fixed_masked_attention(q, k, v, mask):
        return steps.attention.attention_forward(q, k, v, mask=mask)[0]
    assert "not with the package's attention_forward" in hint_of(
        ex.check_fixed_masked_attention, fixed_masked_attention)


def attention_forward(q, k, v, mask):
    """A learner's own helper, named like the package's function."""
    return solution_masked_attention(q, k, v, mask)


def test_a_learners_own_attention_forward_is_accepted(capsys):
    ex.check_fixed_masked_attention(lambda q, k, v, mask: attention_forward(q, k, v, mask))
    assert capsys.readouterr().out.startswith(f"✓ {MASKED_ATTENTION}: correct on")


def test_a_learners_own_causal_mask_is_judged_by_its_code(capsys):
    namespace = {"np": np, "__name__": "learner"}
    exec("def causal_mask(t, s):\n"                         # noqa: S102 - a learner's cell
         "    return np.arange(s)[None, :] <= np.arange(s - t, s)[:, None]\n"
         "def my_causal_mask(t, s):\n"
         "    return causal_mask(t, s)\n", namespace)
    ex.check_causal_mask(namespace["my_causal_mask"])
    assert capsys.readouterr().out.startswith("✓ Exercise 1 (causal mask): correct on")
    exec("def causal_mask(t, s):\n"                         # noqa: S102
         "    return np.tril(np.ones((t, s), bool), s - t)\n", namespace)
    with pytest.raises(AssertionError, match="without np.tril, np.triu, np.tri"):
        ex.check_causal_mask(namespace["my_causal_mask"])


def test_the_package_causal_mask_is_refused_however_it_is_reached():
    from attention_from_scratch.common import masks

    def imported_inside(t, s):
        from attention_from_scratch.common.masks import causal_mask as lower
        return lower(t, s)

    def module_imported_inside(t, s):
        import attention_from_scratch.common.masks as m
        return m.causal_mask(t, s)

    for shortcut in (lambda t, s: masks.causal_mask(t, s), imported_inside,
                     module_imported_inside):
        with pytest.raises(AssertionError, match="without np.tril, np.triu, np.tri"):
            ex.check_causal_mask(shortcut)
