"""Chapter 4's checkers accept the right answers and reject planted wrong ones."""

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.exercises import chapter04 as ex


def my_split_heads(x, n_heads):          # as in the worked solutions
    *lead, t, d = x.shape
    return np.swapaxes(x.reshape(*lead, t, n_heads, d // n_heads), -2, -3)


def my_merge_heads(heads):
    *lead, h, t, d_head = heads.shape
    return np.swapaxes(heads, -2, -3).reshape(*lead, t, h * d_head)


@pytest.mark.parametrize("right", [my_split_heads, steps.multi_head.split_heads,
                                   core.multi_head.split_heads])
def test_split_heads_accepts(capsys, right):
    ex.check_split_heads(right)
    assert "✓ Exercise 1 (split_heads): correct on 3 hidden cases" in capsys.readouterr().out


def test_split_heads_rejects(capsys):
    ex.check_split_heads(lambda x, n_heads: (_ for _ in ()).throw(NotImplementedError))
    assert "Exercise 1 (split_heads): not attempted yet" in capsys.readouterr().out

    def straight(x, n_heads):
        *lead, t, d = x.shape
        return x.reshape(*lead, n_heads, t, d // n_heads)

    def no_swap(x, n_heads):
        *lead, t, d = x.shape
        return x.reshape(*lead, t, n_heads, d // n_heads)

    def interleaved(x, n_heads):
        heads = [x[..., h::n_heads] for h in range(n_heads)]
        return np.stack(heads, axis=-3)

    def front_axes(x, n_heads):          # right for (T, D), wrong with leading axes
        return x.reshape(*x.shape[:-1], n_heads, -1).swapaxes(0, 1)

    with pytest.raises(AssertionError, match="straight to \\(\\.\\.\\., H, T, Dh\\)"):
        ex.check_split_heads(straight)
    with pytest.raises(AssertionError, match="swap axes -3 and -2"):
        ex.check_split_heads(no_swap)
    with pytest.raises(AssertionError, match="not every H-th column"):
        ex.check_split_heads(interleaved)
    with pytest.raises(AssertionError, match="count axes from the end"):
        ex.check_split_heads(front_axes)

    def stacked_in_front(x, n_heads):    # a loop over heads, stacked on axis 0
        d_head = x.shape[-1] // n_heads
        return np.stack([x[..., h * d_head:(h + 1) * d_head] for h in range(n_heads)])

    with pytest.raises(AssertionError, match="stack along axis=-3"):
        ex.check_split_heads(stacked_in_front)


def test_split_heads_returning_a_list_gets_its_own_hint():
    def list_of_heads(x, n_heads):       # steps' slices, not stacked
        d_head = x.shape[-1] // n_heads
        return [x[..., h * d_head:(h + 1) * d_head] for h in range(n_heads)]

    with pytest.raises(AssertionError, match=r"return one array of shape \(\.\.\., H, T, "
                                             r"Dh\), not a list of 2 heads; np.stack"):
        ex.check_split_heads(list_of_heads)


def test_merge_heads(capsys):
    for right in (my_merge_heads, steps.multi_head.merge_heads, core.multi_head.merge_heads):
        ex.check_merge_heads(right)
        assert "✓ Exercise 1 (merge_heads)" in capsys.readouterr().out

    def straight(heads):
        *lead, h, t, d_head = heads.shape
        return heads.reshape(*lead, t, h * d_head)

    def along_positions(heads):
        return np.concatenate(np.moveaxis(heads, -3, 0), axis=-2)

    def front_axes(heads):
        *lead, h, t, d_head = heads.shape
        return heads.swapaxes(0, 1).reshape(*lead, t, h * d_head)

    with pytest.raises(AssertionError, match="straight to \\(\\.\\.\\., T, D\\)"):
        ex.check_merge_heads(straight)
    with pytest.raises(AssertionError, match="feature axis"):
        ex.check_merge_heads(along_positions)
    with pytest.raises(AssertionError, match="count axes from the end"):
        ex.check_merge_heads(front_axes)
    with pytest.raises(AssertionError, match=r"list\(heads\) runs over the first axis"):
        ex.check_merge_heads(lambda heads: np.concatenate(list(heads), axis=-1))
    with pytest.raises(AssertionError, match="swapped the last two axes"):
        ex.check_merge_heads(lambda heads: np.swapaxes(heads, -1, -2).reshape(
            *heads.shape[:-3], heads.shape[-2], -1))
    with pytest.raises(AssertionError, match="interleaves the heads' columns"):
        ex.check_merge_heads(lambda heads: np.moveaxis(heads, -3, -1).reshape(
            *heads.shape[:-3], heads.shape[-2], -1))


def test_output_projection_backward(capsys):
    def mine(dout, heads, w_o):          # as in the worked solutions
        d = w_o.shape[0]
        concat = my_merge_heads(heads)
        dheads = my_split_heads(dout @ w_o.T, heads.shape[-3])
        return (dheads, concat.reshape(-1, d).T @ dout.reshape(-1, d),
                dout.reshape(-1, d).sum(axis=0))

    for right in (ex.output_projection_backward, mine):
        ex.check_output_projection_backward(right)
        assert "✓ Exercise 2 (output projection backward)" in capsys.readouterr().out

    def not_split(dout, heads, w_o):
        _, dw_o, db_o = mine(dout, heads, w_o)
        return dout @ w_o.T, dw_o, db_o

    def no_transpose(dout, heads, w_o):
        _, dw_o, db_o = mine(dout, heads, w_o)
        return my_split_heads(dout @ w_o, heads.shape[-3]), dw_o, db_o

    def dw_transposed(dout, heads, w_o):
        dheads, dw_o, db_o = mine(dout, heads, w_o)
        d = w_o.shape[0]
        return dheads, dout.reshape(-1, d).T @ my_merge_heads(heads).reshape(-1, d), db_o

    def db_mean(dout, heads, w_o):
        dheads, dw_o, _ = mine(dout, heads, w_o)
        return dheads, dw_o, dout.reshape(-1, w_o.shape[0]).mean(axis=0)

    def straight_split(dout, heads, w_o):
        _, dw_o, db_o = mine(dout, heads, w_o)
        return (dout @ w_o.T).reshape(heads.shape), dw_o, db_o

    with pytest.raises(AssertionError, match="backward of merge_heads is split_heads"):
        ex.check_output_projection_backward(not_split)
    with pytest.raises(AssertionError, match="dout @ w_o.T"):
        ex.check_output_projection_backward(no_transpose)
    with pytest.raises(AssertionError, match="dw_o is transposed"):
        ex.check_output_projection_backward(dw_transposed)
    with pytest.raises(AssertionError, match="sum over all positions"):
        ex.check_output_projection_backward(db_mean)
    with pytest.raises(AssertionError, match="not a straight reshape"):
        ex.check_output_projection_backward(straight_split)


def test_multi_head_cost(capsys):
    def mine(b, t, s, d, n_heads):       # as in the worked solutions
        params = 4 * (d * d + d)
        projections = 2 * b * t * d * d * 2 + 2 * b * s * d * d * 2
        attention = n_heads * 2 * (2 * b * t * s * (d // n_heads))
        return params, projections + attention

    for right in (ex.multi_head_cost, mine):
        ex.check_multi_head_cost(right)
        assert "✓ Exercise 3 (multi-head cost)" in capsys.readouterr().out

    with pytest.raises(AssertionError, match="do not multiply the parameters"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: (h * mine(b, t, s, d, h)[0],
                                                        mine(b, t, s, d, h)[1]))
    with pytest.raises(AssertionError, match="bias vectors"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: (4 * d * d, mine(b, t, s, d, h)[1]))
    with pytest.raises(AssertionError, match="2 FLOPs per multiply-add"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: (mine(b, t, s, d, h)[0],
                                                        mine(b, t, s, d, h)[1] // 2))
    with pytest.raises(AssertionError, match="S positions"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: mine(b, t, t, d, h))
    with pytest.raises(AssertionError, match="one head of width D"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: (
            mine(b, t, s, d, h)[0], 4 * b * t * d * d + 4 * b * s * d * d + h * 4 * b * t * s * d))
    with pytest.raises(AssertionError, match="the FLOPs grow with b"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: mine(1, t, s, d, h))
    with pytest.raises(AssertionError, match=r"computed in every head: H heads"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: (
            mine(b, t, s, d, h)[0],
            4 * b * t * d * d + 4 * b * s * d * d + 4 * b * t * s * (d // h)))
    with pytest.raises(AssertionError, match="count the weighted sum"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: (
            mine(b, t, s, d, h)[0], mine(b, t, s, d, h)[1] - 2 * b * t * s * d))
    # a wrong answer that is no planted mistake: the message names the case's numbers
    with pytest.raises(AssertionError, match=r"output 1 is wrong on case 1 \(arguments b=3, "
                                             r"t=4, s=5, d=12, n_heads=6\)"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: (4 * d * d + 4 * d, 0))


# Wrong answers that passed every hidden case before a case or a check was added
# for them, and right ones written differently from the solution.

def test_split_heads_right_answers_written_differently(capsys):
    def by_split(x, n_heads):            # np.split into H blocks, stacked before T
        return np.stack(np.split(x, n_heads, axis=-1), axis=-3)

    def by_moveaxis(x, n_heads):
        *lead, t, d = x.shape
        return np.moveaxis(x.reshape(*lead, t, n_heads, -1), -2, -3)

    def renamed(x, h):                   # the head count under another name
        *lead, t, d = x.shape
        return np.swapaxes(x.reshape(*lead, t, h, d // h), -2, -3)

    for right in (by_split, by_moveaxis, renamed):
        ex.check_split_heads(right)
        assert "✓ Exercise 1 (split_heads)" in capsys.readouterr().out


def test_split_heads_float_head_width_named():
    def float_width(x, n_heads):
        *lead, t, d = x.shape
        return np.swapaxes(x.reshape(*lead, t, n_heads, d / n_heads), -2, -3)

    with pytest.raises(AssertionError, match=r"D / H is a float \(8 / 2 = 4\.0\).*d // n_heads"):
        ex.check_split_heads(float_width)


def test_merge_heads_right_answers_written_differently(capsys):
    def by_concatenate(heads):
        return np.concatenate([heads[..., h, :, :] for h in range(heads.shape[-3])], axis=-1)

    def by_moveaxis(heads):
        *lead, h, t, d_head = heads.shape
        return np.moveaxis(heads, -3, -2).reshape(*lead, t, -1)

    for right in (by_concatenate, by_moveaxis):
        ex.check_merge_heads(right)
        assert "✓ Exercise 1 (merge_heads)" in capsys.readouterr().out


def _output_backward(dout, heads, w_o):  # written with einsum, flattening the leading axes
    d = w_o.shape[0]
    concat = my_merge_heads(heads).reshape(-1, d)
    rows = dout.reshape(-1, d)
    return (my_split_heads(dout @ w_o.T, heads.shape[-3]), np.einsum("ni,nj->ij", concat, rows),
            np.einsum("nj->j", rows))


def test_output_backward_sums_over_two_leading_axes(capsys):
    ex.check_output_projection_backward(_output_backward)
    assert "correct on 4 hidden cases" in capsys.readouterr().out

    def first_axis_only(dout, heads, w_o):   # right for (T, D) and (B, T, D) alone
        dheads, _, _ = _output_backward(dout, heads, w_o)
        concat = my_merge_heads(heads)
        dw_o = np.swapaxes(concat, -1, -2) @ dout
        db_o = dout.sum(axis=-2)
        if dw_o.ndim == 3:
            dw_o, db_o = dw_o.sum(axis=0), db_o.sum(axis=0)
        return dheads, dw_o, db_o

    with pytest.raises(AssertionError, match="sum over every leading axis, not only the first"):
        ex.check_output_projection_backward(first_axis_only)


def test_output_backward_in_float32_refused():
    def in_float32(dout, heads, w_o):
        return tuple(g.astype(np.float32) for g in _output_backward(dout, heads, w_o))

    with pytest.raises(AssertionError, match="float32, whose round-off"):
        ex.check_output_projection_backward(in_float32)


def test_output_backward_writing_into_dout_refused():
    def overwrites_dout(dout, heads, w_o):  # right values, but the caller's dout is spoilt
        d = w_o.shape[0]
        dw_o = my_merge_heads(heads).reshape(-1, d).T @ dout.reshape(-1, d)
        db_o = dout.reshape(-1, d).sum(axis=0)
        dout @= w_o.T
        return my_split_heads(dout, heads.shape[-3]), dw_o, db_o

    with pytest.raises(AssertionError, match=r"changed its argument `dout` in place.*"
                                             r"residual path sends the same dout.*"
                                             r"dconcat = dout @ w_o\.T"):
        ex.check_output_projection_backward(overwrites_dout)


def test_output_backward_writing_into_heads_named_without_the_residual_reason():
    def overwrites_heads(dout, heads, w_o):    # right values, the caller's heads zeroed
        dheads, dw_o, db_o = _output_backward(dout, heads, w_o)
        heads *= 0
        return dheads, dw_o, db_o

    with pytest.raises(AssertionError, match=r"values you return are right, but your function "
                                             r"changed its argument `heads` in place") as info:
        ex.check_output_projection_backward(overwrites_heads)
    assert "caller" in str(info.value)
    assert "residual" not in str(info.value)


def test_output_backward_wrong_and_in_place_gets_the_mistakes_hint():
    def averaged_in_place(dout, heads, w_o):
        dheads, dw_o, _ = _output_backward(dout, heads, w_o)
        d = w_o.shape[0]
        dout /= dout.size // d                 # writes into dout, and averages db_o
        return dheads, dw_o, dout.reshape(-1, d).sum(axis=0)

    with pytest.raises(AssertionError, match="db_o is averaged") as info:
        ex.check_output_projection_backward(averaged_in_place)
    assert "in place" not in str(info.value)
    assert "are right" not in str(info.value)


def test_output_backward_interleaved_heads_named():
    def interleaved_split(x, n_heads):
        return np.stack([x[..., h::n_heads] for h in range(n_heads)], axis=-3)

    def interleaved_merge(heads):
        *lead, h, t, d_head = heads.shape
        return np.moveaxis(heads, -3, -1).reshape(*lead, t, h * d_head)

    def dheads_interleaved(dout, heads, w_o):
        _, dw_o, db_o = _output_backward(dout, heads, w_o)
        return interleaved_split(dout @ w_o.T, heads.shape[-3]), dw_o, db_o

    def dw_o_interleaved(dout, heads, w_o):
        dheads, _, db_o = _output_backward(dout, heads, w_o)
        d = w_o.shape[0]
        return dheads, interleaved_merge(heads).reshape(-1, d).T @ dout.reshape(-1, d), db_o

    with pytest.raises(AssertionError, match="dheads takes every H-th column"):
        ex.check_output_projection_backward(dheads_interleaved)
    with pytest.raises(AssertionError, match="moving H to the end interleaves them"):
        ex.check_output_projection_backward(dw_o_interleaved)


def test_multi_head_cost_what_not_to_count_named():
    def cost(b, t, s, d, h, *, bias_adds=0, scale=0, biases=4):
        params = 4 * d * d + biases * d
        flops = 4 * b * t * d * d + 4 * b * s * d * d + 4 * b * t * s * d
        return params, flops + bias_adds * (2 * b * t * d + 2 * b * s * d) + scale * b * h * t * s

    with pytest.raises(AssertionError, match="leave the bias additions out"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: cost(b, t, s, d, h, bias_adds=1))
    with pytest.raises(AssertionError, match=r"leave the scaling by 1/sqrt\(Dh\) out"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: cost(b, t, s, d, h, scale=1))
    with pytest.raises(AssertionError, match="count all four biases, b_k too"):
        ex.check_multi_head_cost(lambda b, t, s, d, h: cost(b, t, s, d, h, biases=3))


def test_output_backward_shape_slips_named():
    def not_swapped(dout, heads, w_o):
        _, dw_o, db_o = _output_backward(dout, heads, w_o)
        *lead, h, t, d_head = heads.shape
        return (dout @ w_o.T).reshape(*lead, t, h, d_head), dw_o, db_o

    def per_sequence(dout, heads, w_o):
        dheads, _, _ = _output_backward(dout, heads, w_o)
        return dheads, np.swapaxes(my_merge_heads(heads), -1, -2) @ dout, dout.sum(axis=-2)

    with pytest.raises(AssertionError, match=r"dheads is \(\.\.\., T, H, Dh\)"):
        ex.check_output_projection_backward(not_swapped)
    with pytest.raises(AssertionError, match="one gradient per sequence"):
        ex.check_output_projection_backward(per_sequence)


def test_a_fixed_number_of_axes_named():
    def split_3d(x, n_heads):             # right for (B, T, D) alone
        b, t, d = x.shape
        return x.reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)

    def merge_4d(heads):
        b, h, t, d_head = heads.shape
        return heads.transpose(0, 2, 1, 3).reshape(b, t, h * d_head)

    def backward_3d(dout, heads, w_o):
        b, t, d = dout.shape
        return ex.output_projection_backward(dout, heads, w_o)

    hint = r"any number of leading axes .* `\*lead, t, d = x\.shape`"
    with pytest.raises(AssertionError, match=hint):
        ex.check_split_heads(split_3d)
    with pytest.raises(AssertionError, match=hint):
        ex.check_merge_heads(merge_4d)
    with pytest.raises(AssertionError, match=hint):
        ex.check_output_projection_backward(backward_3d)
