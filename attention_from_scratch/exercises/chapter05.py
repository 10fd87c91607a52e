"""Checkers for the exercises of Chapter 5, "Encoder vs decoder"."""

import re

import numpy as np

from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.common.params import init_multi_head_params
from attention_from_scratch.core.layer_norm import layer_norm_backward, layer_norm_forward
from attention_from_scratch.core.multi_head import multi_head_attention_forward
from attention_from_scratch.core.positional_encoding import sinusoidal_encoding
from attention_from_scratch.exercises import (
    ExerciseError,
    check_exercise,
    inputs_kept,
    require_function,
)
from attention_from_scratch.exercises.chapter04 import RESIDUAL_DOUT, leading_axes_hint

_RNG_SEED = 2029


# Exercise 1: sinusoidal positional encodings

def _angles(t, d, pair_exponent):
    positions = np.arange(t)[:, None]                       # (T, 1)
    return positions / 10000.0 ** pair_exponent             # (T, D/2) or (T, D)


def _sin_cos_swapped(t, d):
    angles = _angles(t, d, np.arange(0, d, 2) / d)
    pe = np.empty((t, d))
    pe[:, 0::2], pe[:, 1::2] = np.cos(angles), np.sin(angles)
    return pe


def _exponent_without_two(t, d):
    angles = _angles(t, d, np.arange(d // 2) / d)
    pe = np.empty((t, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
    return pe


def _exponent_per_column(t, d):
    angles = _angles(t, d, np.arange(d) / d)                # column j uses j / D
    pe = np.where(np.arange(d) % 2 == 0, np.sin(angles), np.cos(angles))
    return pe


def _sines_then_cosines(t, d):
    angles = _angles(t, d, np.arange(0, d, 2) / d)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)


def _positions_from_one(t, d):
    return sinusoidal_encoding(t, d, offset=1)


def _loop_over_columns_times_two(t, d):
    pe = np.empty((t, d))
    for i in range(0, d, 2):                                # i is already the column 2k ...
        angle = np.arange(t) / 10000.0 ** (2 * i / d)       # ... and is doubled again
        pe[:, i], pe[:, i + 1] = np.sin(angle), np.cos(angle)
    return pe


def _base_1000(t, d):
    return sinusoidal_encoding(t, d, base=1000.0)


def _exponent_over_d_minus_one(t, d):
    angles = _angles(t, d, np.arange(0, d, 2) / (d - 1))
    pe = np.empty((t, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
    return pe


def _multiplied_not_divided(t, d):
    angles = np.arange(t)[:, None] * 10000.0 ** (np.arange(0, d, 2) / d)   # (T, D/2)
    pe = np.empty((t, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
    return pe


def _integer_division(t, d):
    angles = _angles(t, d, np.arange(0, d, 2) // d)         # 2i // D is 0 for every pair
    pe = np.empty((t, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
    return pe


def _column_exponent_doubled(t, d):
    angles = _angles(t, d, 2 * np.arange(d) / d)            # column j uses 2j / D
    return np.where(np.arange(d) % 2 == 0, np.sin(angles), np.cos(angles))


def _one_position_too_many(t, d):
    return sinusoidal_encoding(t + 1, d)                    # range(t + 1): T + 1 rows


def _features_by_positions(t, d):
    return sinusoidal_encoding(t, d).T                      # (D, T)


def _one_array(name, attempt):
    """Wrap ``attempt`` so that a list of rows counts, and anything ragged gets a hint."""
    def checked(*args):
        result = attempt(*args)
        if isinstance(result, (list, tuple)):
            try:
                result = np.asarray(result, dtype=np.float64)
            except (TypeError, ValueError):
                raise ExerciseError(name, "return one array of shape (T, D); got a "
                                          f"{type(result).__name__} that does not make one "
                                          "(rows of different lengths?)") from None
        return result
    return checked


def check_sinusoidal_encoding(attempt):
    """Exercise 1: ``sinusoidal_encoding(t, d) -> (T, D)``."""
    cases = [(3, 4), (5, 6), (9, 8), (1, 2), (4, 10)]
    name = "Exercise 1 (sinusoidal encoding)"
    require_function(name, attempt)
    check_exercise(
        name, _one_array(name, attempt), lambda t, d: sinusoidal_encoding(t, d), cases,
        mistakes=[
            (_loop_over_columns_times_two, "with `for i in range(0, d, 2)`, i is already "
                                           "the column 2i of the formula: the exponent is "
                                           "then i / D, not 2 * i / D (or loop over "
                                           "range(d // 2) and keep 2 * i / D)"),
            (_exponent_over_d_minus_one, "the exponent is 2i / D, not 2i / (D - 1): divide "
                                         "by the width D itself"),
            (_base_1000, "the base is 10000, not 1000: the angle is p / 10000 ** (2i / D), "
                         "so the slowest pair of columns has a wavelength of about "
                         "2 pi x 10000 positions"),
            (_sin_cos_swapped, "sine and cosine are swapped: PE[p, 2i] = sin, "
                               "PE[p, 2i+1] = cos"),
            (_exponent_without_two, "the exponent is 2i / D, where i counts pairs of "
                                    "columns; you used i / D"),
            (_exponent_per_column, "columns 2i and 2i+1 share one frequency, "
                                   "10000 ** (-2i / D); you gave every column its own"),
            (_column_exponent_doubled, "columns 2i and 2i+1 share one frequency, "
                                       "10000 ** (-2i / D), where i counts pairs; you "
                                       "gave column j its own, 10000 ** (-2j / D)"),
            (_multiplied_not_divided, "the angle is p / 10000 ** (2i / D), i.e. p times "
                                      "10000 ** (-2i / D): you multiplied by 10000 ** "
                                      "(2i / D), so the frequencies grow with i instead "
                                      "of shrinking"),
            (_integer_division, "your exponent is 0 for every pair, so every pair "
                                "turns at the same speed: // is integer division, and "
                                "2 * i // d is 0 while 2i < D; use 2 * i / d"),
            (_sines_then_cosines, "interleave the pairs: the sine in column 2i, the cosine "
                                  "in column 2i+1 (some libraries put all sines first; "
                                  "the paper and this book interleave)"),
            (_one_position_too_many, "one row per position 0 .. T - 1, so T rows: "
                                     "range(t), not range(t + 1)"),
            (_features_by_positions, "rows are positions and columns are features: "
                                     "return shape (T, D), not (D, T)"),
            (_positions_from_one, "positions start at 0: the first row is "
                                  "[0, 1, 0, 1, ...]"),
        ],
        rtol=1e-10, atol=1e-12,
    )


# Exercise 2: the layer-norm backward

def layer_norm_backward_reference(dout, x, gamma, eps):
    """Reference: ``(dx, dgamma, dbeta)`` of ``layer_norm_forward(x, gamma, beta)``."""
    _, cache = layer_norm_forward(x, gamma, np.zeros_like(gamma), eps=eps)
    return layer_norm_backward(dout, cache)


def _normalised(x, eps):
    mean = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    return (x - mean) * rstd, rstd


def _direct_path_only(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    _, rstd = _normalised(x, eps)
    return dout * gamma * rstd, dgamma, dbeta


def _no_variance_path(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    _, rstd = _normalised(x, eps)
    dx_hat = dout * gamma
    return rstd * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)), dgamma, dbeta


def _no_mean_path(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    x_hat, rstd = _normalised(x, eps)
    dx_hat = dout * gamma
    return rstd * (dx_hat - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True)), \
        dgamma, dbeta


def _eps_ignored(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    x_hat, rstd = _normalised(x, 0.0)
    dx_hat = dout * gamma
    dx = rstd * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                 - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, (dout * x_hat).sum(axis=tuple(range(x.ndim - 1))), dbeta


def _forgot_gamma(dout, x, gamma, eps):
    dx, _, _ = layer_norm_backward_reference(dout, x, np.ones_like(gamma), eps)
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    return dx, dgamma, dbeta


def _averaged_over_positions(dout, x, gamma, eps):
    dx, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    n = x.size // x.shape[-1]
    return dx, dgamma / n, dbeta / n


def _variance_sign_flipped(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    x_hat, rstd = _normalised(x, eps)
    dx_hat = dout * gamma
    dx = rstd * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                 + x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def _sums_not_means(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    x_hat, rstd = _normalised(x, eps)
    dx_hat = dout * gamma
    dx = rstd * (dx_hat - dx_hat.sum(axis=-1, keepdims=True)
                 - x_hat * (dx_hat * x_hat).sum(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def _backward_with_rstd(dout, x, gamma, rstd, *, centred=True):
    """The layer-norm backward with a wrong ``1 / std`` in place of the right
    one (or, with ``centred=False``, ``x_hat`` without the mean taken off)."""
    x_hat = ((x - x.mean(axis=-1, keepdims=True)) if centred else x) * rstd
    dx_hat = dout * gamma
    dx = rstd * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                 - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dx, (dout * x_hat).sum(axis=lead), dout.sum(axis=lead)


def _unbiased_variance(dout, x, gamma, eps):
    rstd = 1.0 / np.sqrt(x.var(axis=-1, ddof=1, keepdims=True) + eps)
    return _backward_with_rstd(dout, x, gamma, rstd)


def _dgamma_with_x(dout, x, gamma, eps):
    dx, _, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    return dx, (dout * x).sum(axis=tuple(range(x.ndim - 1))), dbeta


def _no_final_rstd(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    x_hat, _ = _normalised(x, eps)
    dx_hat = dout * gamma
    dx = (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
          - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def _eps_outside_sqrt(dout, x, gamma, eps):
    rstd = 1.0 / (np.sqrt(x.var(axis=-1, keepdims=True)) + eps)
    return _backward_with_rstd(dout, x, gamma, rstd)


def _gamma_on_first_term_only(dout, x, gamma, eps):
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    x_hat, rstd = _normalised(x, eps)
    dx = rstd * (dout * gamma - dout.mean(axis=-1, keepdims=True)
                 - x_hat * (dout * x_hat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def _eps_assumed(dout, x, gamma, eps):
    return layer_norm_backward_reference(dout, x, gamma, 1e-5)


def _dgamma_dbeta_swapped(dout, x, gamma, eps):
    dx, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    return dx, dbeta, dgamma


def _dgamma_without_x_hat(dout, x, gamma, eps):
    dx, _, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    return dx, dbeta.copy(), dbeta


def _variance_from_squares(dout, x, gamma, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = (x * x).mean(axis=-1, keepdims=True) - mean ** 2     # cancels when |mean| >> std
    return _backward_with_rstd(dout, x, gamma, 1.0 / np.sqrt(var + eps))


def _statistics_over_axis_0(means_axis):
    """Planted mistake: the mean and variance over axis 0 (batch norm's), and
    the backward's two means over ``means_axis``."""
    def wrong(dout, x, gamma, eps):
        mean = x.mean(axis=0, keepdims=True)
        rstd = 1.0 / np.sqrt(x.var(axis=0, keepdims=True) + eps)
        x_hat = (x - mean) * rstd
        dx_hat = dout * gamma
        dx = rstd * (dx_hat - dx_hat.mean(axis=means_axis, keepdims=True)
                     - x_hat * (dx_hat * x_hat).mean(axis=means_axis, keepdims=True))
        lead = tuple(range(x.ndim - 1))
        return dx, (dout * x_hat).sum(axis=lead), dout.sum(axis=lead)
    return wrong


def _x_hat_not_centred(dout, x, gamma, eps):
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    return _backward_with_rstd(dout, x, gamma, rstd, centred=False)


def _summed_over_two_axes_at_most(dout, x, gamma, eps):
    dx, _, _ = layer_norm_backward_reference(dout, x, gamma, eps)
    x_hat, _ = _normalised(x, eps)
    dgamma, dbeta = (dout * x_hat).sum(axis=0), dout.sum(axis=0)
    if dgamma.ndim == 2:                                       # one more leading axis
        dgamma, dbeta = dgamma.sum(axis=0), dbeta.sum(axis=0)
    return dx, dgamma, dbeta


def _layer_norm_cases(seed):
    """Hidden cases ``(dout, x, gamma, eps)``.

    One, two and three leading axes; the third case's eps is not the
    usual default, so that eps must be read, not assumed. The last has
    x = 1e5 + N(0, 1) in every row: the variance as mean(x**2) -
    mean(x)**2 subtracts two numbers near 1e10 whose round-off, about
    1e-6, is far above this check's tolerance, while mean((x - mean)**2)
    keeps it to about 1e-16.
    """
    rng = np.random.default_rng(seed)
    cases = []
    for shape, eps in [((3, 5), 1e-5), ((2, 3, 4), 1e-5), ((4, 6), 1e-2),
                       ((2, 4, 3, 6), 1e-5), ((5, 7), 1e-5)]:
        d = shape[-1]
        cases.append((rng.normal(size=shape), rng.normal(size=shape),
                      1.0 + 0.5 * rng.normal(size=d), eps))
    dout, x, gamma, eps = cases[-1]
    cases[-1] = (dout, 1e5 + x, gamma, eps)
    return cases


def check_layer_norm_backward(attempt):
    """Exercise 2: ``my_layer_norm_backward(dout, x, gamma, eps) -> (dx, dgamma, dbeta)``."""
    name = "Exercise 2 (layer norm backward)"
    require_function(name, attempt)           # before the wrapper, callable anyway
    check_exercise(
        name, inputs_kept(name, attempt, layer_norm_backward_reference, rtol=1e-8,
                          atol=1e-10, fix="dx_hat = dout * gamma, not dout *= gamma",
                          why=RESIDUAL_DOUT),
        layer_norm_backward_reference, _layer_norm_cases(_RNG_SEED),
        mistakes=[
            (_direct_path_only, "x also reaches the output through the mean and the "
                                "variance: subtract mean(dx_hat) and x_hat * "
                                "mean(dx_hat * x_hat) before scaling by 1/std"),
            (_no_variance_path, "the mean's path is there, the variance's is missing: "
                                "also subtract x_hat * mean(dx_hat * x_hat)"),
            (_no_mean_path, "the variance's path is there, the mean's is missing: also "
                            "subtract mean(dx_hat), because every x_j moves the mean"),
            (_eps_ignored, "eps is missing: the forward divided by sqrt(var + eps), so the "
                           "backward's 1/std is 1 / sqrt(var + eps) too, the same number"),
            (_forgot_gamma, "the gain scales the gradient on its way back: "
                            "dx_hat = dout * gamma"),
            (_averaged_over_positions, "dgamma and dbeta are shared by every position: "
                                       "sum their contributions, don't average them"),
            (_variance_sign_flipped, "the variance's term has the wrong sign: it is "
                                     "subtracted, dx = r (dx_hat - mean(dx_hat) - x_hat * "
                                     "mean(dx_hat * x_hat)), because d rstd / d var = "
                                     "-rstd**3 / 2 is negative"),
            (_sums_not_means, "the mean and the variance average over the D features, so "
                              "their paths bring means, not sums: mean(dx_hat) and "
                              "mean(dx_hat * x_hat), a factor 1/D each"),
            (_unbiased_variance, "layer norm uses the biased variance, mean((x - mean)**2), "
                                 "np.var's default ddof=0; you divided by D - 1 (ddof=1)"),
            (_dgamma_without_x_hat, "gamma multiplies x_hat, so dgamma sums dout * x_hat "
                                    "over the positions; the sum of dout alone is dbeta"),
            (_eps_assumed, "use the eps you are given: your answer is the one for "
                           "eps = 1e-5 whatever eps is (1e-5 is only the forward's "
                           "default)"),
            (_dgamma_with_x, "gamma multiplies the normalised x_hat, not x: dgamma sums "
                             "dout * x_hat over the positions"),
            (_dgamma_dbeta_swapped, "return them in the order (dx, dgamma, dbeta): your "
                                    "dgamma and dbeta are each other's"),
            (_no_final_rstd, "the brackets are right, the scale is missing: x_hat = (x - "
                             "mean) * r, so dx = r (dx_hat - mean(dx_hat) - x_hat * "
                             "mean(dx_hat * x_hat)), r = 1 / sqrt(var + eps)"),
            (_eps_outside_sqrt, "eps goes inside the square root, as in the forward: "
                                "r = 1 / sqrt(var + eps), not 1 / (sqrt(var) + eps)"),
            (_gamma_on_first_term_only, "every term works on dx_hat = dout * gamma: the two "
                                        "means are mean(dx_hat) and mean(dx_hat * x_hat), "
                                        "with gamma inside, not mean(dout)"),
            *((_statistics_over_axis_0(axis), "layer norm normalises each position over its "
                                              "own D features: the mean, the variance and "
                                              "the two means of the backward run over the "
                                              "last axis, axis=-1; over axis 0, across "
                                              "positions, it is batch norm")
              for axis in (0, -1)),
            (_x_hat_not_centred, "x_hat = (x - mean) * r: subtract the mean before "
                                 "scaling (without it, it is not the x_hat the forward "
                                 "used)"),
            (_summed_over_two_axes_at_most, "dgamma and dbeta sum over every leading axis, "
                                            "however many there are (here three): "
                                            "axis=tuple(range(x.ndim - 1)), or reshape to "
                                            "(-1, D) and sum over axis 0"),
            (_variance_from_squares, "the variance as mean(x**2) - mean(x)**2 is exact on "
                                     "paper, not in floating point when the mean is large "
                                     "next to the spread: this case's x is 1e5 + N(0, 1), "
                                     "so two numbers near 1e10 are subtracted and about "
                                     "1e-6 of round-off is left in a variance near 1; "
                                     "compute mean((x - mean)**2), as the forward does, "
                                     "or np.var"),
        ],
        rtol=1e-8, atol=1e-10, output_names=("dx", "dgamma", "dbeta"),
        crash_hint=leading_axes_hint,
    )


# Exercise 3: the cross-attention call

def cross_attention_reference(h, memory, params, memory_lengths, n_heads):
    """Reference: queries from the decoder, keys and values from the source."""
    # one mask per sequence: (B, 1, 1, S), the head axis said (B = H here)
    mask = padding_mask(memory_lengths, memory.shape[-2])[:, None]   # (B, 1, 1, S)
    out, _ = multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)
    return out


def _no_mask(h, memory, params, memory_lengths, n_heads):
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads)[0]


def _causal_too(h, memory, params, memory_lengths, n_heads):
    t, s = h.shape[-2], memory.shape[-2]
    mask = causal_mask(t, s) & padding_mask(memory_lengths, s)[:, None]
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]


def _roles_swapped(h, memory, params, memory_lengths, n_heads):
    return multi_head_attention_forward(memory, h, params, n_heads=n_heads)[0]


def _self_attention(h, memory, params, memory_lengths, n_heads):
    return multi_head_attention_forward(h, h, params, n_heads=n_heads)[0]


def _mask_inverted(h, memory, params, memory_lengths, n_heads):
    mask = ~padding_mask(memory_lengths, memory.shape[-2])[:, None]  # True = padding
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]


def _roles_swapped_masked(h, memory, params, memory_lengths, n_heads):
    # when T != S the (B, 1, 1, S) mask does not fit the (B, H, S, T) scores: the
    # call raises, and the checker takes that as "not this mistake"
    mask = padding_mask(memory_lengths, memory.shape[-2])[:, None]
    return multi_head_attention_forward(memory, h, params, n_heads=n_heads, mask=mask)[0]


def _padding_on_queries(h, memory, params, memory_lengths, n_heads):
    # (B, 1, S, 1): it fits the (B, H, T, S) scores only when T = S, and masks query rows
    mask = np.swapaxes(padding_mask(memory_lengths, memory.shape[-2]), -1, -2)[:, None]
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]


def _causal_not_padding(h, memory, params, memory_lengths, n_heads):
    mask = causal_mask(h.shape[-2], memory.shape[-2])                # (T, S)
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]


def _sequences_on_the_head_axis(h, memory, params, memory_lengths, n_heads):
    # [None] makes (1, B, 1, S): when B = H it reads as one mask per head
    mask = padding_mask(memory_lengths, memory.shape[-2])[None]
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]


def _finite_additive_mask(constant):
    """Planted mistake: PyTorch's float ``attn_mask`` habit, ``constant`` added
    to the padding's scores (here through the layer's ``bias``).

    A source of length 0 then has all its scores shifted alike: by -1e4 it
    gets unmasked attention; by -1e9 the same, up to round-off of about
    1e-7; by -1e30 the shift swamps the scores, and it gets a plain
    average of its padding.
    """
    def wrong(h, memory, params, memory_lengths, n_heads):
        keep = padding_mask(memory_lengths, memory.shape[-2])[:, None]   # (B, 1, 1, S)
        return multi_head_attention_forward(h, memory, params, n_heads=n_heads,
                                            bias=np.where(keep, 0.0, constant))[0]
    return wrong


def _one_padding_key_too_many(h, memory, params, memory_lengths, n_heads):
    s = memory.shape[-2]
    keep = np.arange(s) <= np.asarray(memory_lengths)[:, None]       # (B, S): <=, not <
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads,
                                        mask=keep[:, None, None])[0]


def _padding_on_the_left(h, memory, params, memory_lengths, n_heads):
    mask = padding_mask(memory_lengths, memory.shape[-2], side="left")[:, None]
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]


def _output_only(name, attempt):
    """Wrap ``attempt`` so that returning ``(out, cache)`` gets its own hint."""
    def checked(*args):
        result = attempt(*args)
        if isinstance(result, tuple):
            raise ExerciseError(name, "return only the output: "
                                      "multi_head_attention_forward returns (out, cache), so "
                                      "write out, _ = ... and return out")
        return result
    return checked


def _mask_length_given(error):
    """The key count a learner's padding mask was built for, or None.

    ``padding_mask``'s own ``s`` when it raised (a length above it), else
    the last axis of the mask that attention refused.
    """
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is padding_mask.__code__:
            return tb.tb_frame.f_locals.get("s")
        tb = tb.tb_next
    found = re.search(r"mask must broadcast to the scores' shape .* got shape \(([\d, ]+)\)",
                      str(error))
    return int(found.group(1).split(",")[-1]) if found else None


def _mask_length_hint(error, args):
    """The hint for a padding mask over the wrong number of keys, or None."""
    h, memory, _, memory_lengths, _ = args
    (b, t, d), s = h.shape, memory.shape[-2]
    given = _mask_length_given(error)
    if not isinstance(error, ValueError) or given is None or given == s:
        return None
    sizes = [(t, "T, the decoder's length (h.shape[1])"), (b, "B, the batch size"),
             (d, "D, the model width")]
    which = " and ".join(label for size, label in sizes if size == given)
    return (f"The padding mask covers the keys, and cross-attention's keys are the "
            f"memory's S = {s} positions: build it with padding_mask(memory_lengths, "
            f"memory.shape[1]). Yours was built for {given} keys"
            + (f", which is {which}" if which else ""))


def _empty_source_hint(error, args):
    """The hint for a memory sliced to a source's length, when one is 0."""
    if isinstance(error, ValueError) and "at least one position" in str(error):
        return ("A source may be empty (length 0): sliced to its length, its memory has no "
                "position left. Keep the whole memory and mask the padding instead, "
                "mask=padding_mask(memory_lengths, S)[:, None]; a sequence with nothing to "
                "read then gets zero head outputs (Chapter 3)")
    return None


def _cross_attention_crash_hint(error, args):
    return _empty_source_hint(error, args) or _mask_length_hint(error, args)


def check_cross_attention(attempt):
    """Exercise 3: ``my_cross_attention(h, memory, params, memory_lengths, n_heads)``."""
    rng = np.random.default_rng(_RNG_SEED + 1)
    cases = []
    # The first case has T = S, so that swapped roles with the padding mask still run
    # and reach their hint; the others have T != S. A length of S - 2 in the first
    # tells a mask with <= (one padding key let in) from no mask at all. The last
    # has an empty source (length 0): a finite additive mask such as -1e9 lets that
    # sequence read its padding, where the boolean mask leaves it nothing to read;
    # its B, T, S, D, H and Dh all differ.
    for b, t, s, d, n_heads, lengths in [(2, 4, 4, 6, 2, [2, 4]), (2, 3, 5, 4, 2, [3, 5]),
                                         (3, 2, 4, 6, 3, [4, 1, 2]), (1, 4, 6, 4, 1, [5]),
                                         (2, 5, 3, 24, 4, [2, 0])]:
        params = init_multi_head_params(d, rng=rng)
        params = {key: value + 0.5 * rng.normal(size=value.shape)
                  for key, value in params.items()}
        cases.append((rng.normal(size=(b, t, d)), rng.normal(size=(b, s, d)), params,
                      np.array(lengths), n_heads))
    name = "Exercise 3 (cross-attention)"
    require_function(name, attempt)
    check_exercise(
        name, _output_only(name, attempt), cross_attention_reference, cases,
        mistakes=[
            (_one_padding_key_too_many, "off by one: a source of length L has its real "
                                        "tokens at positions 0 .. L - 1, so the mask is "
                                        "np.arange(S) < L, not <=, which lets the first "
                                        "padding key in; padding_mask(memory_lengths, S) "
                                        "builds it"),
            (_padding_on_the_left, "the padding comes after each sentence's real tokens "
                                   "(right padding): padding_mask's default, not "
                                   "side='left'"),
            *((_finite_additive_mask(constant), "a finite additive mask (a bias such as "
                                                "-1e9 on the padding's scores, as "
                                                "PyTorch's float attn_mask) only looks "
                                                "right: a source of length 0 has all its "
                                                "keys shifted alike, so it reads its "
                                                "padding as if nothing were masked (or, "
                                                "by a constant as large as -1e30, as a "
                                                "plain average), where the boolean mask "
                                                "leaves it nothing to read (zero head "
                                                "outputs, Chapter 3); pass "
                                                "mask=padding_mask(memory_lengths, S)"
                                                "[:, None]")
              for constant in (-1e4, -1e9, -1e30)),
            (_mask_inverted, "the mask is inverted: in this book True means 'may attend' "
                             "(Chapter 3), so pass padding_mask(memory_lengths, S) with "
                             "no ~; PyTorch's key_padding_mask uses the opposite polarity "
                             "(True = padding)"),
            (_roles_swapped_masked, "queries come from the decoder (h), keys and values "
                                    "from the encoder's output (memory): x_q = h, "
                                    "x_kv = memory; the padding mask then covers the "
                                    "memory's S keys"),
            (_padding_on_queries, "the padding is on the keys (the memory's S positions), "
                                  "not on the queries: padding_mask(memory_lengths, S) is "
                                  "(B, 1, S), one row shared by every query (with [:, None] "
                                  "for the heads); transposed to (B, S, 1) it blanks out "
                                  "query rows instead"),
            (_no_mask, "the source's padding is being read: pass "
                       "mask=padding_mask(memory_lengths, S)[:, None]"),
            (_causal_not_padding, "cross-attention is not causal (the whole source is "
                                  "known), and its mask is the source's padding: "
                                  "padding_mask(memory_lengths, S)[:, None], not "
                                  "causal_mask(T, S)"),
            (_sequences_on_the_head_axis, "the mask's batch axis landed on the heads: "
                                          "padding_mask(...)[None] is (1, B, 1, S), which "
                                          "reads as one mask per head when B = H; add "
                                          "the head axis after the batch, [:, None], "
                                          "for (B, 1, 1, S)"),
            (_causal_too, "cross-attention is not causal: the whole source sentence is "
                          "known, so every target position may read all of it (mask only "
                          "the padding)"),
            (_roles_swapped, "queries come from the decoder (h), keys and values from the "
                             "encoder's output (memory): x_q = h, x_kv = memory"),
            (_self_attention, "that is self-attention on h; cross-attention takes its "
                              "keys and values from memory"),
        ],
        rtol=1e-8, atol=1e-10, crash_hint=_cross_attention_crash_hint,
    )
