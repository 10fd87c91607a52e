"""Every exercise checker rejects near misses, runs every hidden case, and
can give every hint it holds.

The checkers are found by name (every ``check_*`` of every chapter's
module), and what each one hands to :func:`check_exercise` — its
reference, hidden cases and planted mistakes — is recorded by a spy, so a
checker added later is covered without editing this file.
"""

import copy
import importlib
import pkgutil

import numpy as np
import pytest

from attention_from_scratch import exercises
from attention_from_scratch.exercises import ExerciseError, chapter07

MODULES = [importlib.import_module(f"attention_from_scratch.exercises.{info.name}")
           for info in sorted(pkgutil.iter_modules(exercises.__path__), key=lambda i: i.name)
           if info.name.startswith("chapter")]
# check_bug_hunt takes a str, not a function with hidden cases: its own tests cover it
CHECKERS = [getattr(module, name) for module in MODULES for name in sorted(vars(module))
            if name.startswith("check_") and name not in ("check_exercise", "check_bug_hunt")]


def _id(check):
    return f"{check.__module__.rsplit('.', 1)[-1]}.{check.__name__}"


def not_attempted(*args, **kwargs):
    raise NotImplementedError


def record(check, monkeypatch):
    """What ``check`` passes to check_exercise: name, reference, cases, mistakes."""
    calls = []

    def spy(name, attempt, reference, cases, **kwargs):
        calls.append((name, reference, cases, kwargs.get("mistakes", ())))
        return exercises.check_exercise(name, attempt, reference, cases, **kwargs)

    monkeypatch.setattr(importlib.import_module(check.__module__), "check_exercise", spy)
    check(not_attempted)
    monkeypatch.undo()
    assert len(calls) == 1
    return calls[0]


def _same_args(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _same_args(a[key], b[key]) for key in a)
    if isinstance(a, np.ndarray | np.generic) or isinstance(b, np.ndarray | np.generic):
        return np.shape(a) == np.shape(b) and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same_args(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__code__"):                   # a lambda made anew by each check call
        return getattr(b, "__code__", None) == a.__code__
    return a is b or a == b


def _case_of(args, cases):
    return next((i for i, case in enumerate(cases) if _same_args(args, case)), None)


def _outputs(result):
    return list(result) if isinstance(result, tuple) else [result]


def _near_miss(value):
    """``value`` off by a relative 1e-3; a boolean array gets one entry flipped."""
    value = np.asarray(value)
    if value.dtype == np.bool_:
        flipped = value.copy()
        flipped.flat[0] = not flipped.flat[0]
        return flipped
    return value * (1 + 1e-3)


def hidden(function):
    """``function`` behind a list, so that the refusal of mask builders
    (which reads the names an attempt's code uses) does not see it.

    A checker may pass keyword arguments (``n_heads=``); they reach
    ``function`` as positional ones, in order, as the cases hold them.
    """
    held = [function]
    return lambda *args, **kwargs: held[0](*args, *kwargs.values())


@pytest.mark.parametrize("check", CHECKERS, ids=_id)
def test_every_hidden_case_runs_and_is_counted(check, monkeypatch, capsys):
    name, reference, cases, _ = record(check, monkeypatch)
    capsys.readouterr()
    seen = set()

    def attempt(*args):
        seen.add(_case_of(args, cases))
        return reference(*args)

    check(hidden(attempt))
    assert capsys.readouterr().out == f"✓ {name}: correct on {len(cases)} hidden cases\n"
    assert seen - {None} == set(range(len(cases)))
    assert len(cases) >= 3


@pytest.mark.parametrize("check", CHECKERS, ids=_id)
def test_the_reference_off_by_a_near_miss_is_rejected_on_every_case(check, monkeypatch):
    name, reference, cases, _ = record(check, monkeypatch)
    n_outputs = len(_outputs(reference(*copy.deepcopy(cases[0]))))
    for case in range(len(cases)):
        for output in range(n_outputs):
            def attempt(*args, case=case, output=output):
                result = reference(*args)
                if _case_of(args, cases) != case:
                    return result
                parts = _outputs(result)
                parts[output] = _near_miss(parts[output])
                return tuple(parts) if isinstance(result, tuple) else parts[0]

            with pytest.raises(ExerciseError) as caught:
                check(hidden(attempt))
            assert caught.value.exercise == name


def _hints(check, monkeypatch):
    _, _, _, mistakes = record(check, monkeypatch)
    return mistakes


@pytest.mark.parametrize("check", CHECKERS, ids=_id)
def test_every_planted_mistake_gets_its_own_hint(check, monkeypatch):
    mistakes = _hints(check, monkeypatch)
    unreachable = []
    for wrong, hint in mistakes:
        try:
            check(hidden(wrong))
        except ExerciseError as error:
            if error.message != hint:
                unreachable.append((wrong.__name__, error.message))
        else:
            unreachable.append((wrong.__name__, "accepted"))
    assert unreachable == []


# what a learner passes when they call their function instead of passing it:
# an array, a forward's pair (out, cache), a number, and the None of a
# function without `return`
NOT_FUNCTIONS = {"array": (np.zeros((3, 5)), "an array of shape (3, 5)"),
                 "pair": ((np.zeros(2), {}), "a tuple of 2 items (ndarray, dict)"),
                 "number": (0.5, "a float"),
                 "None": (None, "None")}


@pytest.mark.parametrize("passed", NOT_FUNCTIONS, ids=str)
@pytest.mark.parametrize("check", [*CHECKERS, chapter07.check_bug_hunt], ids=_id)
def test_a_result_passed_instead_of_the_function_is_named(check, passed, monkeypatch):
    value, described = NOT_FUNCTIONS[passed]
    name = ("Exercise 4 (find the bug)" if check is chapter07.check_bug_hunt
            else record(check, monkeypatch)[0])
    with pytest.raises(ExerciseError) as caught:
        check(value)
    assert caught.value.exercise == name
    assert caught.value.message == ("pass the function itself, `check_...(my_function)`, not "
                                    f"what it returns (you passed {described})")


def test_every_chapter_has_checkers_that_the_guards_run_on():
    chapters = {check.__module__.rsplit(".", 1)[-1] for check in CHECKERS}
    assert chapters == {f"chapter{n:02d}" for n in range(8)}
