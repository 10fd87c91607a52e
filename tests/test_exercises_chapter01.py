"""Chapter 1's checkers accept the right answers and reject planted wrong ones."""

import numpy as np
import pytest

from attention_from_scratch import core
from attention_from_scratch.exercises import ExerciseError
from attention_from_scratch.exercises import chapter01 as ex


def stub(*args):
    raise NotImplementedError


def hint_of(check, attempt):
    with pytest.raises(ExerciseError) as caught:
        check(attempt)
    return caught.value.message


def softmax_rows(scores):
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_soft_lookup(capsys):
    ex.check_soft_lookup(stub)
    assert capsys.readouterr().out.strip() == "Exercise 1 (soft lookup): not attempted yet"
    ex.check_soft_lookup(ex.soft_lookup)
    ex.check_soft_lookup(lambda q, k, v: softmax_rows(q @ k.T) @ v)   # written independently
    passed = "✓ Exercise 1 (soft lookup): correct on 3 hidden cases"
    assert capsys.readouterr().out.count(passed) == 2

    def hard(q, k, v):
        return np.eye(len(k))[np.argmax(q @ k.T, axis=1)] @ v

    def over_queries(q, k, v):
        return softmax_rows((q @ k.T).T).T @ v

    with pytest.raises(AssertionError, match="that is the hard lookup"):
        ex.check_soft_lookup(hard)
    with pytest.raises(AssertionError, match="over the last axis, not the queries"):
        ex.check_soft_lookup(over_queries)
    with pytest.raises(AssertionError, match="divide each row by its sum"):
        ex.check_soft_lookup(lambda q, k, v: np.exp(q @ k.T) @ v)
    with pytest.raises(AssertionError, match="pass them through a softmax"):
        ex.check_soft_lookup(lambda q, k, v: q @ k.T @ v)
    with pytest.raises(AssertionError, match="plain mean of the values"):
        ex.check_soft_lookup(lambda q, k, v: np.tile(v.mean(axis=0), (len(q), 1)))
    with pytest.raises(AssertionError, match="divided by sqrt\\(Dk\\).*with no scale"):
        ex.check_soft_lookup(lambda q, k, v: softmax_rows(q @ k.T / np.sqrt(k.shape[1])) @ v)
    with pytest.raises(AssertionError, match="scores were divided by S"):
        ex.check_soft_lookup(lambda q, k, v: softmax_rows(q @ k.T / len(k)) @ v)
    with pytest.raises(AssertionError, match="already sum to 1"):
        ex.check_soft_lookup(lambda q, k, v: softmax_rows(q @ k.T) @ v / len(v))
    with pytest.raises(AssertionError, match=r"Exercise 1 \(soft lookup\): output 0 is wrong"):
        ex.check_soft_lookup(lambda q, k, v: softmax_rows(q @ k.T / 2) @ v)   # unplanted


def test_soft_lookup_shape_errors_get_a_hint():
    # keys @ queries.T is (S, T): the product with values (S, Dv) fails on case 1
    with pytest.raises(AssertionError, match=r"raised ValueError.*queries @ keys\.T "
                                             r"are \(T, S\)") as info:
        ex.check_soft_lookup(lambda q, k, v: softmax_rows(k @ q.T) @ v)
    assert "queries is (3, 2) (T, Dk), keys (4, 2) (S, Dk)" in str(info.value)
    with pytest.raises(AssertionError, match="your function raised KeyError"):   # not a shape
        ex.check_soft_lookup(lambda q, k, v: {}["scores"])


def test_the_soft_lookup_is_attention_without_the_scale(rng):
    q, k, v = rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 5))
    out, _ = core.attention.attention_forward(q * np.sqrt(2), k, v)
    np.testing.assert_allclose(ex.soft_lookup(q, k, v), out, rtol=1e-12)


def test_project_qkv(capsys):
    ex.check_project_qkv(stub)
    assert capsys.readouterr().out.strip() == "Exercise 2 (project q, k, v): not attempted yet"

    def by_hand(x, p):
        return (x @ p["w_q"] + p["b_q"], x @ p["w_k"] + p["b_k"], x @ p["w_v"] + p["b_v"])

    ex.check_project_qkv(by_hand)
    assert "✓ Exercise 2 (project q, k, v): correct on 3 hidden cases" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="the biases are missing"):
        ex.check_project_qkv(lambda x, p: (x @ p["w_q"], x @ p["w_k"], x @ p["w_v"]))
    with pytest.raises(AssertionError, match="keys were made with the query weights"):
        ex.check_project_qkv(lambda x, p: (x @ p["w_q"] + p["b_q"], x @ p["w_q"] + p["b_q"],
                                           x @ p["w_v"] + p["b_v"]))
    with pytest.raises(AssertionError, match=r"in the order \(q, k, v\)"):
        ex.check_project_qkv(lambda x, p: (lambda q, k, v: (q, v, k))(*by_hand(x, p)))
    with pytest.raises(AssertionError, match="not x itself"):
        ex.check_project_qkv(lambda x, p: (x, x, x @ p["w_v"] + p["b_v"]))
    with pytest.raises(AssertionError, match=r"^Exercise 2 \(project q, k, v\): v is missing "
                                             r"its bias: v = x @ w_v \+ b_v$"):
        ex.check_project_qkv(lambda x, p: (*by_hand(x, p)[:2], x @ p["w_v"]))
    with pytest.raises(AssertionError, match=r"^Exercise 2 \(project q, k, v\): k is missing "
                                             r"its bias"):
        ex.check_project_qkv(lambda x, p: (by_hand(x, p)[0], x @ p["w_k"], by_hand(x, p)[2]))
    with pytest.raises(AssertionError, match="q and v are missing their biases: "
                                             r"q = x @ w_q \+ b_q, v = x @ w_v \+ b_v"):
        ex.check_project_qkv(lambda x, p: (x @ p["w_q"], by_hand(x, p)[1], x @ p["w_v"]))
    with pytest.raises(AssertionError, match=r"raised ValueError.*x @ w_q \+ b_q is "
                                             r"\(B, T, Dk\)"):
        ex.check_project_qkv(lambda x, p: (p["w_q"] @ x, p["w_k"] @ x, p["w_v"] @ x))
    with pytest.raises(AssertionError, match=r"Exercise 2 \(project q, k, v\): output 2 is wrong"):
        ex.check_project_qkv(lambda x, p: (*by_hand(x, p)[:2], x @ p["w_v"] - p["b_v"]))


def test_self_attention_dx(capsys):
    ex.check_self_attention_dx(stub)
    assert capsys.readouterr().out.strip() == "Exercise 3 (self-attention dx): not attempted yet"
    ex.check_self_attention_dx(
        lambda dq, dk, dv, p: np.concatenate([dq, dk, dv], axis=-1)
        @ np.concatenate([p["w_q"], p["w_k"], p["w_v"]], axis=1).T)   # one fused matmul
    assert "✓ Exercise 3 (self-attention dx): correct on 3 hidden cases" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="only the query path"):
        ex.check_self_attention_dx(lambda dq, dk, dv, p: dq @ p["w_q"].T)
    with pytest.raises(AssertionError, match="the value path is missing"):
        ex.check_self_attention_dx(lambda dq, dk, dv, p: dq @ p["w_q"].T + dk @ p["w_k"].T)
    with pytest.raises(AssertionError, match="the key path is missing"):
        ex.check_self_attention_dx(lambda dq, dk, dv, p: dq @ p["w_q"].T + dv @ p["w_v"].T)
    with pytest.raises(AssertionError, match="not averaged"):
        ex.check_self_attention_dx(
            lambda dq, dk, dv, p: (dq @ p["w_q"].T + dk @ p["w_k"].T + dv @ p["w_v"].T) / 3)
    with pytest.raises(AssertionError, match=r"raised ValueError.*dq @ w_q\.T, which "
                                             r"is \(B, T, D\)") as info:
        ex.check_self_attention_dx(lambda dq, dk, dv, p: dq @ p["w_q"] + dk @ p["w_k"]
                                   + dv @ p["w_v"])                   # no transposes
    assert "dq is (2, 3, 5) (B, T, Dk) and w_q is (4, 5) (D, Dk)" in str(info.value)
    with pytest.raises(AssertionError, match=r"raised ValueError on case 1 .*could not be "
                                             r"broadcast.*each path is its gradient times "
                                             r"its weights transposed"):
        ex.check_self_attention_dx(lambda dq, dk, dv, p: dq @ p["w_q"].T + dk @ p["w_k"].T
                                   + dv)                              # value path unprojected


def test_self_attention_dx_reference_matches_the_package(rng):
    x = rng.normal(size=(2, 3, 4))
    params = {"w_q": rng.normal(size=(4, 5)), "b_q": rng.normal(size=5),
              "w_k": rng.normal(size=(4, 5)), "b_k": rng.normal(size=5),
              "w_v": rng.normal(size=(4, 2)), "b_v": rng.normal(size=2)}
    out, cache = core.self_attention.self_attention_forward(x, params)
    dout = rng.normal(size=out.shape)
    dx, _ = core.self_attention.self_attention_backward(dout, cache)
    dq, dk, dv = core.attention.attention_backward(dout, cache.attention)
    np.testing.assert_allclose(ex.self_attention_dx(dq, dk, dv, params), dx, rtol=1e-12)


def test_soft_lookup_normalising_mistakes_get_their_own_hints():
    def over_everything(q, k, v):
        e = np.exp(q @ k.T)
        return e / e.sum() @ v                           # one sum for the whole matrix

    with pytest.raises(AssertionError, match=r"sum over the whole \(T, S\) matrix"):
        ex.check_soft_lookup(over_everything)
    with pytest.raises(AssertionError, match=r"raised ValueError on case 1 .*mismatch in its "
                                             r"core dimension.*the scores queries @ keys\.T "
                                             r"are \(T, S\)") as info:
        ex.check_soft_lookup(lambda q, k, v: softmax_rows(k @ q.T) @ v)   # a product's error
    assert "keepdims" not in str(info.value)


def test_soft_lookup_a_per_row_sum_without_its_axis_gets_the_shared_keepdims_hint():
    def soft_lookup(queries, keys, values):
        e = np.exp(queries @ keys.T)                     # (T, S)
        weights = e / e.sum(axis=-1)                     # (T,) meets (T, S)
        return weights @ values

    with pytest.raises(ExerciseError) as info:
        ex.check_soft_lookup(soft_lookup)
    hint = info.value.message
    assert "an array of shape (3,) meets the last axis of (3, 4), not its 3 rows" in hint
    assert "make it a column of shape (3, 1), with keepdims=True" in hint
    assert "queries is (3, 2) (T, Dk)" in hint            # the case's shapes still follow
    assert "at `weights = e / e.sum(axis=-1)" in hint      # and the learner's own line


def test_soft_lookup_a_row_max_without_its_axis_gets_the_shared_keepdims_hint():
    def soft_lookup(queries, keys, values):
        scores = queries @ keys.T
        e = np.exp(scores - scores.max(axis=-1))         # (T, S) - (T,)
        return e / e.sum(axis=-1, keepdims=True) @ values

    hint = hint_of(ex.check_soft_lookup, soft_lookup)
    assert "with keepdims=True in the max or sum" in hint


def test_soft_lookup_a_column_meeting_a_row_gets_the_table_hint():
    def soft_lookup(queries, keys, values):              # softmax through log-sum-exp
        scores = queries @ keys.T                        # (T, S)
        top = scores.max(axis=-1, keepdims=True)         # (T, 1)
        total = np.exp(scores - top).sum(axis=-1)        # (T,)
        log_total = top + np.log(total)                  # (T, 1) + (T,) is (T, T)
        return np.exp(scores - log_total) @ values

    hint = hint_of(ex.check_soft_lookup, soft_lookup)
    assert "NumPy built a (3, 3) table that none of the inputs has" in hint
    assert "(3,) everywhere, or (3, 1) everywhere" in hint


def test_soft_lookup_pythons_max_gets_its_own_hint_not_a_shape_one():
    def soft_lookup(queries, keys, values):
        scores = queries @ keys.T
        e = np.exp(scores - max(scores))                 # Python's max compares rows
        return e / e.sum(axis=-1, keepdims=True) @ values

    hint = hint_of(ex.check_soft_lookup, soft_lookup)
    assert "Python's own max" in hint and "scores.max(axis=-1, keepdims=True)" in hint
    assert "Here queries is" not in hint                 # not a shape problem


def test_soft_lookup_the_max_of_each_key_subtracted():
    def soft_lookup(queries, keys, values):
        scores = queries @ keys.T
        e = np.exp(scores - scores.max(axis=0, keepdims=True))    # the wrong axis
        return e / e.sum(axis=1, keepdims=True) @ values

    assert "the max subtracted was each key's (axis=0)" in hint_of(ex.check_soft_lookup,
                                                                    soft_lookup)


def test_soft_lookup_the_weights_returned():
    def soft_lookup(queries, keys, values):
        weights, _ = core.softmax.softmax_forward(queries @ keys.T)
        return weights

    assert hint_of(ex.check_soft_lookup, soft_lookup).startswith("that is the weights")


def test_soft_lookup_a_list_of_rows():
    def soft_lookup(queries, keys, values):
        rows = []
        for query in queries:
            weights, _ = core.softmax.softmax_forward(keys @ query)
            rows.append(weights @ values)
        return rows

    hint = hint_of(ex.check_soft_lookup, soft_lookup)
    assert hint.startswith("your function returned a list of 3 arrays, one row per query")
    assert "np.stack(rows)" in hint
    ex.check_soft_lookup(lambda q, k, v: np.stack(soft_lookup(q, k, v)))   # then right


def test_soft_lookup_the_output_and_the_weights_returned():
    def soft_lookup(queries, keys, values):
        weights, _ = core.softmax.softmax_forward(queries @ keys.T)
        return weights @ values, weights

    assert hint_of(ex.check_soft_lookup, soft_lookup) == (
        "your function returned a tuple of 2 arrays: return only the answer, one (T, Dv) "
        "array")


def test_project_qkv_the_out_cache_pairs_of_linear_forward():
    def project_qkv(x, params):
        q = core.linear.linear_forward(x, params["w_q"], params["b_q"])
        k = core.linear.linear_forward(x, params["w_k"], params["b_k"])
        v = core.linear.linear_forward(x, params["w_v"], params["b_v"])
        return q, k, v

    hint = hint_of(ex.check_project_qkv, project_qkv)
    assert hint.startswith("your function returned pairs (out, cache)")
    assert "q, _ = linear_forward(" in hint


def test_project_qkv_a_generator():
    def project_qkv(x, params):
        return (x @ params[f"w_{n}"] + params[f"b_{n}"] for n in "qkv")

    assert "write tuple(...) around it" in hint_of(ex.check_project_qkv, project_qkv)


@pytest.mark.parametrize(("order", "named"), [("vkq", "q and v are swapped"),
                                              ("kvq", "in the wrong order"),
                                              ("vqk", "in the wrong order")])
def test_project_qkv_every_wrong_order_is_named(order, named):
    def project_qkv(x, params):
        made = {n: x @ params[f"w_{n}"] + params[f"b_{n}"] for n in "qkv"}
        return tuple(made[n] for n in order)

    assert named in hint_of(ex.check_project_qkv, project_qkv)


def test_project_qkv_no_projection_at_all_and_values_not_projected():
    def all_x(x, params):
        return x, x, x                                   # section 4's first try

    def values_x(x, params):
        return x @ params["w_q"] + params["b_q"], x @ params["w_k"] + params["b_k"], x

    assert hint_of(ex.check_project_qkv, all_x).startswith("q, k and v are x itself")
    assert hint_of(ex.check_project_qkv, values_x).startswith("v is x itself")


def test_self_attention_dx_summed_into_an_integer_array():
    def self_attention_dx(dq, dk, dv, params):
        dx = np.zeros(dq.shape[:-1] + params["w_q"].shape[:1], dtype=int)
        dx += dq @ params["w_q"].T                     # float64 into int64: refused
        dx += dk @ params["w_k"].T
        dx += dv @ params["w_v"].T
        return dx

    hint = hint_of(ex.check_self_attention_dx, self_attention_dx)
    assert "An array of integers cannot take floats in place" in hint
    assert "Here dq is" not in hint                    # not a shape problem


def test_self_attention_dx_the_three_paths_returned_apart():
    def self_attention_dx(dq, dk, dv, params):
        return dq @ params["w_q"].T, dk @ params["w_k"].T, dv @ params["w_v"].T

    hint = hint_of(ex.check_self_attention_dx, self_attention_dx)
    assert hint.startswith("your function returned a tuple of 3 arrays")
    assert "their gradients add" in hint


def test_self_attention_dx_key_path_through_the_query_weights():
    with pytest.raises(AssertionError, match=r"key path went back through w_q.*dk @ w_k\.T"):
        ex.check_self_attention_dx(lambda dq, dk, dv, p: dq @ p["w_q"].T + dk @ p["w_q"].T
                                   + dv @ p["w_v"].T)
