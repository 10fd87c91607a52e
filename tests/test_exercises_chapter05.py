"""Chapter 5's checkers accept the right answers and reject planted wrong ones."""

import math

import numpy as np
import pytest

from attention_from_scratch.common.masks import padding_mask
from attention_from_scratch.core.multi_head import multi_head_attention_forward
from attention_from_scratch.exercises import chapter05 as ex


def test_sinusoidal_encoding(capsys):
    def written_out(t, d):          # a learner's loop version
        pe = np.zeros((t, d))
        for p in range(t):
            for i in range(d // 2):
                pe[p, 2 * i] = np.sin(p / 10000 ** (2 * i / d))
                pe[p, 2 * i + 1] = np.cos(p / 10000 ** (2 * i / d))
        return pe

    ex.check_sinusoidal_encoding(written_out)
    assert "✓ Exercise 1 (sinusoidal encoding)" in capsys.readouterr().out

    def swapped(t, d):
        return written_out(t, d)[:, [j + 1 if j % 2 == 0 else j - 1 for j in range(d)]]

    def halves(t, d):
        pe = written_out(t, d)
        return np.concatenate([pe[:, 0::2], pe[:, 1::2]], axis=-1)

    def no_two(t, d):
        angles = np.arange(t)[:, None] / 10000 ** (np.arange(d // 2) / d)
        return np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(t, d)

    with pytest.raises(AssertionError, match="sine and cosine are swapped"):
        ex.check_sinusoidal_encoding(swapped)
    with pytest.raises(AssertionError, match="interleave the pairs"):
        ex.check_sinusoidal_encoding(halves)
    with pytest.raises(AssertionError, match="the exponent is 2i / D"):
        ex.check_sinusoidal_encoding(no_two)
    with pytest.raises(AssertionError, match="positions start at 0"):
        ex.check_sinusoidal_encoding(lambda t, d: written_out(t + 1, d)[1:])

    def column_loop(t, d):          # the loop steps over columns, then doubles i again
        pe = np.zeros((t, d))
        for p in range(t):
            for i in range(0, d, 2):
                pe[p, i] = np.sin(p / 10000 ** (2 * i / d))
                pe[p, i + 1] = np.cos(p / 10000 ** (2 * i / d))
        return pe

    def d_minus_one(t, d):
        omega = 10000.0 ** (-np.arange(0, d, 2) / (d - 1))
        angles = np.arange(t)[:, None] * omega
        return np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(t, d)

    with pytest.raises(AssertionError, match=r"`for i in range\(0, d, 2\)`, i is already "
                                             "the column 2i"):
        ex.check_sinusoidal_encoding(column_loop)
    with pytest.raises(AssertionError, match=r"not 2i / \(D - 1\)"):
        ex.check_sinusoidal_encoding(d_minus_one)


def test_sinusoidal_encoding_as_a_list(capsys):
    def as_rows(t, d):              # a list of rows, built with math: accepted
        return [[math.sin(p / 10000 ** (i / d)) if i % 2 == 0
                 else math.cos(p / 10000 ** ((i - 1) / d)) for i in range(d)]
                for p in range(t)]

    ex.check_sinusoidal_encoding(as_rows)
    assert "✓ Exercise 1 (sinusoidal encoding)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"return one array of shape \(T, D\); "
                                             "got a list"):
        ex.check_sinusoidal_encoding(lambda t, d: [np.zeros(d)] * (t - 1) + [np.zeros(d + 1)])
    with pytest.raises(AssertionError, match=r"return shape \(T, D\), not \(D, T\)"):
        ex.check_sinusoidal_encoding(lambda t, d: np.array(as_rows(t, d)).T)
    with pytest.raises(AssertionError, match=r"range\(t\), not range\(t \+ 1\)"):
        ex.check_sinusoidal_encoding(lambda t, d: np.array(as_rows(t + 1, d)))


def test_layer_norm_backward(capsys):
    def closed_form(dout, x, gamma, eps):
        x_hat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
        rstd = 1 / np.sqrt(x.var(-1, keepdims=True) + eps)
        dx_hat = dout * gamma
        dx = rstd * (dx_hat - dx_hat.mean(-1, keepdims=True)
                     - x_hat * (dx_hat * x_hat).mean(-1, keepdims=True))
        axes = tuple(range(x.ndim - 1))
        return dx, (dout * x_hat).sum(axis=axes), dout.sum(axis=axes)

    ex.check_layer_norm_backward(closed_form)
    assert "✓ Exercise 2 (layer norm backward)" in capsys.readouterr().out

    def direct_only(dout, x, gamma, eps):
        _, dgamma, dbeta = closed_form(dout, x, gamma, eps)
        return dout * gamma / np.sqrt(x.var(-1, keepdims=True) + eps), dgamma, dbeta

    def no_gamma(dout, x, gamma, eps):
        dx, _, _ = closed_form(dout, x, np.ones_like(gamma), eps)
        return (dx, *closed_form(dout, x, gamma, eps)[1:])

    def averaged(dout, x, gamma, eps):
        dx, dgamma, dbeta = closed_form(dout, x, gamma, eps)
        n = x.size // x.shape[-1]
        return dx, dgamma / n, dbeta / n

    with pytest.raises(AssertionError, match="through the mean and the variance"):
        ex.check_layer_norm_backward(direct_only)
    with pytest.raises(AssertionError, match="dx_hat = dout \\* gamma"):
        ex.check_layer_norm_backward(no_gamma)
    with pytest.raises(AssertionError, match="sum their contributions"):
        ex.check_layer_norm_backward(averaged)


def layer_norm_variant(*, sign=-1.0, reduce=np.mean, ddof=0, dgamma_with_x_hat=True):
    """A learner's closed form with one of the common slips switched on."""
    def backward(dout, x, gamma, eps):
        mean = x.mean(-1, keepdims=True)
        rstd = 1 / np.sqrt(x.var(-1, ddof=ddof, keepdims=True) + eps)
        x_hat = (x - mean) * rstd
        dx_hat = dout * gamma
        dx = rstd * (dx_hat - reduce(dx_hat, axis=-1, keepdims=True)
                     + sign * x_hat * reduce(dx_hat * x_hat, axis=-1, keepdims=True))
        axes = tuple(range(x.ndim - 1))
        dgamma = (dout * x_hat if dgamma_with_x_hat else dout).sum(axis=axes)
        return dx, dgamma, dout.sum(axis=axes)
    return backward


def test_layer_norm_backward_more_planted_mistakes(capsys):
    ex.check_layer_norm_backward(layer_norm_variant())
    assert "✓ Exercise 2 (layer norm backward)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="the variance's term has the wrong sign"):
        ex.check_layer_norm_backward(layer_norm_variant(sign=+1.0))
    with pytest.raises(AssertionError, match="bring means, not sums"):
        ex.check_layer_norm_backward(layer_norm_variant(reduce=np.sum))
    with pytest.raises(AssertionError, match=r"biased variance.*ddof=1"):
        ex.check_layer_norm_backward(layer_norm_variant(ddof=1))
    with pytest.raises(AssertionError, match=r"dgamma sums dout \* x_hat"):
        ex.check_layer_norm_backward(layer_norm_variant(dgamma_with_x_hat=False))


def test_cross_attention(capsys):
    def right(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, memory.shape[1])[:, None]
        return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]

    ex.check_cross_attention(right)
    assert "✓ Exercise 3 (cross-attention)" in capsys.readouterr().out

    def unmasked(h, memory, params, memory_lengths, n_heads):
        return multi_head_attention_forward(h, memory, params, n_heads=n_heads)[0]

    def swapped(h, memory, params, memory_lengths, n_heads):
        return multi_head_attention_forward(memory, h, params, n_heads=n_heads)[0]

    def causal(h, memory, params, memory_lengths, n_heads):
        from attention_from_scratch.common.masks import causal_mask
        t, s = h.shape[1], memory.shape[1]
        mask = causal_mask(t, s) & padding_mask(memory_lengths, s)[:, None]
        return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]

    with pytest.raises(AssertionError, match="padding is being read"):
        ex.check_cross_attention(unmasked)
    with pytest.raises(AssertionError, match="queries come from the decoder"):
        ex.check_cross_attention(swapped)
    with pytest.raises(AssertionError, match="cross-attention is not causal"):
        ex.check_cross_attention(causal)


def test_cross_attention_more_planted_mistakes():
    def inverted(h, memory, params, memory_lengths, n_heads):    # PyTorch's habit
        key_padding_mask = ~padding_mask(memory_lengths, memory.shape[1])[:, None]
        return multi_head_attention_forward(h, memory, params, n_heads=n_heads,
                                            mask=key_padding_mask)[0]

    def with_cache(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, memory.shape[1])[:, None]
        return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)

    def swapped_masked(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, memory.shape[1])[:, None]
        return multi_head_attention_forward(memory, h, params, n_heads=n_heads, mask=mask)[0]

    with pytest.raises(AssertionError, match=r"the mask is inverted.*\(Chapter 3\).*PyTorch"):
        ex.check_cross_attention(inverted)
    with pytest.raises(AssertionError, match=r"return only the output.*\(out, cache\)"):
        ex.check_cross_attention(with_cache)
    with pytest.raises(AssertionError, match="queries come from the decoder"):
        ex.check_cross_attention(swapped_masked)


def test_cross_attention_wrong_mask_length_reported_with_its_case():
    # a padding mask over the wrong axis runs while T = S, then fails clearly
    def wrong_axis(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, h.shape[1])[:, None]
        return multi_head_attention_forward(h, memory, params, n_heads=n_heads, mask=mask)[0]

    with pytest.raises(AssertionError, match="raised ValueError on case 2"):
        ex.check_cross_attention(wrong_axis)


def test_a_wrong_answer_names_each_argument_of_its_case():
    # float arrays by their shape, the params dict by its kind, the lengths and
    # the head count by their values
    with pytest.raises(AssertionError, match=r"wrong on case 1 \(arguments h of shape "
                                             r"\(2, 4, 6\), memory of shape \(2, 4, 6\), "
                                             r"params \(a dict\), memory_lengths=\[2, 4\], "
                                             r"n_heads=2\)"):
        ex.check_cross_attention(lambda h, memory, params, memory_lengths, n_heads: 0 * h)


@pytest.mark.parametrize("check", [ex.check_sinusoidal_encoding, ex.check_layer_norm_backward,
                                   ex.check_cross_attention])
def test_not_attempted(capsys, check):
    def stub(*args):
        raise NotImplementedError

    check(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_sinusoidal_encoding_exponent_slips():
    def loop(t, d, angle):
        pe = np.zeros((t, d))
        for p in range(t):
            for i in range(d // 2):
                pe[p, 2 * i], pe[p, 2 * i + 1] = np.sin(angle(p, i, d)), np.cos(angle(p, i, d))
        return pe

    def multiplied(t, d):           # forgot the minus sign of the exponent
        return loop(t, d, lambda p, i, d: p * 10000 ** (2 * i / d))

    def floor_divided(t, d):        # 2 * i // d is 0 for every pair
        return loop(t, d, lambda p, i, d: p / 10000 ** (2 * i // d))

    def per_column(t, d):           # every column its own frequency, 2j / D
        return np.array([[np.sin(p / 10000 ** (2 * j / d)) if j % 2 == 0
                          else np.cos(p / 10000 ** (2 * j / d)) for j in range(d)]
                         for p in range(t)])

    with pytest.raises(AssertionError, match="you multiplied by 10000"):
        ex.check_sinusoidal_encoding(multiplied)
    with pytest.raises(AssertionError, match=r"// is integer division, and 2 \* i // d is 0"):
        ex.check_sinusoidal_encoding(floor_divided)
    with pytest.raises(AssertionError, match=r"columns 2i and 2i\+1 share one frequency"):
        ex.check_sinusoidal_encoding(per_column)


def test_layer_norm_backward_slips_named():
    def variant(dout, x, gamma, eps, *, scaled=True, eps_inside=True, gamma_in_means=True,
                dgamma_of=None, swap=False):
        mean = x.mean(-1, keepdims=True)
        std = np.sqrt(x.var(-1, keepdims=True) + eps) if eps_inside \
            else np.sqrt(x.var(-1, keepdims=True)) + eps
        x_hat = (x - mean) / std
        dx_hat = dout * gamma
        inner = dx_hat if gamma_in_means else dout
        dx = (dx_hat - inner.mean(-1, keepdims=True)
              - x_hat * (inner * x_hat).mean(-1, keepdims=True))
        dx = dx / std if scaled else dx
        axes = tuple(range(x.ndim - 1))
        dgamma = (dout * (x_hat if dgamma_of is None else dgamma_of(x))).sum(axis=axes)
        dbeta = dout.sum(axis=axes)
        return (dx, dbeta, dgamma) if swap else (dx, dgamma, dbeta)

    def slip(**kwargs):
        return lambda dout, x, gamma, eps: variant(dout, x, gamma, eps, **kwargs)

    ex.check_layer_norm_backward(slip())            # all slips off: right
    with pytest.raises(AssertionError, match="the scale is missing"):
        ex.check_layer_norm_backward(slip(scaled=False))
    with pytest.raises(AssertionError, match="eps goes inside the square root"):
        ex.check_layer_norm_backward(slip(eps_inside=False))
    with pytest.raises(AssertionError, match="with gamma inside, not mean"):
        ex.check_layer_norm_backward(slip(gamma_in_means=False))
    with pytest.raises(AssertionError, match="multiplies the normalised x_hat, not x"):
        ex.check_layer_norm_backward(slip(dgamma_of=lambda x: x))
    with pytest.raises(AssertionError, match=r"in the order \(dx, dgamma, dbeta\)"):
        ex.check_layer_norm_backward(slip(swap=True))
    with pytest.raises(AssertionError, match=r"dgamma \(output 1\) has shape \(3,\)"):
        ex.check_layer_norm_backward(       # summed over the features, not the positions
            lambda dout, x, gamma, eps: (variant(dout, x, gamma, eps)[0],
                                         (dout * x).sum(-1), dout.sum(-1)))


def test_cross_attention_mask_slips_named():
    def with_mask(make_mask):
        def attempt(h, memory, params, memory_lengths, n_heads):
            mask = make_mask(memory_lengths, h.shape[1], memory.shape[1])
            return multi_head_attention_forward(h, memory, params, n_heads=n_heads,
                                                mask=mask)[0]
        return attempt

    from attention_from_scratch.common.masks import causal_mask
    with pytest.raises(AssertionError, match=r"not causal_mask\(T, S\)"):
        ex.check_cross_attention(with_mask(lambda lengths, t, s: causal_mask(t, s)))
    with pytest.raises(AssertionError, match="the mask's batch axis landed on the heads"):
        ex.check_cross_attention(with_mask(lambda lengths, t, s: padding_mask(lengths, s)[None]))


def test_layer_norm_backward_reads_eps():
    def assumed(dout, x, gamma, eps):           # the forward's default, not the argument
        return ex.layer_norm_backward_reference(dout, x, gamma, 1e-5)

    with pytest.raises(AssertionError, match="use the eps you are given"):
        ex.check_layer_norm_backward(assumed)


# Wrong answers that passed every hidden case before a case or a check was added
# for them, and right ones written differently from the solution.

def _layer_norm_backward(dout, x, gamma, eps, *, stat_axis=-1, centred=True, var=None):
    """A learner's closed form; the keywords switch on one slip at a time."""
    mean = x.mean(axis=stat_axis, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=stat_axis, keepdims=True) if var is None else var(x)
    rstd = 1 / np.sqrt(variance + eps)
    x_hat = ((x - mean) if centred else x) * rstd
    dx_hat = dout * gamma
    dx = rstd * (dx_hat - dx_hat.mean(-1, keepdims=True)
                 - x_hat * (dx_hat * x_hat).mean(-1, keepdims=True))
    rows = x.size // x.shape[-1]
    d = x.shape[-1]
    return (dx, (dout * x_hat).reshape(rows, d).sum(axis=0),
            dout.reshape(rows, d).sum(axis=0))


def test_layer_norm_backward_right_answers_written_differently(capsys):
    def staged(dout, x, gamma, eps):       # the chain rule stage by stage, through std
        d = x.shape[-1]
        centred = x - x.mean(-1, keepdims=True)
        std = np.sqrt((centred ** 2).mean(-1, keepdims=True) + eps)
        dx_hat = dout * gamma
        dstd = -(dx_hat * centred).sum(-1, keepdims=True) / std ** 2
        dcentred = dx_hat / std + dstd / std * centred / d
        axes = tuple(range(x.ndim - 1))
        return (dcentred - dcentred.mean(-1, keepdims=True),
                (dout * centred / std).sum(axis=axes), dout.sum(axis=axes))

    def sums_over_d(dout, x, gamma, eps):  # the 1/D outside the bracket, np.var
        d = x.shape[-1]
        rstd = 1 / np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)
        x_hat = (x - x.mean(-1, keepdims=True)) * rstd
        dx_hat = dout * gamma
        dx = rstd / d * (d * dx_hat - dx_hat.sum(-1, keepdims=True)
                         - x_hat * (dx_hat * x_hat).sum(-1, keepdims=True))
        axes = tuple(range(x.ndim - 1))
        return dx, (dout * x_hat).sum(axis=axes), dout.sum(axis=axes)

    for right in (_layer_norm_backward, staged, sums_over_d):
        ex.check_layer_norm_backward(right)
        assert "✓ Exercise 2 (layer norm backward): correct on 5 hidden" in \
            capsys.readouterr().out


def test_layer_norm_backward_variance_from_squares_refused():
    def from_squares(dout, x, gamma, eps):
        return _layer_norm_backward(dout, x, gamma, eps, var=lambda x: (
            (x ** 2).mean(-1, keepdims=True) - x.mean(-1, keepdims=True) ** 2))

    with pytest.raises(AssertionError, match=r"mean\(x\*\*2\) - mean\(x\)\*\*2 is exact on "
                                             r"paper, not in floating point"):
        ex.check_layer_norm_backward(from_squares)


@pytest.mark.parametrize("which", ["dout", "x"])
def test_layer_norm_backward_writing_into_an_input_refused(which):
    def in_place(dout, x, gamma, eps):
        dx, dgamma, dbeta = _layer_norm_backward(dout, x, gamma, eps)
        if which == "dout":
            dout *= gamma                   # dout now holds dx_hat
        else:
            x -= x.mean(-1, keepdims=True)  # x centred in place
        return dx, dgamma, dbeta

    with pytest.raises(AssertionError, match=r"values you return are right, but your function "
                                             rf"changed its argument `{which}` in place") as info:
        ex.check_layer_norm_backward(in_place)
    # the residual's reason is dout's alone
    assert ("residual path sends the same dout" in str(info.value)) == (which == "dout")


def test_layer_norm_backward_wrong_and_in_place_gets_the_comparison():
    def scaled_in_place(dout, x, gamma, eps):
        dout *= gamma                   # dout now holds dx_hat: dgamma and dbeta use it
        return _layer_norm_backward(dout, x, np.ones_like(gamma), eps)

    with pytest.raises(AssertionError, match=r"dgamma \(output 1\) is wrong on case 1") as info:
        ex.check_layer_norm_backward(scaled_in_place)
    assert "in place" not in str(info.value)
    assert "are right" not in str(info.value)


def test_layer_norm_backward_sums_over_three_leading_axes():
    def two_axes_at_most(dout, x, gamma, eps):   # right for (N, D) and (B, T, D) alone
        dx, _, _ = _layer_norm_backward(dout, x, gamma, eps)
        x_hat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
        dgamma, dbeta = (dout * x_hat).sum(axis=0), dout.sum(axis=0)
        if dgamma.ndim == 2:
            dgamma, dbeta = dgamma.sum(axis=0), dbeta.sum(axis=0)
        return dx, dgamma, dbeta

    with pytest.raises(AssertionError, match="sum over every leading axis, however many"):
        ex.check_layer_norm_backward(two_axes_at_most)


def test_layer_norm_backward_statistics_slips_named():
    with pytest.raises(AssertionError, match="over axis 0, across positions, it is batch norm"):
        ex.check_layer_norm_backward(
            lambda dout, x, gamma, eps: _layer_norm_backward(dout, x, gamma, eps, stat_axis=0))
    with pytest.raises(AssertionError, match=r"x_hat = \(x - mean\) \* r: subtract the mean"):
        ex.check_layer_norm_backward(
            lambda dout, x, gamma, eps: _layer_norm_backward(dout, x, gamma, eps, centred=False))


def _cross_attention_with(*, mask=None, bias=None):
    def attempt(h, memory, params, memory_lengths, n_heads):
        s = memory.shape[1]
        return multi_head_attention_forward(
            h, memory, params, n_heads=n_heads,
            mask=None if mask is None else mask(memory_lengths, s),
            bias=None if bias is None else bias(memory_lengths, s))[0]
    return attempt


def test_cross_attention_right_answers_written_differently(capsys):
    from attention_from_scratch.steps.multi_head import multi_head_attention_forward as steps_mha

    def with_steps(h, memory, params, memory_lengths, n_heads):
        mask = padding_mask(memory_lengths, memory.shape[1])[:, None]
        return steps_mha(h, memory, params, n_heads=n_heads, mask=mask)[0]

    by_hand = _cross_attention_with(
        mask=lambda lengths, s: (np.arange(s) < lengths[:, None])[:, None, None])
    for right in (by_hand, with_steps):
        ex.check_cross_attention(right)
        assert "✓ Exercise 3 (cross-attention): correct on 5 hidden" in capsys.readouterr().out


@pytest.mark.parametrize("constant", [-30.0, -1e4, -1e9, -1e30])
def test_cross_attention_finite_additive_mask_refused(constant):
    # right wherever every source has a real token; the empty source tells it apart
    attempt = _cross_attention_with(
        bias=lambda lengths, s: np.where(padding_mask(lengths, s)[:, None], 0.0, constant))
    with pytest.raises(AssertionError, match="a finite additive mask .* a source of length 0"):
        ex.check_cross_attention(attempt)


def test_cross_attention_length_slips_named():
    one_too_many = _cross_attention_with(
        mask=lambda lengths, s: (np.arange(s) <= lengths[:, None])[:, None, None])
    left = _cross_attention_with(
        mask=lambda lengths, s: padding_mask(lengths, s, side="left")[:, None])
    with pytest.raises(AssertionError, match=r"off by one.*np\.arange\(S\) < L, not <="):
        ex.check_cross_attention(one_too_many)
    with pytest.raises(AssertionError, match=r"padding comes after.*not side='left'"):
        ex.check_cross_attention(left)


def test_cross_attention_memory_sliced_per_sequence_gets_the_empty_source_hint():
    def sliced(h, memory, params, memory_lengths, n_heads):   # right while no source is empty
        return np.stack([multi_head_attention_forward(h[i], memory[i, :n], params,
                                                      n_heads=n_heads)[0]
                         for i, n in enumerate(memory_lengths)])

    with pytest.raises(AssertionError, match=r"on case 5 .*A source may be empty \(length 0\)"):
        ex.check_cross_attention(sliced)


def test_layer_norm_backward_fixed_number_of_axes_named():
    def two_axes(dout, x, gamma, eps):      # right for (N, D) alone
        n, d = x.shape
        return _layer_norm_backward(dout, x, gamma, eps)

    with pytest.raises(AssertionError, match=r"on case 2 .*any number of leading axes"):
        ex.check_layer_norm_backward(two_axes)
