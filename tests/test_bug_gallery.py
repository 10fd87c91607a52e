"""A gallery of planted bugs, and the check of the book that catches each one.

Every ``bug`` below is a realistic mistake, written out as the short
function someone might have written, with the mistake in its docstring.
Read top to bottom, the file is a catalogue of what goes wrong in attention
code, and of which check finds it.

Each test substitutes one bug for the package's own function (pytest's
``monkeypatch``: no file changes, and the substitution ends with the test),
runs one of the book's checks, and asserts that the check rejects the
package with the bug in it. The same check first runs on the package as it
is and must pass, so the rejection is the bug's doing. The checks:

- **finite differences**: ``gradient_check`` of one pair, at one of
  ``verify``'s sizes (all different, or a coincidence such as ``T == S``);
- **steps == core**: the two mirrors' outputs and gradients agree;
- **property**: a fact the chapters prove about the result (weights sum to
  1, the future is invisible, the KV cache changes nothing ...);
- **checker self-test**: the gradient checker, and the exercise checkers,
  still reject a known-wrong answer;
- **exercise checker**: a learner's wrong answer gets a hint, not a pass.

The test id names the bug and the check that catches it.
"""

import contextlib
import io
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest

from attention_from_scratch import core
from attention_from_scratch.checking import gradcheck, verify
from attention_from_scratch.common import masks
from attention_from_scratch.common.params import init_encoder_params
from attention_from_scratch.common.tiles import tile_mask
from attention_from_scratch.core import attention as core_attention
from attention_from_scratch.core import encoder as core_encoder
from attention_from_scratch.core import feed_forward as core_feed_forward
from attention_from_scratch.core import flash_attention as core_flash
from attention_from_scratch.core import layer_norm as core_layer_norm
from attention_from_scratch.core import linear as core_linear
from attention_from_scratch.core import multi_head as core_multi_head
from attention_from_scratch.core import positional_encoding as core_positional
from attention_from_scratch.core import softmax as core_softmax
from attention_from_scratch.core.attention import AttentionCache
from attention_from_scratch.core.flash_attention import FlashAttentionCache
from attention_from_scratch.core.layer_norm import LayerNormCache
from attention_from_scratch.exercises import chapter00, chapter03, chapter04, chapter06
from attention_from_scratch.inference import decoding

# The package's own functions, kept before any substitution: the bugs that call
# the right version of what they replace, and the checks, use these.
gradient_check = gradcheck.gradient_check
check_exercise = chapter00.check_exercise
causal_mask = masks.causal_mask
padding_mask = masks.padding_mask
split_heads = core_multi_head.split_heads
merge_heads = core_multi_head.merge_heads
attention_forward = core_attention.attention_forward
softmax_forward = core_softmax.softmax_forward
layer_norm_backward = core_layer_norm.layer_norm_backward
flash_attention_forward = core_flash.flash_attention_forward
positional_encoding_forward = core_positional.positional_encoding_forward


# ---------------------------------------------------------------- the checks
# Each returns True when the package passes it.

def _case(label):
    return next(case for case in verify.CASES if case.label == label)


def _inputs(label, sizes):
    case = _case(label)
    size_dict = dict(verify.size_variants(case.sizes))[sizes]
    return case, *case.make_inputs(np.random.default_rng(0), size_dict)


def _sizes_name(sizes):
    return "all-different sizes" if sizes == "all different" else sizes


def finite_differences(label, sizes="all different", impl="core"):
    """Finite differences of one ``verify`` pair, at one of its size variants."""
    def check():
        case, inputs, kwargs = _inputs(label, sizes)
        forward, backward = verify.pair(impl, case)
        return gradient_check(forward, backward, inputs, kwargs=kwargs,
                              rng=np.random.default_rng(1)).passed
    check.__name__ = f"finite differences of {impl} {label} at {_sizes_name(sizes)}"
    return check


def steps_equal_core(label, sizes="all different"):
    """``steps`` and ``core`` agree: forward output and every gradient."""
    def check():
        case, inputs, kwargs = _inputs(label, sizes)
        results = []
        for impl in ("steps", "core"):
            forward, backward = verify.pair(impl, case)
            out, cache = forward(*inputs, **kwargs)
            dout = np.random.default_rng(2).normal(size=np.shape(out))
            results.append((out, backward(dout, cache)))
        (out_s, grads_s), (out_c, grads_c) = results
        return max(verify._mirror_difference(out_s, out_c),
                   verify._mirror_difference(grads_s, grads_c)) <= verify.MIRROR_TOLERANCE
    check.__name__ = f"steps == core for {label} at {_sizes_name(sizes)}"
    return check


def named(name):
    """Give a property check the name its test id shows."""
    def rename(check):
        check.__name__ = name
        return check
    return rename


def _rng():
    return np.random.default_rng(3)


@named("property: softmax of huge scores is finite and sums to 1")
def softmax_is_stable():
    with np.errstate(all="ignore"):
        y, _ = core_softmax.softmax_forward(np.array([[1000.0, 0.0, -1000.0], [800, 801, 0]]))
    return bool(np.isfinite(y).all() and np.allclose(y.sum(axis=-1), 1))


@named("property: masked attention weights sum to 1")
def masked_weights_sum_to_one():
    rng = _rng()
    q, k, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 6))
    _, cache = core_attention.attention_forward(q, k, v, mask=causal_mask(3, 5))
    return bool(np.allclose(cache.weights.sum(axis=-1), 1))


@named("property: a query sees itself and its past, never its future")
def causal_attention_hides_the_future():
    rng = _rng()
    t = 5
    q, k, v = rng.normal(size=(t, 3)), rng.normal(size=(t, 3)), rng.normal(size=(t, 4))
    out, _ = core_attention.attention_forward(q, k, v, mask=masks.causal_mask(t))
    sees_only_itself = np.allclose(out[0], v[0])
    for i in range(t - 1):
        k2, v2 = k.copy(), v.copy()
        k2[i + 1:] += 1.0
        v2[i + 1:] += 1.0
        out2, _ = core_attention.attention_forward(q, k2, v2, mask=masks.causal_mask(t))
        if not np.allclose(out2[:i + 1], out[:i + 1]):
            return False
    return bool(sees_only_itself)


@named("property: padding keys get no weight, every real key some")
def padding_keys_get_no_weight():
    rng = _rng()
    lengths, s = np.array([2, 5, 3]), 5
    q, k, v = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, s, 2)), rng.normal(size=(3, s, 3))
    for side in ("right", "left"):
        _, cache = core_attention.attention_forward(
            q, k, v, mask=masks.padding_mask(lengths, s, side=side))
        for b, n in enumerate(lengths):
            real = np.arange(s) < n if side == "right" else np.arange(s) >= s - n
            if not ((cache.weights[b][:, real] > 0).all()
                    and (cache.weights[b][:, ~real] == 0).all()):
                return False
    return True


@named("property: local attention equals attention with the sliding-window mask")
def local_attention_matches_the_window_mask():
    rng = _rng()
    t, s, window = 4, 7, 3
    q, k, v = rng.normal(size=(2, t, 3)), rng.normal(size=(2, s, 3)), rng.normal(size=(2, s, 5))
    local, _ = core.local_attention.local_attention_forward(q, k, v, window=window)
    full, _ = core_attention.attention_forward(q, k, v,
                                               mask=masks.sliding_window_mask(t, window, s))
    return bool(np.allclose(local, full))


def _decoder_stack(rng, d=4, n_layers=2):
    return [init_encoder_params(d, 6, rng=rng) for _ in range(n_layers)]


@named("property: decoding with the KV cache equals the full causal pass")
def kv_cache_changes_nothing():
    rng = _rng()
    layers = _decoder_stack(rng)
    x = rng.normal(size=(2, 6, 4))
    full = decoding.decoder_only_forward(x, layers, n_heads=2)
    rows, kv = [], None
    for new in (slice(0, 2), slice(2, 4), slice(4, 5), slice(5, 6)):   # a prompt, then more
        out, kv = decoding.decode_step(x[:, new], layers, kv, n_heads=2)
        rows.append(out)
    return bool(np.allclose(np.concatenate(rows, axis=1), full))


@named("property: generating with the cache gives the tokens of generating without")
def cached_generation_matches_uncached():
    rng = _rng()
    layers = _decoder_stack(rng, d=8)
    embeddings = rng.normal(size=(11, 8))
    prompt = rng.integers(0, 11, size=(3, 2))
    cached = decoding.generate(prompt, embeddings, layers, 6, n_heads=2, use_cache=True)
    again = decoding.generate(prompt, embeddings, layers, 6, n_heads=2, use_cache=False)
    return bool(np.array_equal(cached, again))


@named("property: flash attention equals attention")
def flash_equals_attention():
    rng = _rng()
    q, k, v = (rng.normal(size=(2, 5, 4)), 3 * rng.normal(size=(2, 7, 4)),
               rng.normal(size=(2, 7, 3)))
    flash, _ = core_flash.flash_attention_forward(q, k, v, block_size=2)
    return bool(np.allclose(flash, attention_forward(q, k, v)[0]))


@named("property: causal flash attention equals attention with causal_mask, T < S")
def flash_causal_equals_masked_attention():
    rng = _rng()
    q, k, v = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 7, 4)), \
        rng.normal(size=(2, 3, 7, 2))
    flash, _ = core_flash.flash_attention_forward(q, k, v, causal=True, block_size=2)
    return bool(np.allclose(flash, attention_forward(q, k, v, mask=causal_mask(5, 7))[0]))


def _linear_inputs(rng):
    return rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)


@named("checker self-test: gradient_check rejects a backward 0.1 % off")
def gradcheck_rejects_a_tenth_of_a_percent():
    def backward(dout, cache):
        dx, dw, db = core_linear.linear_backward(dout, cache)
        return dx, dw * 1.001, db
    rng = _rng()
    return not gradcheck.gradient_check(core_linear.linear_forward, backward,
                                        _linear_inputs(rng), rng=rng).passed


@named("checker self-test: gradient_check rejects what an all-ones dout cannot see")
def gradcheck_rejects_a_ones_blind_backward():
    def backward(dy, cache):        # Chapter 0's: forgets the leading factor y
        return dy - (dy * cache.y).sum(axis=-1, keepdims=True)
    rng = _rng()
    return not gradcheck.gradient_check(core_softmax.softmax_forward, backward,
                                        (rng.normal(size=(3, 4)),), rng=rng).passed


@named("checker self-test: gradient_check accepts a right backward")
def gradcheck_accepts_a_right_backward():
    case, inputs, kwargs = _inputs("attention", "all different")
    forward, backward = verify.pair("core", case)
    return gradcheck.gradient_check(forward, backward, inputs, kwargs=kwargs,
                                    rng=_rng()).passed


@named("checker self-test: gradient_check rejects a NaN gradient")
def gradcheck_rejects_nan():
    def backward(dout, cache):
        dx, dw, db = core_linear.linear_backward(dout, cache)
        dw[0, 0] = np.nan
        return dx, dw, db
    rng = _rng()
    return not gradcheck.gradient_check(core_linear.linear_forward, backward,
                                        _linear_inputs(rng), rng=rng).passed


@named("checker self-test: an exercise checker rejects a 0.1 % near miss")
def exercise_checker_rejects_a_near_miss():
    def near_miss(dout, x, w):
        dx, dw, db = chapter00.linear_backward_reference(dout, x, w)
        return dx, dw * 1.001, db
    return not exercise_accepts(chapter00.check_linear_backward, near_miss)


@named("checker self-test: verify's steps == core sees every gradient")
def mirror_sees_every_gradient():
    rng = _rng()
    out, grads = rng.normal(size=(2, 3)), [rng.normal(size=(3, 4)), rng.normal(size=4)]
    off = [grads[0], grads[1] * 1.001]      # only the last gradient differs
    return verify._mirror_difference((out, off), (out, grads)) > verify.MIRROR_TOLERANCE


def exercise_accepts(checker, attempt):
    """Whether ``checker`` passes ``attempt`` (its printed verdict is swallowed)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            checker(attempt)
    except AssertionError:
        return False
    return True


# ------------------------------------------------------------------ the bugs

def linear_backward_dw_transposed(dout, cache):
    """dw = dout^T x instead of x^T dout: right shape only for a square weight."""
    x, w = cache
    dout_rows, x_rows = dout.reshape(-1, w.shape[1]), x.reshape(-1, w.shape[0])
    return dout @ w.T, dout_rows.T @ x_rows, dout_rows.sum(axis=0)


def linear_backward_db_averaged(dout, cache):
    """db is the mean of dout over positions: the bias serves every position, so it sums."""
    x, w = cache
    dout_rows, x_rows = dout.reshape(-1, w.shape[1]), x.reshape(-1, w.shape[0])
    return dout @ w.T, x_rows.T @ dout_rows, dout_rows.mean(axis=0)


def softmax_backward_diagonal_only(dy, cache):
    """Keeps only the diagonal y_i (1 - y_i) of the Jacobian, as if outputs were independent."""
    return cache.y * (1 - cache.y) * dy


def softmax_backward_without_y(dy, cache):
    """dx = dy - <dy, y>: the closed form without its leading factor y."""
    return dy - (dy * cache.y).sum(axis=cache.axis, keepdims=True)


def softmax_forward_without_row_max(x, *, axis=-1):
    """exp(x) / sum exp(x) without subtracting the row maximum: overflows at scores ~ 710."""
    e = np.exp(x)
    y = e / e.sum(axis=axis, keepdims=True)
    return y, core_softmax.SoftmaxCache(y, axis)


def _attention_from_scores(q, k, v, scores, mask, scale):
    """Softmax, weighted sum and the core cache, from scores a bug computed."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights, _ = softmax_forward(scores)
    out = weights @ v
    return out, AttentionCache(q, k, v, weights, out, scale)


def attention_forward_unscaled(q, k, v, *, mask=None):
    """Forgets the 1/sqrt(Dk) in the forward; the backward still applies it."""
    scores = q @ np.swapaxes(k, -1, -2)
    return _attention_from_scores(q, k, v, scores, mask, 1 / np.sqrt(q.shape[-1]))


def attention_forward_scaled_by_dv(q, k, v, *, mask=None):
    """Scales by 1/sqrt(Dv), the value width: the same thing only when Dk == Dv."""
    scale = 1 / np.sqrt(v.shape[-1])
    return _attention_from_scores(q, k, v, q @ np.swapaxes(k, -1, -2) * scale, mask, scale)


def attention_forward_mask_after_softmax(q, k, v, *, mask=None):
    """Zeroes masked weights after the softmax, so the allowed ones no longer sum to 1."""
    scale = 1 / np.sqrt(q.shape[-1])
    weights, _ = softmax_forward(q @ np.swapaxes(k, -1, -2) * scale)
    if mask is not None:
        weights = weights * mask
    out = weights @ v
    return out, AttentionCache(q, k, v, weights, out, scale)


def _attention_backward_with(dout, cache, *, dv, rowsum, dk_scale=True):
    """The attention backward, given dv and the softmax row term a bug computed."""
    q, k, v, weights, out, scale = cache
    dscores = weights * (dout @ np.swapaxes(v, -1, -2) - rowsum)
    dk = np.swapaxes(dscores, -1, -2) @ q
    return dscores @ k * scale, dk * scale if dk_scale else dk, dv


def attention_backward_dv_not_transposed(dout, cache):
    """dv = weights @ dout instead of weights^T @ dout: runs only when T == S."""
    rowsum = (dout * cache.out).sum(axis=-1, keepdims=True)
    return _attention_backward_with(dout, cache, dv=cache.weights @ dout, rowsum=rowsum)


def attention_backward_rowsum_over_queries(dout, cache):
    """The softmax's row term rowsum(dweights * weights) summed over queries, not keys."""
    dv = np.swapaxes(cache.weights, -1, -2) @ dout
    dweights = dout @ np.swapaxes(cache.v, -1, -2)
    rowsum = (dweights * cache.weights).sum(axis=-2, keepdims=True)
    return _attention_backward_with(dout, cache, dv=dv, rowsum=rowsum)


def attention_backward_dk_unscaled(dout, cache):
    """Applies the 1/sqrt(Dk) to dq but forgets it in dk."""
    dv = np.swapaxes(cache.weights, -1, -2) @ dout
    rowsum = (dout * cache.out).sum(axis=-1, keepdims=True)
    return _attention_backward_with(dout, cache, dv=dv, rowsum=rowsum, dk_scale=False)


def scores_backward_dk_not_transposed(dscores, cache):
    """dk = dscores @ q instead of dscores^T @ q: runs only when T == S."""
    q, k, scale = cache
    return dscores @ k * scale, dscores @ q * scale


def scaled_query_params_by_model_width(p, d_head):
    """Scales the queries by 1/sqrt(D), the model width, not 1/sqrt(Dh) of a head."""
    scale = 1.0 / np.sqrt(p["w_q"].shape[0])
    return p["w_q"] * scale, p["b_q"] * scale, scale


def split_heads_straight_reshape(x, n_heads):
    """Reshapes (T, D) straight to (H, T, Dh): each 'head' mixes positions."""
    *lead, t, d = x.shape
    return x.reshape(*lead, n_heads, t, d // n_heads)


def merge_heads_straight_reshape(heads):
    """Reshapes (H, T, Dh) straight to (T, D) without moving H next to Dh."""
    *lead, h, t, d_head = heads.shape
    return heads.reshape(*lead, t, h * d_head)


def projection_backward_db_averaged(dy, x, w):
    """The projections' bias gradients averaged over positions instead of summed."""
    dy = dy.reshape(-1, w.shape[1])
    dw = x.reshape(-1, x.shape[-1]).T @ dy
    return (dy @ w.T).reshape(x.shape), dw, dy.mean(axis=0)


def layer_norm_forward_unbiased_variance(x, gamma, beta, *, eps=1e-5):
    """Divides the variance by D - 1 (np.var(ddof=1)); layer norm uses D."""
    centered = x - x.mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(centered.var(axis=-1, ddof=1, keepdims=True) + eps)
    x_hat = centered * rstd
    return x_hat * gamma + beta, LayerNormCache(x_hat, rstd, gamma)


def layer_norm_backward_without_mean_term(dout, cache):
    """Drops the mean of dx_hat: forgets that every x moves the mean."""
    x_hat, rstd, gamma = cache
    d = x_hat.shape[-1]
    dx_hat = dout * gamma
    dx = rstd * (dx_hat - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, (dout * x_hat).reshape(-1, d).sum(axis=0), dout.reshape(-1, d).sum(axis=0)


def layer_norm_backward_dgamma_without_x_hat(dout, cache):
    """dgamma = sum of dout, as if gamma were a bias: it multiplies x_hat."""
    dx, _, dbeta = layer_norm_backward(dout, cache)
    return dx, dbeta.copy(), dbeta


def sinusoidal_sin_cos_swapped(t, d, *, offset=0, base=10000.0):
    """Cosines in the even columns and sines in the odd ones."""
    angles = np.outer(np.arange(offset, offset + t), base ** (-np.arange(0, d, 2) / d))
    pe = np.empty((t, d))
    pe[:, 0::2], pe[:, 1::2] = np.cos(angles), np.sin(angles)
    return pe


def sinusoidal_frequency_per_column(t, d, *, offset=0, base=10000.0):
    """A frequency for every column, base^(-j/D), instead of one per sine/cosine pair."""
    angles = np.outer(np.arange(offset, offset + t), base ** (-np.arange(d) / d))
    pe = angles.copy()
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    return pe


def relu_backward_lets_everything_through(dout, cache):
    """Passes dout unchanged, as if ReLU were the identity."""
    return dout


def gelu_backward_without_cubic_term(dout, cache):
    """Differentiates tanh(c (x + a x^3)) as if the inner term were c x."""
    x = cache.x
    c = np.sqrt(2 / np.pi)
    tanh_u = np.tanh(c * (x + 0.044715 * x ** 3))
    return dout * (0.5 * (1 + tanh_u) + 0.5 * x * (1 - tanh_u ** 2) * c)


def residual_backward_drops_the_skip_path(dout, cache, *, sublayer_backward):
    """Post-norm u + sublayer(u): returns the sub-layer's gradient for u and forgets u's own."""
    dsum, dgamma, dbeta = layer_norm_backward(dout, cache.ln)
    du_sublayer, *dsublayer = sublayer_backward(dsum, cache.sublayer)
    return du_sublayer, dgamma, dbeta, tuple(dsublayer)


def causal_mask_strict(t, s=None):
    """Key j allowed when j < position: no query may attend to itself."""
    s = t if s is None else s
    return np.arange(s)[None, :] < np.arange(s - t, s)[:, None]


def causal_mask_top_left(t, s=None):
    """The first T rows of the (S, S) mask: right for S == T, wrong for new tokens."""
    s = t if s is None else s
    return causal_mask(s)[:t]


def padding_mask_inverted(lengths, s, *, side="right"):
    """True marks padding (the polarity of PyTorch's key_padding_mask), not 'may attend'."""
    return ~padding_mask(lengths, s, side=side)


def padding_mask_left_off_by_one(lengths, s, *, side="right"):
    """Left padding counted from s - length + 1: the first real token is masked out."""
    lengths = np.asarray(lengths)
    positions = np.arange(s)[None, :]
    if side == "right":
        return (positions < lengths[:, None])[:, None, :]
    return (positions > s - lengths[:, None])[:, None, :]


def sliding_window_one_too_wide(t, window, s=None):
    """Each query sees window keys before itself, plus itself: window + 1 in all."""
    s = t if s is None else s
    offset = np.arange(s)[None, :] - np.arange(s - t, s)[:, None]
    return (offset <= 0) & (offset >= -window)


def cached_attention_new_keys_first(x_new, params, layer_kv=None, *, n_heads):
    """Puts the new keys and values before the cached ones: positions come out shuffled."""
    def project(name):
        return split_heads(x_new @ params[f"w_{name}"] + params[f"b_{name}"], n_heads=n_heads)
    q, k, v = project("q"), project("k"), project("v")
    if layer_kv is not None:
        k = np.concatenate([k, layer_kv.k], axis=-2)
        v = np.concatenate([v, layer_kv.v], axis=-2)
    heads, _ = attention_forward(q, k, v, mask=causal_mask(q.shape[-2], k.shape[-2]))
    return merge_heads(heads) @ params["w_o"] + params["b_o"], _layer_kv(k, v)


def cached_attention_without_mask(x_new, params, layer_kv=None, *, n_heads):
    """No mask: right for one new token, but a prompt's tokens then see their future."""
    def project(name):
        return split_heads(x_new @ params[f"w_{name}"] + params[f"b_{name}"], n_heads=n_heads)
    q, k, v = project("q"), project("k"), project("v")
    if layer_kv is not None:
        k = np.concatenate([layer_kv.k, k], axis=-2)
        v = np.concatenate([layer_kv.v, v], axis=-2)
    heads, _ = attention_forward(q, k, v)
    return merge_heads(heads) @ params["w_o"] + params["b_o"], _layer_kv(k, v)


def _layer_kv(k, v):
    return decoding.LayerKV(k, v)


def positional_encoding_offset_ignored(x, *, offset=0, base=10000.0):
    """Encodes every decoding step's new token as position 0."""
    return positional_encoding_forward(x, base=base)


def flash_forward_without_rescale(q, k, v, *, mask=None, block_size=128):
    """When a block raises the row maximum, forgets to rescale the running sum and output."""
    scale = 1 / np.sqrt(q.shape[-1])
    row_max = np.full(q.shape[:-1], -np.inf)
    row_sum, acc = np.zeros(q.shape[:-1]), np.zeros(q.shape[:-1] + v.shape[-1:])
    for start in range(0, k.shape[-2], block_size):
        cols = slice(start, start + block_size)
        scores = q @ np.swapaxes(k[..., cols, :], -1, -2) * scale
        row_max = np.maximum(row_max, scores.max(axis=-1))
        p = np.exp(scores - row_max[..., None])
        row_sum = row_sum + p.sum(axis=-1)                # missing: * exp(old_max - new_max)
        acc = acc + p @ v[..., cols, :]                   # missing: the same rescale
    out = acc / row_sum[..., None]
    lse = row_max + np.log(row_sum)
    return out, FlashAttentionCache(q, k, v, out, lse, mask, block_size, scale, False, None)


def flash_forward_lse_without_max(q, k, v, *, mask=None, block_size=128):
    """Stores log(row_sum) as the log-sum-exp, forgetting the row maximum it was taken
    relative to: the output is right, the recomputed weights in the backward are not."""
    out, cache = flash_attention_forward(q, k, v, mask=mask, block_size=block_size)
    scores = q @ np.swapaxes(k, -1, -2) * cache.scale
    row_max = scores.max(axis=-1)
    return out, cache._replace(lse=cache.lse - row_max)


def _flash_backward_with(dout, cache, delta):
    """The flash backward, untiled, given the row term a bug computed."""
    q, k, v, lse, scale = cache.q, cache.k, cache.v, cache.lse, cache.scale
    weights = np.exp(q @ np.swapaxes(k, -1, -2) * scale - lse[..., None])   # (..., T, S)
    dscores = weights * (dout @ np.swapaxes(v, -1, -2) - delta)
    return (dscores @ k * scale, np.swapaxes(dscores, -1, -2) @ q * scale,
            np.swapaxes(weights, -1, -2) @ dout)


def flash_backward_delta_over_positions(dout, cache):
    """rowsum(dout * out) summed over positions T instead of over Dv: runs only when T == Dv."""
    return _flash_backward_with(dout, cache, (dout * cache.out).sum(axis=-2)[..., None])


def flash_backward_without_delta(dout, cache):
    """Leaves out the softmax's row term: dscores = weights * dweights."""
    return _flash_backward_with(dout, cache, 0.0)


def tile_mask_causal_top_left(rows, cols, t, s, *, causal=False, key_lengths=None,
                              mask=None):
    """Builds each causal tile as j <= i, forgetting that when S > T the queries are the
    last T positions (j <= i + S - T): right only when T == S."""
    allowed = tile_mask(rows, cols, t, s, key_lengths=key_lengths, mask=mask)
    if not causal:
        return allowed
    top_left = np.arange(cols.start, cols.stop) <= np.arange(rows.start, rows.stop)[:, None]
    return top_left if allowed is None else allowed & top_left


def gradient_check_loosened(forward, backward, inputs, **options):
    """The gradient checker with its tolerance loosened to 1e-2."""
    return gradient_check(forward, backward, inputs, **{"tolerance": 1e-2, **options})


class _Ones:
    """A generator whose 'normal' draws are all ones."""

    def normal(self, size):
        return np.ones(size)


def gradient_check_with_ones_dout(forward, backward, inputs, *, rng, **options):
    """The gradient checker with the upstream gradient all ones: L = sum(out)."""
    return gradient_check(forward, backward, inputs, rng=_Ones(), **options)


def forward_differences(loss, array, eps):
    """(L(x + eps) - L(x)) / eps: an O(eps) error, 1e-5 of the gradient, not O(eps^2)."""
    base = loss()
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        original = array[idx]
        array[idx] = original + eps
        grad[idx] = (loss() - base) / eps
        array[idx] = original
    return grad


def central_differences_not_restoring(loss, array, eps):
    """Central differences that leave each entry at x - eps: later entries see a moved input."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        original = array[idx]
        array[idx] = original + eps
        plus = loss()
        array[idx] = original - eps
        grad[idx] = (plus - loss()) / (2 * eps)
    return grad


def compare_ignoring_nan(name, analytic, numerical, scale_floor):
    """Takes the largest error with nanmax, so a NaN entry counts as no error at all."""
    analytic = np.asarray(analytic)
    error = np.abs(analytic - numerical)
    scale = max(np.nanmax(np.abs(numerical)), np.nanmax(np.abs(analytic)), scale_floor)
    relative = float(np.nanmax(error) / scale)
    return gradcheck.InputReport(name, numerical.shape, float(np.nanmax(error)), relative,
                                 (), "")


def mirror_difference_first_array_only(a, b):
    """Compares only the first array of each side: the output, or dx, never dw or db."""
    first_a, first_b = gradcheck.flat_arrays(a)[0], gradcheck.flat_arrays(b)[0]
    return float(np.max(np.abs(first_a - first_b) / (1.0 + np.abs(first_a)), initial=0.0))


def check_exercise_loosened(name, attempt, reference, cases, **options):
    """An exercise checker comparing with rtol 0.1: a 10 % wrong answer passes."""
    return check_exercise(name, attempt, reference, cases, **{**options, "rtol": 0.1})


# ---------------------------------------------------- the gallery, bug by bug

class Planted(NamedTuple):
    bug: Callable
    module: object        # where the package's function lives (or a dict)
    name: str             # its name there (or the dict key)
    check: Callable       # -> True when the package passes


GALLERY = [
    # forward/backward pairs: finite differences
    Planted(linear_backward_dw_transposed, core_linear, "linear_backward",
            finite_differences("linear", "D == F")),
    Planted(linear_backward_db_averaged, core_linear, "linear_backward",
            finite_differences("linear")),
    Planted(softmax_backward_diagonal_only, core_softmax, "softmax_backward",
            finite_differences("softmax (axis=-1)")),
    Planted(softmax_backward_without_y, core_softmax, "softmax_backward",
            finite_differences("softmax (axis=1)")),
    Planted(softmax_forward_without_row_max, core_softmax, "softmax_forward",
            softmax_is_stable),
    Planted(attention_forward_unscaled, core_attention, "attention_forward",
            finite_differences("attention")),
    Planted(attention_forward_scaled_by_dv, core_attention, "attention_forward",
            steps_equal_core("attention")),
    Planted(attention_forward_mask_after_softmax, core_attention, "attention_forward",
            masked_weights_sum_to_one),
    Planted(attention_backward_dv_not_transposed, core_attention, "attention_backward",
            finite_differences("attention", "T == S")),
    Planted(attention_backward_rowsum_over_queries, core_attention, "attention_backward",
            finite_differences("attention, random mask")),
    Planted(attention_backward_dk_unscaled, core_attention, "attention_backward",
            finite_differences("attention, causal T<S")),
    Planted(scores_backward_dk_not_transposed, core_attention, "scores_backward",
            finite_differences("attention scores", "T == S")),
    Planted(scaled_query_params_by_model_width, core_multi_head, "_scaled_query_params",
            steps_equal_core("multi-head attention")),
    Planted(split_heads_straight_reshape, core_multi_head, "split_heads",
            steps_equal_core("split heads")),
    Planted(merge_heads_straight_reshape, core_multi_head, "merge_heads",
            finite_differences("merge heads")),
    Planted(projection_backward_db_averaged, core_multi_head, "_projection_backward",
            finite_differences("multi-head self, causal")),
    Planted(layer_norm_forward_unbiased_variance, core_layer_norm, "layer_norm_forward",
            finite_differences("layer norm")),
    Planted(layer_norm_backward_without_mean_term, core_layer_norm, "layer_norm_backward",
            finite_differences("layer norm")),
    Planted(layer_norm_backward_dgamma_without_x_hat, core_layer_norm, "layer_norm_backward",
            finite_differences("layer norm", "T == D")),
    Planted(sinusoidal_sin_cos_swapped, core_positional, "sinusoidal_encoding",
            steps_equal_core("positional encoding")),
    Planted(sinusoidal_frequency_per_column, core_positional, "sinusoidal_encoding",
            steps_equal_core("positional encoding", "T == D")),
    Planted(relu_backward_lets_everything_through, core_feed_forward.ACTIVATIONS, "relu",
            finite_differences("feed-forward (ReLU)", "D == F")),
    Planted(gelu_backward_without_cubic_term, core_feed_forward.ACTIVATIONS, "gelu",
            finite_differences("feed-forward (GELU)")),
    # the blocks call the unchecked bodies of their children: plant the bug there
    Planted(residual_backward_drops_the_skip_path, core_encoder, "_residual_backward",
            finite_differences("encoder block (post-norm)")),
    # masks: properties
    Planted(causal_mask_strict, masks, "causal_mask", causal_attention_hides_the_future),
    Planted(causal_mask_top_left, decoding, "causal_mask", kv_cache_changes_nothing),
    Planted(padding_mask_inverted, masks, "padding_mask", padding_keys_get_no_weight),
    Planted(padding_mask_left_off_by_one, masks, "padding_mask", padding_keys_get_no_weight),
    Planted(sliding_window_one_too_wide, masks, "sliding_window_mask",
            local_attention_matches_the_window_mask),
    # decoding with a KV cache: properties
    Planted(cached_attention_new_keys_first, decoding, "_cached_attention",
            kv_cache_changes_nothing),
    Planted(cached_attention_without_mask, decoding, "_cached_attention",
            kv_cache_changes_nothing),
    Planted(positional_encoding_offset_ignored, decoding, "positional_encoding_forward",
            cached_generation_matches_uncached),
    # flash attention
    Planted(flash_forward_without_rescale, core_flash, "flash_attention_forward",
            flash_equals_attention),
    Planted(flash_forward_lse_without_max, core_flash, "flash_attention_forward",
            finite_differences("flash attention, block 3")),
    Planted(flash_backward_delta_over_positions, core_flash, "flash_attention_backward",
            finite_differences("flash attention, block 3", "T == Dv")),
    Planted(flash_backward_without_delta, core_flash, "flash_attention_backward",
            finite_differences("flash attention, mask")),
    Planted(tile_mask_causal_top_left, core_flash, "tile_mask",
            flash_causal_equals_masked_attention),
    # the checkers themselves
    Planted(gradient_check_loosened, gradcheck, "gradient_check",
            gradcheck_rejects_a_tenth_of_a_percent),
    Planted(gradient_check_with_ones_dout, gradcheck, "gradient_check",
            gradcheck_rejects_a_ones_blind_backward),
    Planted(forward_differences, gradcheck, "_central_differences",
            gradcheck_accepts_a_right_backward),
    Planted(central_differences_not_restoring, gradcheck, "_central_differences",
            gradcheck_accepts_a_right_backward),
    Planted(compare_ignoring_nan, gradcheck, "_compare", gradcheck_rejects_nan),
    Planted(mirror_difference_first_array_only, verify, "_mirror_difference",
            mirror_sees_every_gradient),
    Planted(check_exercise_loosened, chapter00, "check_exercise",
            exercise_checker_rejects_a_near_miss),
]

def _install(monkeypatch, planted):
    if isinstance(planted.module, dict):      # an activation: (forward, backward)
        forward, _ = planted.module[planted.name]
        monkeypatch.setitem(planted.module, planted.name, (forward, planted.bug))
    else:
        monkeypatch.setattr(planted.module, planted.name, planted.bug)


@pytest.mark.parametrize("planted", GALLERY,
                         ids=[f"{p.bug.__name__} -- caught by {p.check.__name__}"
                              for p in GALLERY])
def test_the_book_catches_the_planted_bug(planted, monkeypatch):
    assert planted.check(), "the check must pass on the package as it is"
    _install(monkeypatch, planted)
    assert not planted.check(), f"{planted.bug.__name__} slipped through"


# ------------------------------------------------- a learner's wrong answers

def my_causal_mask(t, s):
    """A right answer, by comparisons."""
    return np.arange(s)[None, :] <= np.arange(s - t, s)[:, None]


def causal_mask_from_zero(t, s):
    """Query i at position i: right when S == T, wrong for the last T of S positions."""
    return np.arange(s)[None, :] <= np.arange(t)[:, None]


def my_split_heads(x, n_heads):
    """A right answer: (T, D) -> (T, H, Dh) -> (H, T, Dh)."""
    *lead, t, d = x.shape
    return np.swapaxes(x.reshape(*lead, t, n_heads, d // n_heads), -2, -3)


def split_heads_without_swap(x, n_heads):
    """Stops at (T, H, Dh): the head axis must come before the positions."""
    *lead, t, d = x.shape
    return x.reshape(*lead, t, n_heads, d // n_heads)


def masked_attention_with_minus_1e9(q, k, v, mask):
    """Masked scores set to -1e9: a row with nothing to attend to averages every value."""
    scores = np.where(mask, q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), -1e9)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True) @ v


def online_update_without_rescale(row_max, row_sum, scores):
    """Adds the new block's exponentials to a sum taken relative to the old maximum."""
    new_max = np.maximum(row_max, scores.max(axis=1))
    return new_max, row_sum + np.exp(scores - new_max[:, None]).sum(axis=1)


def linear_backward_dw_averaged(dout, x, w):
    """dw and db averaged over positions instead of summed."""
    dx, dw, db = chapter00.linear_backward_reference(dout, x, w)
    n = x.size // x.shape[-1]
    return dx, dw / n, db / n


LEARNER_MISTAKES = [
    (causal_mask_from_zero, chapter03.check_causal_mask, my_causal_mask),
    (split_heads_without_swap, chapter04.check_split_heads, my_split_heads),
    (masked_attention_with_minus_1e9, chapter03.check_fixed_masked_attention,
     chapter03.fixed_masked_attention),
    (online_update_without_rescale, chapter06.check_online_softmax_update,
     chapter06.online_softmax_update),
    (linear_backward_dw_averaged, chapter00.check_linear_backward,
     chapter00.linear_backward_reference),
]


@pytest.mark.parametrize("mistake, checker, right", LEARNER_MISTAKES,
                         ids=[f"{m.__name__} -- caught by exercise checker {c.__name__}"
                              for m, c, _ in LEARNER_MISTAKES])
def test_the_exercise_checker_catches_the_learners_mistake(mistake, checker, right):
    assert exercise_accepts(checker, right)
    assert not exercise_accepts(checker, mistake)


def test_the_gallery_is_a_catalogue():
    bugs = [p.bug for p in GALLERY] + [m for m, _, _ in LEARNER_MISTAKES]
    assert len(bugs) >= 30
    assert len({b.__name__ for b in bugs}) == len(bugs)
    for bug in bugs:
        assert bug.__doc__ and len(bug.__doc__.split()) >= 5, bug.__name__
