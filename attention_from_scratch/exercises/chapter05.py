"""Checkers for the exercises of Chapter 5, "Encoder vs decoder"."""

import numpy as np

from attention_from_scratch.core.layer_norm import layer_norm_backward, layer_norm_forward
from attention_from_scratch.core.multi_head import (
    init_multi_head_params,
    multi_head_attention_forward,
)
from attention_from_scratch.core.positional_encoding import sinusoidal_encoding
from attention_from_scratch.exercises import check_exercise
from attention_from_scratch.masks import causal_mask, padding_mask

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


def check_sinusoidal_encoding(attempt):
    """Exercise 1: ``sinusoidal_encoding(t, d) -> (T, D)``."""
    cases = [(3, 4), (5, 6), (9, 8), (1, 2), (4, 10)]
    check_exercise(
        "sinusoidal encoding", attempt, lambda t, d: sinusoidal_encoding(t, d), cases,
        mistakes=[
            (_sin_cos_swapped, "sine and cosine are swapped: PE[p, 2i] = sin, "
                               "PE[p, 2i+1] = cos"),
            (_exponent_without_two, "the exponent is 2i / D, where i counts pairs of "
                                    "columns; you used i / D"),
            (_exponent_per_column, "columns 2i and 2i+1 share one frequency, "
                                   "10000 ** (-2i / D); you gave every column its own"),
            (_sines_then_cosines, "interleave the pairs: the sine in column 2i, the cosine "
                                  "in column 2i+1 (some libraries put all sines first; "
                                  "the paper and this book interleave)"),
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


def _forgot_gamma(dout, x, gamma, eps):
    dx, _, _ = layer_norm_backward_reference(dout, x, np.ones_like(gamma), eps)
    _, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    return dx, dgamma, dbeta


def _averaged_over_positions(dout, x, gamma, eps):
    dx, dgamma, dbeta = layer_norm_backward_reference(dout, x, gamma, eps)
    n = x.size // x.shape[-1]
    return dx, dgamma / n, dbeta / n


def check_layer_norm_backward(attempt):
    """Exercise 2: ``my_layer_norm_backward(dout, x, gamma, eps) -> (dx, dgamma, dbeta)``."""
    rng = np.random.default_rng(_RNG_SEED)
    cases = []
    for shape in [(3, 5), (2, 3, 4), (4, 6)]:
        d = shape[-1]
        cases.append((rng.normal(size=shape), rng.normal(size=shape),
                      1.0 + 0.5 * rng.normal(size=d), 1e-5))
    check_exercise(
        "layer norm backward", attempt, layer_norm_backward_reference, cases,
        mistakes=[
            (_direct_path_only, "x also reaches the output through the mean and the "
                                "variance: subtract mean(dx_hat) and x_hat * "
                                "mean(dx_hat * x_hat) before scaling by 1/std"),
            (_no_variance_path, "the mean's path is there, the variance's is missing: "
                                "also subtract x_hat * mean(dx_hat * x_hat)"),
            (_forgot_gamma, "the gain scales the gradient on its way back: "
                            "dx_hat = dout * gamma"),
            (_averaged_over_positions, "dgamma and dbeta are shared by every position: "
                                       "sum their contributions, don't average them"),
        ],
        rtol=1e-8, atol=1e-10,
    )


# Exercise 3: the cross-attention call

def cross_attention_reference(h, memory, params, memory_lengths, n_heads):
    """Reference: queries from the decoder, keys and values from the source."""
    mask = padding_mask(memory_lengths, memory.shape[-2])            # (B, 1, S)
    out, _ = multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)
    return out


def _no_mask(h, memory, params, memory_lengths, n_heads):
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads)[0]


def _causal_too(h, memory, params, memory_lengths, n_heads):
    t, s = h.shape[-2], memory.shape[-2]
    mask = causal_mask(t, s) & padding_mask(memory_lengths, s)
    return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]


def _roles_swapped(h, memory, params, memory_lengths, n_heads):
    return multi_head_attention_forward(memory, h, params, n_heads=n_heads)[0]


def _self_attention(h, memory, params, memory_lengths, n_heads):
    return multi_head_attention_forward(h, h, params, n_heads=n_heads)[0]


def check_cross_attention(attempt):
    """Exercise 3: ``my_cross_attention(h, memory, params, memory_lengths, n_heads)``."""
    rng = np.random.default_rng(_RNG_SEED + 1)
    cases = []
    for b, t, s, d, n_heads, lengths in [(2, 3, 5, 4, 2, [3, 5]), (3, 2, 4, 6, 3, [4, 1, 2]),
                                         (1, 4, 6, 4, 1, [5])]:
        params = init_multi_head_params(d, rng=rng)
        params = {key: value + 0.5 * rng.normal(size=value.shape)
                  for key, value in params.items()}
        cases.append((rng.normal(size=(b, t, d)), rng.normal(size=(b, s, d)), params,
                      np.array(lengths), n_heads))
    check_exercise(
        "cross-attention", attempt, cross_attention_reference, cases,
        mistakes=[
            (_no_mask, "the source's padding is being read: pass "
                       "mask=padding_mask(memory_lengths, S)"),
            (_causal_too, "cross-attention is not causal: the whole source sentence is "
                          "known, so every target position may read all of it (mask only "
                          "the padding)"),
            (_roles_swapped, "queries come from the decoder (h), keys and values from the "
                             "encoder's output (memory): x_q = h, x_kv = memory"),
            (_self_attention, "that is self-attention on h; cross-attention takes its "
                              "keys and values from memory"),
        ],
        rtol=1e-8, atol=1e-10,
    )
