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

import numpy as np

from attention_from_scratch.gradcheck import flat_arrays


def _same(got, expected, rtol, atol):
    return len(got) == len(expected) and all(
        g.shape == e.shape and np.allclose(g, e, rtol=rtol, atol=atol)
        for g, e in zip(got, expected, strict=True)
    )


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
        try:
            result = attempt(*copy.deepcopy(args))
        except NotImplementedError:
            print(f"{name}: not attempted yet")
            return
        if result is None:
            raise AssertionError(f"{name}: your function returned None; "
                                 "did you forget `return`?")
        expected = flat_arrays(reference(*copy.deepcopy(args)))
        got = flat_arrays(result)
        if _same(got, expected, rtol, atol):
            continue
        for wrong, hint in mistakes:
            if _same(got, flat_arrays(wrong(*copy.deepcopy(args))), rtol, atol):
                raise AssertionError(f"{name}: {hint}")
        shapes_in = [np.shape(a) for a in args if not isinstance(a, dict)]
        if len(got) != len(expected):
            raise AssertionError(
                f"{name}: expected {len(expected)} array(s), got {len(got)}"
            )
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            if g.shape != e.shape:
                raise AssertionError(
                    f"{name}: output {i} has shape {g.shape}, expected {e.shape} "
                    f"(case {number}, input shapes {shapes_in}); check which axis "
                    "you sum over or transpose"
                )
            if not np.allclose(g, e, rtol=rtol, atol=atol):
                err = np.abs(g - e)
                where = np.unravel_index(np.argmax(err), err.shape)
                raise AssertionError(
                    f"{name}: output {i} is wrong on case {number} (input shapes "
                    f"{shapes_in}): largest error {err.max():.3g} at index "
                    f"{tuple(int(j) for j in where)}"
                )
    print(f"✓ {name}: correct on {len(cases)} hidden cases")
