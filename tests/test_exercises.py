"""The generic exercise checker: not attempted, pass, specific hints."""

import functools
import re

import numpy as np
import pytest

from attention_from_scratch.exercises import (
    ExerciseError,
    check_exercise,
    code_objects,
    refuses_shapes,
)


def reference(x):
    return 2 * x


def stub(x):
    raise NotImplementedError


CASES = [(np.arange(3.0),), (np.ones((2, 2)),)]


def test_not_attempted(capsys):
    check_exercise("double", stub, reference, CASES)
    assert capsys.readouterr().out.strip() == "double: not attempted yet"


def test_pass_line(capsys):
    check_exercise("double", lambda x: x + x, reference, CASES)
    assert capsys.readouterr().out.strip() == "✓ double: correct on 2 hidden cases"


def test_known_mistake_gets_its_hint():
    with pytest.raises(AssertionError, match="double: you squared"):
        check_exercise("double", lambda x: x ** 2, reference, CASES,
                       mistakes=[(lambda x: x ** 2, "you squared")])


def test_unknown_mistake_says_where():
    with pytest.raises(AssertionError, match=r"output 0 is wrong on case 1 .*index \(1,\)"):
        check_exercise("double", lambda x: 2 * x + (np.arange(x.size) == 1), reference, CASES)


def test_shape_and_none_and_count_hints():
    with pytest.raises(AssertionError, match=r"shape \(1, 3\), expected \(3,\)"):
        check_exercise("double", lambda x: 2 * x[None], reference, CASES)
    with pytest.raises(AssertionError, match="did you forget `return`"):
        check_exercise("double", lambda x: None, reference, CASES)
    with pytest.raises(AssertionError, match="expected 1 array"):
        check_exercise("double", lambda x: (2 * x, x), reference, CASES)


def test_a_number_answered_with_an_array_or_a_tuple_is_told_to_add_up():
    def count(t, s):                          # a count: one number
        return 2 * t * s

    cases = [(3, 4), (5, 2)]
    with pytest.raises(AssertionError, match=r"output 0 has shape \(2,\), expected one number, "
                                             r"of shape \(\) \(case 1, arguments t=3, s=4\): "
                                             r"if you computed it in parts, add them up"):
        check_exercise("count", lambda t, s: np.array([t * s, t * s]), count, cases)
    with pytest.raises(AssertionError, match="expected one number, got 2: if you computed"):
        check_exercise("count", lambda t, s: (t * s, t * s), count, cases)
    with pytest.raises(AssertionError, match=r"shape \(1, 1\), expected one number.*inside "
                                             r"an array; take it out with \.item\(\)"):
        check_exercise("count", lambda t, s: np.full((1, 1), 2 * t * s), count, cases)


def test_attempt_modifying_its_input_does_not_fool_the_check():
    def sneaky(x):
        x *= 2
        return x

    check_exercise("double", sneaky, reference, CASES)   # right answer: passes
    assert np.array_equal(CASES[0][0], np.arange(3.0))  # and the case is intact


def test_a_crash_is_reported_as_a_wrong_answer():
    def crashes(x):
        return x @ np.ones((5, 5))

    with pytest.raises(AssertionError, match=r"double: your function raised ValueError on case 1"):
        check_exercise("double", crashes, reference, CASES)


def test_wrong_boolean_answers_get_a_location_not_a_crash():
    cases = [(np.array([0.0, 1.0, 2.0]),)]
    with pytest.raises(AssertionError, match=r"output 0 is wrong .*index \(0,\)"):
        check_exercise("positive", lambda x: x >= 0, lambda x: x > 0, cases)


def test_non_numeric_answers_are_refused():
    with pytest.raises(AssertionError, match="expected numbers"):
        check_exercise("double", lambda x: np.array(["a"] * x.size), reference, CASES)


def test_a_mistake_already_ruled_out_gives_no_hint():
    # the attempt is right on case 1, so "you squared" (wrong on case 1) cannot be its bug
    cases = [(np.array([0.0, 2.0]),), (np.array([3.0]),)]

    def right_then_wrong(x):
        return x ** 2 if x.size == 1 else 2 * x

    def squared_only_on_first_case(x):
        return x ** 2 if x.size == 1 else x ** 2 + 1

    with pytest.raises(AssertionError, match="double: you squared"):
        check_exercise("double", right_then_wrong, reference, cases,
                       mistakes=[(lambda x: x ** 2, "you squared")])
    with pytest.raises(AssertionError, match="output 0 is wrong on case 2") as caught:
        check_exercise("double", right_then_wrong, reference, cases,
                       mistakes=[(squared_only_on_first_case, "you squared")])
    assert "squared" not in str(caught.value)


def test_every_failure_is_an_exercise_error_naming_the_exercise():
    from attention_from_scratch.exercises import ExerciseError

    with pytest.raises(ExerciseError) as caught:
        check_exercise("Exercise 7 (double)", lambda x: 3 * x, reference, CASES)
    assert caught.value.exercise == "Exercise 7 (double)"
    assert caught.value.message.startswith("output 0 is wrong on case 1")


def test_a_forward_pair_returned_whole_is_named_before_anything_else():
    from typing import NamedTuple

    class Cache(NamedTuple):
        x: np.ndarray
        axis: int

    with pytest.raises(AssertionError, match=r"double: your function returned a tuple of 2 "
                                             r"items \(ndarray, Cache\), where one array "
                                             r"belongs.*\(out, cache\)"):
        check_exercise("double", lambda x: (2 * x, Cache(x, -1)), reference, CASES)


@pytest.mark.parametrize(("body", "says"), [
    (lambda x: (2 * x, ("cache",)) @ np.eye(x.shape[-1]), "a tuple or list was used"),
    (lambda x: (2 * x, x).T, "a tuple or list was used"),
    (lambda x: None * x, "a value was None"),
])
def test_a_wrong_type_inside_the_answer_is_named_first(body, says):
    with pytest.raises(AssertionError, match=f"double: {says}"):
        check_exercise("double", body, reference, CASES)


def test_a_crash_quotes_the_learners_line():
    def crashes(x):
        doubled = 2 * x
        return doubled @ np.ones((7, 7))

    with pytest.raises(AssertionError) as caught:
        check_exercise("double", crashes, reference, CASES)
    assert caught.value.message.endswith(
        "It happened in `crashes`, at `return doubled @ np.ones((7, 7))`.")


def test_floating_point_warnings_do_not_crash_the_check():
    # 0/0 warns (an error under this suite's settings); the NaN it leaves is judged
    cases = [(np.array([0.0, 1.0]),)]
    with pytest.raises(AssertionError, match="output 0 holds NaN on case 1"):
        check_exercise("half", lambda x: x / x * x / 2, lambda x: x / 2, cases)
    with pytest.raises(AssertionError, match="you divided by zero"):
        check_exercise("half", lambda x: x / 0, lambda x: x / 2, cases,
                       mistakes=[(lambda x: x / 0, "you divided by zero")])


def test_a_probe_names_a_mistake_that_only_runs_when_sizes_coincide():
    def add_mean(x, b):
        return x + b.mean()

    def add_all(x, b):                    # runs only when b is as wide as x
        return x + b

    cases = [(np.ones((2, 3)), np.arange(4.0))]
    with pytest.raises(AssertionError, match="your function raised ValueError"):
        check_exercise("bias", add_all, add_mean, cases, mistakes=[(add_all, "add its mean")])
    with pytest.raises(AssertionError, match="^bias: add its mean$"):
        check_exercise("bias", add_all, add_mean, cases, mistakes=[(add_all, "add its mean")],
                       probes=[(np.ones((2, 4)), np.arange(4.0))])


def test_a_dict_where_a_tuple_belongs_is_named():
    def reference(x):
        return x, 2 * x

    def as_dict(x):
        return {"a": x, "b": 2 * x}

    with pytest.raises(AssertionError, match="returned a dict; return the 2 arrays as a tuple"):
        check_exercise("Exercise X", as_dict, reference, [(np.arange(3.0),)])


@pytest.mark.parametrize("dtype, hint", [
    (int, "is an array of int(32|64), so its fractions are cut"),
    (np.float32, "is float32, whose round-off"),
])
def test_an_integer_or_float32_answer_gets_a_dtype_hint(dtype, hint):
    def reference(x):
        return np.sin(x)

    def in_dtype(x):
        return np.sin(x).astype(dtype)

    with pytest.raises(AssertionError, match=hint):
        check_exercise("Exercise X", in_dtype, reference, [(np.linspace(0.1, 3.0, 7),)],
                       rtol=1e-10, atol=1e-12)


def test_a_case_names_short_strs_bools_and_integer_arrays_by_value():
    def pad(lengths, positions, weights, side, causal, label):
        return np.where(lengths[:, None] > 0, weights, 0.0)

    cases = [(np.array([2, 0, 3]), np.arange(9), np.array([0.5, 1.5, 2.5]), "left", True,
              "a label much longer than a short value")]
    with pytest.raises(AssertionError) as caught:
        check_exercise("pad", lambda *args: pad(*args) + 1, pad, cases)
    # the str and the bool by value, the short int array by its values; the
    # long int array, the float array and the long str as before
    assert ("case 1 (arguments lengths=[2, 0, 3], positions of shape (9,), weights of shape "
            "(3,), side='left', causal=True, label (a str)):") in str(caught.value)


def test_a_short_bool_array_is_named_by_its_values_and_a_2d_one_by_its_shape():
    def count(mask, table):
        return mask.sum() + table.sum()

    cases = [(np.array([True, False]), np.ones((2, 2), dtype=int))]
    with pytest.raises(AssertionError, match=re.escape("arguments mask=[True, False], table of "
                                                       "shape (2, 2))")):
        check_exercise("count", lambda mask, table: count(mask, table) + 1, count, cases)


@pytest.mark.parametrize("passed, described", [
    (np.zeros((2, 3)), "an array of shape (2, 3)"),
    ((np.zeros(2), np.zeros(2)), "a tuple of 2 items (ndarray, ndarray)"),
    (None, "None"),
])
def test_a_result_passed_in_place_of_the_function_is_named(passed, described):
    with pytest.raises(ExerciseError) as caught:
        check_exercise("double", passed, reference, CASES)
    assert caught.value.message == ("pass the function itself, `check_...(my_function)`, not "
                                    f"what it returns (you passed {described})")


def reaches_tril(function):
    return any(obj is np.tril for obj in code_objects(function))


def test_a_closure_variable_not_yet_assigned_is_read_as_nothing():
    def make():
        def attempt(x):
            return later(np.tril(x))
        found = reaches_tril(attempt)   # `later` is still an empty cell here
        later = np.asarray
        return found, reaches_tril(attempt)

    assert make() == (True, True)


class AnswersEveryAttribute:
    def __getattr__(self, name):
        return lambda *args: None


class PosesAsAFunction:
    """A real code object, but none of a function's other attributes."""
    __code__ = (lambda x: np.tril(x)).__code__


@pytest.mark.parametrize("odd", [AnswersEveryAttribute(), PosesAsAFunction()])
def test_an_object_posing_as_a_function_is_read_as_nothing(odd):
    assert code_objects(odd) == []
    assert reaches_tril(lambda x: np.tril(odd(x)))   # read as a helper of this module


def test_a_local_module_alias_is_seen_when_two_locals_load_at_once():
    # Python 3.13 loads g and m with one instruction (LOAD_FAST_LOAD_FAST)
    def alias_loaded_with_another(t):
        m = np
        g = np.ones((t, t), bool)
        return np.logical_and(g, m.tril(g))

    def alias_stored_with_another(x):
        k, m = -1, np                   # one STORE_FAST_STORE_FAST on 3.13
        return m.tril(x, k)

    assert reaches_tril(alias_loaded_with_another)
    assert reaches_tril(alias_stored_with_another)


def test_a_partial_counts_as_the_function_it_wraps():
    lower = functools.partial(functools.partial(np.tril), k=-1)
    assert reaches_tril(lambda x: lower(x))


@pytest.mark.parametrize("stack", [np.concatenate, np.vstack, np.hstack, np.stack])
def test_a_stack_of_arrays_that_do_not_fit_is_a_shape_refusal(stack):
    with pytest.raises(ValueError) as refused:
        stack([np.ones((2, 3)), np.ones((3, 4))])
    assert refuses_shapes(refused.value)
