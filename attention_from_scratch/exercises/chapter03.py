"""Checkers for the exercises of Chapter 3, "Masks"."""

import math

import numpy as np

from attention_from_scratch import steps
from attention_from_scratch.common.masks import causal_mask, padding_mask, sliding_window_mask
from attention_from_scratch.core.attention import attention_forward
from attention_from_scratch.core.softmax import softmax_forward
from attention_from_scratch.exercises import (
    ExerciseError,
    boolean_result,
    check_exercise,
    code_names,
    code_objects,
    describe_value,
    require_function,
)

_RNG_SEED = 2027


# what Exercise 1 builds by hand, and Exercise 4 writes with NumPy: the
# functions themselves, so that a learner's own helper of the same name passes
_SHORTCUTS = (np.tril, np.triu, np.tri, causal_mask, sliding_window_mask)
_PACKAGE_ATTENTION = (attention_forward, steps.attention.attention_forward)


def _calls_any(function, forbidden):
    """Whether the code of ``function`` reaches a ``forbidden`` function.

    Compares the functions its names hold (see :func:`code_objects`), so a
    docstring or comment that mentions ``np.tril`` is fine, an alias such
    as ``lower = np.tril`` is not, and a function of the learner's own
    called ``causal_mask`` is judged by its code, not by its name.
    """
    return any(obj is shortcut for obj in code_objects(function) for shortcut in forbidden)


def _one_mask(name, attempt):
    """Wrap ``attempt`` so a mask that is not one boolean array gets a hint.

    A list of rows (of booleans or of arrays) would otherwise be taken
    for several outputs, and the learner told of a count of arrays. The
    list or tuple is named before the dtype is read: NumPy cannot make one
    array of rows of different lengths, nor of a mask beside its shape.
    """
    def one(*args):
        result = attempt(*args)
        if isinstance(result, tuple) and any(isinstance(part, np.ndarray) and part.ndim >= 2
                                             for part in result):
            raise ExerciseError(
                name, f"your function returned {describe_value(result)}; return the mask "
                "alone, one NumPy array of booleans, with nothing beside it")
        if isinstance(result, list | tuple):
            raise ExerciseError(
                name, f"your function returned {describe_value(result)}; return one "
                "NumPy array of booleans. Comparisons of np.arange positions give one "
                "directly; rows built in a loop become one with np.array(rows)")
        return result
    return boolean_result(name, one)


def _mask_crash_hint(error, args):
    """Hints for the crashes of mask building, or None."""
    text = str(error)
    if "truth value of an array" in text:
        return ("Python's `and`, `or` and `if` want one True or False for a whole array; "
                "combine masks entry by entry with & (and | for or, ~ for not)")
    if isinstance(error, TypeError) and "padding_mask() takes" in text:
        return ("`side` is keyword-only: write padding_mask(lengths, s, side='left')")
    return None


def _causal_top_left(t, s):
    return np.arange(s)[None, :] <= np.arange(t)[:, None]


def _causal_offset_sign(t, s):
    return np.arange(s)[None, :] <= np.arange(t)[:, None] - (s - t)


def _causal_strict(t, s):
    return np.arange(s)[None, :] < np.arange(s - t, s)[:, None]


def _causal_one_ahead(t, s):
    return np.arange(s)[None, :] <= np.arange(s - t, s)[:, None] + 1


def _causal_upper(t, s):
    return np.arange(s)[None, :] >= np.arange(s - t, s)[:, None]


def _causal_inverted(t, s):
    return ~causal_mask(t, s)


def _causal_transposed(t, s):
    return causal_mask(t, s).T


def _causal_queries_only(t, s):
    return causal_mask(t)                                   # (T, T): no cached keys


def _causal_every_position(t, s):
    return causal_mask(s)                                   # (S, S): every position a query


def _causal_crash_hint(error, args):
    """The mask crash hints, and two 1-D position arrays compared."""
    hint = _mask_crash_hint(error, args)
    if hint is not None:
        return hint
    t, s = args
    if "could not be broadcast" in str(error) and {f"({t},)", f"({s},)"} <= set(
            str(error).split()):
        return ("Two 1-D arrays are compared entry by entry, not every query with every "
                "key: make the query positions a column ([:, None], (T, 1)) and the key "
                "positions a row ([None, :], (1, S)), and broadcasting gives (T, S)")
    return None


def check_causal_mask(attempt):
    """Exercise 1: ``my_causal_mask(t, s)``, ``(T, S)``, by comparisons.

    Refuses an attempt that calls ``np.tril``, ``np.triu``, ``np.tri`` or
    the package's mask builders.
    """
    name = "Exercise 1 (causal mask)"
    require_function(name, attempt)
    if _calls_any(attempt, _SHORTCUTS):
        raise ExerciseError(name, "build it without np.tril, np.triu, np.tri or the "
                                  "package's causal_mask (or other mask builders): compare "
                                  "key positions with query positions using np.arange")
    # T != S first: a square case would take a transposed mask for the
    # upper triangle
    cases = [(2, 5), (3, 3), (1, 1), (4, 6), (1, 4), (5, 7)]
    check_exercise(
        name, _one_mask(name, attempt), causal_mask, cases, crash_hint=_causal_crash_hint,
        mistakes=[
            (_causal_top_left, "right when S = T, wrong when S > T: the T queries are the "
                               "*last* T positions, so query i sits at position S - T + i"),
            (_causal_offset_sign, "the offset has the wrong sign: with S > T the T queries "
                                  "are the *last* T positions, so query i sits at "
                                  "position i + (S - T), not i - (S - T)"),
            (_causal_strict, "every query must see itself: key j is allowed when "
                             "j <= position, not j < position"),
            (_causal_one_ahead, "each query sees one key too many: key j is allowed "
                                "when j <= position, not j <= position + 1 (the next "
                                "token is the one it must predict)"),
            (_causal_upper, "that is the upper triangle: each query would see its future "
                            "and not its past"),
            (_causal_inverted, "the polarity is reversed: True must mean 'may attend' "
                               "(the past and the query itself), False 'masked out'"),
            (_causal_queries_only, "the mask is (T, S), one column per key: the T queries "
                                   "may also see the S - T keys before them (the cached "
                                   "ones), so compare with np.arange(s) for the keys"),
            (_causal_every_position, "the mask is (T, S), one row per *query*: only the "
                                     "last T of the S positions are queries, so the query "
                                     "positions are S - T .. S - 1, np.arange(s - t, s)"),
            (_causal_transposed, "rows are queries and columns are keys: the mask is "
                                 "(T, S), and yours is it transposed, (S, T); put the "
                                 "query positions in a column ([:, None]) and the key "
                                 "positions in a row ([None, :])"),
        ],
    )


def _padding_off_by_one_right(lengths, s, side):
    if side == "left":
        return padding_mask(lengths, s, side="left")
    return (np.arange(s)[None, :] <= lengths[:, None])[:, None, :]


def _padding_off_by_one_left(lengths, s, side):
    if side == "right":
        return padding_mask(lengths, s, side="right")
    return (np.arange(s)[None, :] > s - lengths[:, None])[:, None, :]


def _padding_one_short_right(lengths, s, side):
    if side == "left":
        return padding_mask(lengths, s, side="left")
    return (np.arange(s)[None, :] < lengths[:, None] - 1)[:, None, :]


def _padding_one_extra_left(lengths, s, side):
    if side == "right":
        return padding_mask(lengths, s, side="right")
    return (np.arange(s)[None, :] >= s - lengths[:, None] - 1)[:, None, :]


def _padding_left_negative_slice(lengths, s, side):
    mask = padding_mask(lengths, s, side=side)
    if side == "left":
        mask[lengths == 0] = True                 # x[-0:] is the whole row
    return mask


def _padding_left_from_n(lengths, s, side):
    if side == "right":
        return padding_mask(lengths, s, side="right")
    return (np.arange(s)[None, :] >= lengths[:, None])[:, None, :]


def _padding_transposed(lengths, s, side):
    return np.swapaxes(padding_mask(lengths, s, side=side), 0, 2)      # (S, 1, B)


def _padding_query_axis_first(lengths, s, side):
    return padding_mask(lengths, s, side=side)[:, 0][None]              # (1, B, S)


def _padding_inverted(lengths, s, side):
    return ~padding_mask(lengths, s, side=side)


def _padding_without_query_axis(lengths, s, side):
    return padding_mask(lengths, s, side=side)[:, 0, :]


def _padding_on_the_query_axis(lengths, s, side):
    return np.swapaxes(padding_mask(lengths, s, side=side), -1, -2)


def _padding_always_right(lengths, s, side):
    return padding_mask(lengths, s, side="right")


def _padding_sides_swapped(lengths, s, side):
    return padding_mask(lengths, s, side="left" if side == "right" else "right")


def _padding_reference(lengths, s, side):
    return padding_mask(lengths, s, side=side)


def check_padding_mask(attempt):
    """Exercise 2: ``my_padding_mask(lengths, s, side)``, ``(B, 1, S)``."""
    name = "Exercise 2 (padding mask)"
    require_function(name, attempt)
    cases = []
    for lengths, s in [([2, 0, 3], 4), ([4, 1, 5, 2], 5), ([1], 4), ([6, 3], 6)]:
        for side in ("right", "left"):
            cases.append((np.array(lengths), s, side))
    off_by_one_right = ("off by one with side='right': positions count from 0, so a "
                        "sequence of length n has its real tokens at positions 0 .. n-1 "
                        "(position < n)")
    off_by_one_left = ("off by one with side='left': the real tokens are the last n "
                       "positions, s-n .. s-1 (position >= s - n)")
    check_exercise(
        name, _one_mask(name, attempt), _padding_reference, cases,
        crash_hint=_mask_crash_hint,
        mistakes=[
            (_padding_off_by_one_right, off_by_one_right),
            (_padding_one_short_right, off_by_one_right),
            (_padding_off_by_one_left, off_by_one_left),
            (_padding_one_extra_left, off_by_one_left),
            (_padding_left_negative_slice, "with side='left', a sequence of length 0 came "
                                           "out all real: in Python x[-n:] with n = 0 is "
                                           "x[-0:] = x[0:], the whole row, not an empty "
                                           "slice; slice x[s - n:], or compare positions, "
                                           "position >= s - n"),
            (_padding_left_from_n, "with side='left' the padding comes first, so the real "
                                   "tokens are the *last* n positions: position >= s - n, "
                                   "not position >= n (n counts the real tokens, not the "
                                   "padding)"),
            (_padding_transposed, "one row per sequence: the mask is (B, 1, S), and yours "
                                  "is (S, 1, B), the sequences along the last axis; put "
                                  "the lengths in a column (lengths[:, None], (B, 1)) and "
                                  "the positions in a row (np.arange(s)[None, :], (1, S))"),
            (_padding_query_axis_first, "return shape (B, 1, S), not (1, B, S): one row per "
                                        "sequence first, then the axis of size 1 that "
                                        "broadcasts over the T queries of scores (B, T, S), "
                                        "then the keys"),
            (_padding_inverted, "the polarity is reversed: True must mark the real tokens "
                                "(may attend); True = padding is the convention of "
                                "nn.MultiheadAttention's key_padding_mask, not ours"),
            (_padding_without_query_axis, "return shape (B, 1, S), not (B, S): the axis of "
                                          "size 1 lets the mask broadcast over the T queries "
                                          "of scores (B, T, S)"),
            (_padding_on_the_query_axis, "return shape (B, 1, S), not (B, S, 1): the mask "
                                         "picks *keys*, the last axis of scores (B, T, S); "
                                         "the axis of size 1 stands for the T queries"),
            (_padding_sides_swapped, "the sides are swapped: side='right' means the padding "
                                     "is on the right, so the real tokens come first "
                                     "(position < n); side='left' puts the padding first, "
                                     "so the real tokens are the last n (position >= s - n)"),
            (_padding_always_right, "with side='left' the padding comes first: the real "
                                    "tokens are the last `length` positions"),
        ],
    )


def decoder_mask(lengths, t):
    """Reference: causal and left padding, ``(B, T, T)``."""
    return causal_mask(t) & padding_mask(lengths, t, side="left")


def _decoder_or(lengths, t):
    return causal_mask(t) | padding_mask(lengths, t, side="left")


def _decoder_right_padding(lengths, t):
    return causal_mask(t) & padding_mask(lengths, t, side="right")


def _decoder_causal_only(lengths, t):
    return np.broadcast_to(causal_mask(t), (len(lengths), t, t))


def _decoder_padding_on_queries(lengths, t):
    real = padding_mask(lengths, t, side="left")                # (B, 1, T)
    return causal_mask(t) & np.swapaxes(real, -1, -2)           # (B, T, 1): queries


def _decoder_causal_unbatched(lengths, t):
    return causal_mask(t)


def _decoder_padding_inverted(lengths, t):
    return causal_mask(t) & ~padding_mask(lengths, t, side="left")


def _decoder_strict_causal(lengths, t):
    return ~np.eye(t, dtype=bool) & decoder_mask(lengths, t)


def _decoder_padding_only(lengths, t):
    return np.broadcast_to(padding_mask(lengths, t, side="left"), (len(lengths), t, t))


def _decoder_head_axis(lengths, t):
    return decoder_mask(lengths, t)[:, None]                    # (B, 1, T, T)


def _decoder_right_padding_on_both(lengths, t):
    real = padding_mask(lengths, t, side="right")               # (B, 1, T)
    return causal_mask(t) & real & np.swapaxes(real, -1, -2)


def _decoder_padding_alone(lengths, t):
    return padding_mask(lengths, t, side="left")                 # (B, 1, T)


def _decoder_upper(lengths, t):
    return np.triu(np.ones((t, t), bool)) & padding_mask(lengths, t, side="left")


def _decoder_one_ahead(lengths, t):
    return np.tri(t, k=1, dtype=bool) & padding_mask(lengths, t, side="left")


def _decoder_crash_hint(error, args):
    """The mask crash hints, and the padding mask's axis of size 1 lost."""
    hint = _mask_crash_hint(error, args)
    if hint is not None:
        return hint
    lengths, t = args
    shapes = str(error).replace(" ", "")
    if ("could not be broadcast" in str(error) and f"({t},{t})" in shapes
            and f"({len(lengths)},{t})" in shapes):
        return (f"The padding mask has lost its axis of size 1: as (B, T) = "
                f"({len(lengths)}, {t}) NumPy aligns it with the causal mask's (T, T) from "
                "the right, so the sequences would meet the queries; use padding_mask(...) "
                "as it is, (B, 1, T), and & broadcasts it to (B, T, T)")
    return None


def check_decoder_mask(attempt):
    """Exercise 3: ``my_decoder_mask(lengths, t)``, ``(B, T, T)`` bool."""
    name = "Exercise 3 (decoder mask)"
    require_function(name, attempt)
    cases = [(np.array([1, 3, 4]), 4), (np.array([2, 5]), 5), (np.array([3]), 3),
             (np.array([0, 6, 2, 4]), 6)]
    left = ("this batch is padded on the left: the real tokens are the last `length` "
            "positions (side='left')")
    check_exercise(
        name, _one_mask(name, attempt), decoder_mask, cases, crash_hint=_decoder_crash_hint,
        mistakes=[
            (_decoder_or, "a key must pass *both* masks: combine them with &, not |"),
            (_decoder_right_padding, left),
            (_decoder_right_padding_on_both, left),
            (_decoder_causal_only, "the padding is missing: queries still attend to "
                                   "padding keys"),
            (_decoder_padding_on_queries, "the padding hides *keys*, not queries: "
                                          "padding_mask(...) is (B, 1, S), one row of "
                                          "allowed keys shared by every query, so use it "
                                          "as it is, without moving its axes"),
            (_decoder_causal_unbatched, "that is the causal mask alone, (T, T): the padding "
                                        "is missing, and with it the batch axis; combine "
                                        "it with the padding mask (B, 1, T) by &"),
            (_decoder_padding_inverted, "the padding mask is inverted: True marks a real "
                                        "token (may attend), so use padding_mask(...) as "
                                        "it is, without ~"),
            (_decoder_strict_causal, "every query must see itself: the causal part keeps "
                                     "the diagonal (key j <= query i)"),
            (_decoder_padding_only, "the causal part is missing: queries still see the "
                                    "future"),
            (_decoder_head_axis, "return (B, T, T), without an axis for heads: this "
                                 "attention has none, and where scores have one, "
                                 "(B, H, T, T), the caller adds it, mask[:, None]"),
            (_decoder_padding_alone, "that is the padding mask alone, (B, 1, T): the "
                                     "causal part is missing; combine it with "
                                     "causal_mask(t) by &, which also broadcasts the "
                                     "result to (B, T, T)"),
            (_decoder_upper, "the causal part is the upper triangle: each query would see "
                             "its future and not its past; keep the lower triangle, key "
                             "j <= query i"),
            (_decoder_one_ahead, "each query sees one key too many: the causal part allows "
                                 "key j when j <= query i, not j <= i + 1 (the next token "
                                 "is the one it must predict)"),
        ],
    )


def buggy_masked_attention(q, k, v, mask):
    """Masked attention with the mask in the wrong place."""
    scores = q @ np.swapaxes(k, -1, -2) / q.shape[-1] ** 0.5          # (..., T, S)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = weights / weights.sum(axis=-1, keepdims=True)
    weights = weights * mask                                          # the bug is here
    return weights @ v                                                # (..., T, Dv)


def fixed_masked_attention(q, k, v, mask):
    """Reference: the package's masked attention (empty rows give 0)."""
    return attention_forward(q, k, v, mask=mask)[0]


def _scores(q, k):
    return q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])      # (..., T, S)


def _softmax(scores):
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def _zero_empty_rows(weights, mask):
    empty = ~np.broadcast_to(mask, weights.shape).any(axis=-1, keepdims=True)
    return np.where(empty, 0.0, weights)


def _constant_replaced(q, k, v, mask):
    return _softmax(np.where(mask, _scores(q, k), -1e9)) @ v


def _constant_added(q, k, v, mask):
    return _softmax(_scores(q, k) + np.where(mask, 0.0, -1e4)) @ v


def _constant_replaced_empty_rows_zeroed(q, k, v, mask):
    weights = _softmax(np.where(mask, _scores(q, k), -1e9))
    return _zero_empty_rows(weights, mask) @ v


def _constant_added_empty_rows_zeroed(q, k, v, mask):
    weights = _softmax(_scores(q, k) + np.where(mask, 0.0, -1e4))
    return _zero_empty_rows(weights, mask) @ v


def _zeros_in_scores(q, k, v, mask):
    return _softmax(np.where(mask, _scores(q, k), 0.0)) @ v


def _zeros_in_scores_empty_rows_zeroed(q, k, v, mask):
    weights = _softmax(np.where(mask, _scores(q, k), 0.0))
    return _zero_empty_rows(weights, mask) @ v


def _renormalised_after_softmax(q, k, v, mask):
    weights = _softmax(_scores(q, k)) * mask
    total = weights.sum(axis=-1, keepdims=True)
    return weights / np.where(total > 0, total, 1.0) @ v


def _global_max(q, k, v, mask):
    scores = np.where(mask, _scores(q, k), -np.inf)
    weights = np.exp(scores - scores.max())
    total = weights.sum(axis=-1, keepdims=True)
    return weights / np.where(total > 0, total, 1.0) @ v


def _naive_softmax_nan_to_num(q, k, v, mask):
    weights = np.exp(np.where(mask, _scores(q, k), -np.inf))
    return np.nan_to_num(weights / weights.sum(axis=-1, keepdims=True)) @ v


def _polarity_reversed(q, k, v, mask):
    return attention_forward(q, k, v, mask=~mask)[0]


def _attention_without_scale(q, k, v, mask):
    return attention_forward(q * math.sqrt(q.shape[-1]), k, v, mask=mask)[0]


def _attention_scaled_by_dk(q, k, v, mask):
    return attention_forward(q / math.sqrt(q.shape[-1]), k, v, mask=mask)[0]


def _attention_scaled_by_sqrt_dv(q, k, v, mask):
    scale = math.sqrt(q.shape[-1] / v.shape[-1])
    return attention_forward(q * scale, k, v, mask=mask)[0]


def _attention_scaled_by_sqrt_s(q, k, v, mask):
    scale = math.sqrt(q.shape[-1] / k.shape[-2])
    return attention_forward(q * scale, k, v, mask=mask)[0]


def _softmax_over_queries(q, k, v, mask):
    scores = np.where(mask, _scores(q, k), -np.inf)                   # (..., T, S)
    return np.swapaxes(softmax_forward(np.swapaxes(scores, -1, -2))[0], -1, -2) @ v


def _mask_times_minus_inf(q, k, v, mask):
    """``scores + (1 - mask) * -inf``: 0 * -inf is NaN at every allowed key."""
    with np.errstate(invalid="ignore"):
        weights = _softmax(_scores(q, k) + (1 - mask) * -np.inf)
    return _zero_empty_rows(weights, mask) @ v


def _no_nan(name, attempt):
    """Wrap ``attempt`` so NaN gets a hint that says which rows and why."""
    def checked(q, k, v, mask):
        out = attempt(q, k, v, mask)
        if not isinstance(out, np.ndarray) or not np.isnan(out.astype(float)).any():
            return out                              # not an array: judged as such
        nan_rows = np.isnan(out.astype(float)).any(axis=-1)               # (..., T)
        if nan_rows.shape != _scores(q, k).shape[:-1]:
            return out                              # the wrong shape: judged as such
        row_masks = np.broadcast_to(mask, nan_rows.shape + mask.shape[-1:])   # (..., T, S)
        with np.errstate(invalid="ignore"):
            times_inf = np.isnan(_mask_times_minus_inf(q, k, v, mask)).any(axis=-1)
        # exp neither overflows nor underflows to 0/0 on scores this small, so
        # NaN in every row with keys is 0 * inf, not a softmax without its max
        ordinary = np.abs(_scores(q, k)).max() < 700
        if ordinary and np.array_equal(nan_rows & row_masks.any(axis=-1), times_inf):
            raise ExerciseError(
                name, "NaN in every row that has a key to attend to: 0 * inf is NaN, so "
                "(1 - mask) * -np.inf (or ~mask * -np.inf) puts NaN, not 0, on every "
                "allowed key. Put -inf in only where the mask is False: "
                "np.where(mask, scores, -np.inf)")
        if not row_masks[nan_rows].any():
            raise ExerciseError(
                name, "NaN in the rows with nothing to attend to: their scores are "
                "all -inf, and the softmax gives exp(-inf - (-inf)) or 0/0 = NaN there; "
                "give such rows weights of 0, so their output is 0")
        if row_masks[nan_rows].all():
            raise ExerciseError(
                name, "NaN in the rows where every key is allowed: the polarity is "
                "reversed (True = may attend, so the *False* scores become -inf)")
        if ordinary:
            raise ExerciseError(
                name, "NaN in rows that do have keys to attend to, though no score here "
                f"is beyond {np.abs(_scores(q, k)).max():.2g} in size, so exp neither "
                "overflows nor underflows: look for an operation that makes NaN out of "
                "infinities, 0 * inf (a mask multiplied by -inf), inf - inf or inf / inf")
        raise ExerciseError(
            name, "NaN in rows that do have keys to attend to, with scores as large "
            f"as {np.abs(_scores(q, k)).max():.0e}: subtract the row maximum before exp "
            "(or exp overflows, or underflows to 0/0), and mask the scores before the "
            "softmax instead of renormalising the weights after it (when a masked key "
            "dominates, every allowed weight is 0 and the row is 0/0)")
    return checked


def _one_output(name, attempt):
    """Wrap ``attempt`` so that extra outputs next to ``out`` get a hint.

    A pair ``(out, cache)`` from a forward function is left to
    :func:`check_exercise`, which names it.
    """
    def checked(q, k, v, mask):
        out = attempt(q, k, v, mask)
        if isinstance(out, tuple | list) and not any(hasattr(x, "_fields") for x in out):
            raise ExerciseError(
                name, f"your function returned {describe_value(out)}; return only the "
                "output, one array (..., T, Dv): the weights stay inside the function")
        return out
    return checked


def _dtype_kept(name, attempt):
    """Wrap ``attempt`` so that right values in the wrong dtype get a hint.

    The comparison has a tolerance, so float64 values pass where float32
    ones are expected; the package keeps float32 as float32, and so must
    the answer.
    """
    def checked(q, k, v, mask):
        out = attempt(q, k, v, mask)
        dtype = getattr(out, "dtype", None)
        if dtype is None or dtype == q.dtype:
            return out
        right = fixed_masked_attention(q, k, v, mask)
        if out.shape != right.shape or not np.allclose(out, right, rtol=1e-4, atol=1e-5):
            return out                                # wrong values: judged as such
        why = ("Do not convert the result: the inputs' dtype carries through the "
               "matmuls and the softmax by itself")
        if q.dtype == np.float32 and dtype == np.float64:
            why = ("NumPy turns float32 into float64 when it meets a float64 array or a "
                   "NumPy float64 scalar: np.sqrt(q.shape[-1]) is one, so divide by a Python "
                   "float (q.shape[-1] ** 0.5, or math.sqrt(q.shape[-1])); np.where(mask, 0.0, "
                   "-np.inf) is a float64 array, so put -np.inf straight into the scores, "
                   "np.where(mask, scores, -np.inf), where a Python float keeps float32")
        raise ExerciseError(
            name, f"the values are right, the dtype is not: for {q.dtype} inputs return "
            f"{q.dtype}, as the package's attention does, got {dtype}. {why}")
    return checked


def _masked_attention_cases(seed):
    """Hidden cases ``(q, k, v, mask)``.

    Cases 1-3 are ordinary; case 2 has rows with nothing to attend to.
    Case 4 has every score between 990 and 1010, so exp of a score
    overflows to inf (from exp(710) on, in float64) unless the row
    maximum is subtracted first; every row has keys. Case 5 has every
    score below -1e299, more negative than the "large negative"
    constants people write (-1e4, -1e9, -1e30 ...; only
    ``np.finfo(dtype).min`` is lower, and it is right for every finite
    score), so such a constant in place of -inf leaks weight to the
    masked keys, renormalising after the softmax divides 0 by 0, and a
    softmax without the row maximum underflows to 0 everywhere. Case 6 is
    float32, with ``T > S`` and a random ``(B, T, S)`` mask with empty
    rows.
    """
    rng = np.random.default_rng(seed)
    cases = []
    for lead, t, s, d_k, d_v, mask in [
        ((), 3, 4, 2, 5, causal_mask(3, 4)),
        ((2,), 4, 4, 3, 2, causal_mask(4) & padding_mask([2, 4], 4, side="left")),
        ((2, 3), 2, 5, 4, 3, rng.random((2, 3, 2, 5)) < 0.5),
    ]:
        cases.append((rng.normal(size=(*lead, t, d_k)), rng.normal(size=(*lead, s, d_k)),
                      rng.normal(size=(*lead, s, d_v)), mask))
    mask = causal_mask(3, 5) & padding_mask([5, 3], 5, side="left")     # (2, 3, 5)
    q = 1e150 * np.abs(rng.normal(size=(2, 3, 3)))        # q . k < 0 for every pair
    k = -1e150 * np.abs(rng.normal(size=(2, 5, 3)))
    cases.append((q, k, rng.normal(size=(2, 5, 4)), mask))
    mask = rng.random((2, 4, 3)) < 0.5                                  # (B, T, S)
    mask[0, 1] = False                                                  # an empty row
    q, k, v = (rng.normal(size=(2, n, d)) for n, d in ((4, 6), (3, 6), (3, 2)))
    cases.append((np.float32(3 * q), np.float32(3 * k), np.float32(v), mask))
    # drawn last, so that the cases after it are what they were before it
    # came: q = (a, x), k = (a, y), each score 1000 + x . y / sqrt(Dk)
    q, k = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 4, 3))
    q[..., 0] = k[..., 0] = math.sqrt(1000 * math.sqrt(3))      # a^2 / sqrt(Dk) = 1000
    cases.insert(3, (q, k, rng.normal(size=(2, 4, 2)), causal_mask(3, 4)))
    return cases


_ZEROS_HINT = ("a score of 0 is not a mask: exp(0) = 1, so a masked key whose score is 0 "
               "still gets as much weight as an allowed key with score 0 (\"masks put zeros "
               "in the scores\" is a common misreading: the zeros are in the *weights*, "
               "after the softmax); set the masked scores to -inf before the softmax")


def _attention_crash_hint(attempt):
    """A ``crash_hint`` for two crashes that batched inputs cause.

    ``k.T`` is named only when ``attempt`` uses ``.T`` or ``np.transpose``:
    a matmul of the batched cases can fail for other reasons (an axis
    counted from the front, a reshape of v).
    """
    transposes = bool(code_names(attempt) & {"T", "transpose"})

    def hint(error, args):
        q, k, _, mask = args
        text = str(error)
        if "matmul" in text and k.ndim > 2 and transposes:
            return (f"`k.T` reverses *every* axis, so k of shape {k.shape} became "
                    f"{k.shape[::-1]}; swap only the last two, the keys and their width: "
                    "np.swapaxes(k, -1, -2)")
        if isinstance(error, IndexError) and "boolean index did not match" in text:
            return (f"A boolean index must match the leading axes of the array it indexes, "
                    f"and this mask {mask.shape} only broadcasts to the scores "
                    f"{_scores(q, k).shape}; np.where broadcasts: np.where(mask, scores, "
                    "-np.inf), or np.where(empty_row, 0, out) with empty_row computed from "
                    "np.broadcast_to(mask, scores.shape)")
        return None
    return hint


def check_fixed_masked_attention(attempt):
    """Exercise 4: repair ``buggy_masked_attention(q, k, v, mask)``.

    Refuses an attempt that calls the package's ``attention_forward``
    (the reference, :func:`fixed_masked_attention`, is that call).
    """
    name = "Exercise 4 (fixed masked attention)"
    require_function(name, attempt)
    if attempt is not fixed_masked_attention and _calls_any(attempt, _PACKAGE_ATTENTION):
        raise ExerciseError(name, "write it with NumPy, not with the package's "
                                  "attention_forward: scores, mask, softmax, weighted sum")
    leak = ("a finite constant such as -1e9 or -1e4, put in place of the masked scores "
            "or added to them, fails when the real scores are more negative than it: in "
            "this hidden case every score is below -1e299, so masked keys at any constant "
            "above that (-1e9, -1e30, ...) outrank the real ones and take the weight; set "
            "the masked scores to -inf, which is below every score")
    scale = ("the mask is right, the scale is not: divide the scores by sqrt(Dk), the "
             "square root of the width of q and k, q.shape[-1] (not Dk itself, nor the root "
             "of Dv or of the number of keys)")
    check_exercise(
        name, _no_nan(name, _dtype_kept(name, _one_output(name, attempt))),
        fixed_masked_attention, _masked_attention_cases(_RNG_SEED),
        crash_hint=_attention_crash_hint(attempt),
        # On a case where several of these agree, the first wins: those that only
        # an attempt passing cases 1-4 can reach (case 5) come before the rest.
        mistakes=[
            (_constant_replaced_empty_rows_zeroed, leak),
            (_constant_added_empty_rows_zeroed, leak),
            (_zeros_in_scores, _ZEROS_HINT),
            (_zeros_in_scores_empty_rows_zeroed, _ZEROS_HINT),
            (_renormalised_after_softmax, "the row maximum took the masked keys into "
                                          "account: renormalising the weights after the "
                                          "softmax, or subtracting the maximum of all the "
                                          "scores before masking, both give exp(score - "
                                          "max) with a max that a masked key may hold; "
                                          "when that key's score is much larger, every "
                                          "allowed weight underflows to 0 and the row "
                                          "comes out all zeros. Mask the *scores* with "
                                          "-inf first, then take the row maximum of what "
                                          "is left"),
            (_global_max, "the maximum was taken over the whole array, not row by row: "
                          "here the rows' scores differ by up to 1e300, so exp(score - "
                          "overall max) underflows to 0 in every row but the one that holds "
                          "it; take "
                          "each row's own, max(axis=-1, keepdims=True)"),
            (_naive_softmax_nan_to_num, "np.nan_to_num hid the NaN, not the mistake: "
                                        "without the row maximum subtracted, exp "
                                        "overflowed to inf for scores as large as these "
                                        "(about 1000; exp(710) is already inf), inf / inf "
                                        "gave NaN, and nan_to_num made those weights 0, "
                                        "where scores [1000, 999] should give weights "
                                        "[0.731, 0.269]. Subtract the row maximum before "
                                        "exp: the softmax does not change, and the "
                                        "largest term becomes exp(0) = 1"),
            (_polarity_reversed, "the polarity is reversed: True = may attend, so the "
                                 "scores where the mask is *False* become -inf"),
            (buggy_masked_attention, "still masking after the softmax: the masked weights "
                                     "are 0 but the rows no longer sum to 1; set the masked "
                                     "*scores* to -inf before the softmax"),
            (_constant_replaced, "a finite constant such as -1e9 works in most rows, "
                                 "but a row with nothing to attend to becomes a plain "
                                 "average of all the values; use -inf, and give such "
                                 "rows zeros"),
            (_constant_added, "an added constant such as -1e4 shifts every score of a row "
                              "with nothing to attend to by the same amount, so that row "
                              "gets ordinary, unmasked attention; use -inf, and give such "
                              "rows zeros"),
            (_attention_without_scale, "the mask is right, the scale is missing: divide the "
                                       "scores by sqrt(Dk)"),
            (_attention_scaled_by_dk, scale),
            (_attention_scaled_by_sqrt_dv, scale),
            (_attention_scaled_by_sqrt_s, scale),
            (_softmax_over_queries, "the softmax ran over the queries, axis -2: each query's "
                                    "weights over its keys must sum to 1, so take the max "
                                    "and the sum over the keys, axis=-1"),
        ],
        rtol=1e-4, atol=1e-5,   # case 5 is float32
    )
