"""Exercises that check themselves.

Each chapter's module (``chapter00`` ...) defines ``check_*`` functions
built on :func:`check_exercise`: it runs the learner's function on hidden
random cases against the package's reference and

- prints ``not attempted yet`` while the stub raises ``NotImplementedError``,
- prints a pass line when every case matches,
- raises ``AssertionError`` with a specific hint when one does not. When the
  wrong answer equals a known mistake (a planted wrong implementation), the
  hint names that mistake.
"""

import copy
import inspect
import numbers
import types

import numpy as np

from attention_from_scratch.checking.gradcheck import flat_arrays


def _same(got, expected, rtol, atol):
    return len(got) == len(expected) and all(
        g.shape == e.shape and np.allclose(g, e, rtol=rtol, atol=atol)
        for g, e in zip(got, expected, strict=True)
    )


def _describe(reference, args):
    """A case as messages name it: the values when every argument is a
    number (``b=3, t=4``), else the arrays' shapes."""
    if args and all(isinstance(a, numbers.Real) for a in args):
        names = list(inspect.signature(reference).parameters)[:len(args)]
        if len(names) < len(args):
            names = [f"argument {i}" for i in range(len(args))]
        return "arguments " + ", ".join(f"{n}={a}" for n, a in zip(names, args, strict=True))
    return f"input shapes {[np.shape(a) for a in args if not isinstance(a, dict)]}"


def check_exercise(name, attempt, reference, cases, *, mistakes=(),
                   rtol=1e-6, atol=1e-9):
    """Check ``attempt`` against ``reference`` on every case.

    Parameters
    ----------
    name : str
        The exercise, as the learner sees it.
    attempt, reference : callable
        The learner's function and the right answer, same signature.
    cases : list of tuple
        Positional arguments, one tuple per hidden case. Each call gets a
        deep copy, so an attempt that modifies its inputs cannot spoil the
        comparison.
    mistakes : sequence of (callable, str)
        Known wrong implementations and the hint to give when the attempt
        matches one of them.
    rtol, atol : float
        Tolerances of the comparison.

    Raises
    ------
    AssertionError
        With a hint, when the attempt is wrong.
    """
    for number, args in enumerate(cases, start=1):
        case = _describe(reference, args)
        try:
            result = attempt(*copy.deepcopy(args))
        except NotImplementedError:
            print(f"{name}: not attempted yet")
            return
        except AssertionError:
            raise
        except Exception as error:   # a crash is a wrong answer: say so, with the case
            raise AssertionError(
                f"{name}: your function raised {type(error).__name__} on case {number} "
                f"({case}): {error}"
            ) from error
        if result is None:
            raise AssertionError(f"{name}: your function returned None; "
                                 "did you forget `return`?")
        expected = flat_arrays(reference(*copy.deepcopy(args)))
        got = flat_arrays(result)
        if any(g.dtype.kind not in "biuf" for g in got):
            raise AssertionError(
                f"{name}: expected numbers, got arrays of dtype "
                f"{[str(g.dtype) for g in got]}"
            )
        wrong_outputs = [flat_arrays(wrong(*copy.deepcopy(args))) for wrong, _ in mistakes]
        if _same(got, expected, rtol, atol):
            # a mistake that differs from the right answer here cannot be the
            # attempt's: drop it, so a later failure gets no misleading hint
            mistakes = [m for m, out in zip(mistakes, wrong_outputs, strict=True)
                        if _same(out, expected, rtol, atol)]
            continue
        for (_, hint), wrong_output in zip(mistakes, wrong_outputs, strict=True):
            if _same(got, wrong_output, rtol, atol):
                raise AssertionError(f"{name}: {hint}")
        if len(got) != len(expected):
            raise AssertionError(
                f"{name}: expected {len(expected)} array(s), got {len(got)}"
            )
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            if g.shape != e.shape:
                raise AssertionError(
                    f"{name}: output {i} has shape {g.shape}, expected {e.shape} "
                    f"(case {number}, {case}); check which axis "
                    "you sum over or transpose"
                )
            if not np.allclose(g, e, rtol=rtol, atol=atol):
                err = np.abs(g.astype(float) - e.astype(float))   # booleans too
                where = np.unravel_index(np.argmax(err), err.shape)
                raise AssertionError(
                    f"{name}: output {i} is wrong on case {number} ({case}): "
                    f"largest error {err.max():.3g} at index "
                    f"{tuple(int(j) for j in where)}"
                )
    print(f"✓ {name}: correct on {len(cases)} hidden cases")


def code_names(function):
    """The names the code of ``function`` uses, not those in its comments.

    Global and attribute names (``np.tril`` gives ``"np"`` and ``"tril"``),
    the real ``__name__`` of what a global or closure variable holds (so
    ``lower = np.tril`` still gives ``"tril"``), and the same for nested
    functions and for helper functions defined in the learner's module.
    Names that only a docstring or comment mentions do not count. A
    checker uses it to refuse a shortcut the exercise forbids.

    Examples
    --------
    >>> def f(x):
    ...     "Not np.tril."
    ...     return np.triu(x)   # nor np.tri
    >>> sorted(code_names(f))
    ['np', 'triu']
    """
    names, seen, todo = set(), set(), [function]
    while todo:
        fn = todo.pop()
        code = getattr(fn, "__code__", None)
        if code is None or fn in seen:
            continue
        seen.add(fn)
        codes = [code]
        for c in codes:
            names.update(c.co_names)
            codes.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
        held = [fn.__globals__[n] for n in names if n in fn.__globals__]
        held += [cell.cell_contents for cell in fn.__closure__ or ()]
        for obj in held:
            if getattr(obj, "__module__", None) == function.__module__:
                todo.append(obj)                # the learner's own helper
            elif callable(obj) and isinstance(getattr(obj, "__name__", None), str):
                names.add(obj.__name__)
    return names


def boolean_result(name, attempt):
    """Wrap ``attempt`` so that a mask that is not boolean gets its own hint.

    A mask of 0s and 1s (or floats) compares equal to the right booleans
    in ``np.allclose``, yet the package's attention refuses it; the wrapper
    raises ``AssertionError`` with a hint before the comparison.

    Examples
    --------
    >>> boolean_result("mask", lambda t: np.eye(t, dtype=bool))(3).dtype == np.bool_
    True
    """
    def checked(*args):
        result = attempt(*args)
        if result is not None and np.asarray(result).dtype != np.bool_:
            raise AssertionError(
                f"{name}: return a boolean array (True = may attend), got dtype "
                f"{np.asarray(result).dtype}; a comparison such as a <= b gives "
                "booleans directly")
        return result
    return checked
