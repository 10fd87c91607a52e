"""Exercises that check themselves.

Each chapter's module (``chapter00`` ...) defines ``check_*`` functions
built on :func:`check_exercise`: it runs the learner's function on hidden
random cases against the package's reference and

- prints ``not attempted yet`` while the stub raises ``NotImplementedError``,
- prints a pass line when every case matches,
- raises :class:`ExerciseError` (an ``AssertionError``) with a specific
  hint when one does not. When the wrong answer equals a known mistake (a
  planted wrong implementation), the hint names that mistake.
- raises it, too, when it is handed something other than a function: the
  result of calling one, ``check_x(my_function(q, k))``.

An :class:`ExerciseError` shows itself, in Jupyter and in nbval's report,
as one short block: the exercise, what went wrong and the hint. The
checker's source and its hidden cases stay off the screen.
"""

import copy
import dis
import functools
import inspect
import numbers
import re
import sys
import textwrap
import traceback
import types
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from attention_from_scratch.checking.gradcheck import flat_arrays

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# a case names a str, or a 1-D array of integers, by its value up to these
# lengths, so that a learner sees which case failed; beyond, by its kind or shape
_SHORT_STR = 24
_SHORT_ARRAY = 8


class ExerciseError(AssertionError):
    """A wrong answer: which exercise, and the hint.

    IPython shows an exception through its ``_render_traceback_`` method
    when it has one, and nbval reports what IPython showed; so a learner
    sees the block below, not the checker's code.

    Examples
    --------
    >>> error = ExerciseError("Exercise 1 (double)", "you squared")
    >>> str(error)
    'Exercise 1 (double): you squared'
    >>> print("\\n".join(error._render_traceback_()))
    ✗ Exercise 1 (double) is not right yet
      you squared
    """

    def __init__(self, exercise, message):
        super().__init__(f"{exercise}: {message}")
        self.exercise = exercise
        self.message = message

    def _render_traceback_(self):
        lines = [f"✗ {self.exercise} is not right yet"]
        for paragraph in self.message.split("\n"):
            lines += textwrap.wrap(paragraph, 88, initial_indent="  ", subsequent_indent="  ",
                                   break_on_hyphens=False) or [""]
        return lines


def wrong_type_hint(error):
    """The hint for an exception that says a value had the wrong type, or None.

    NumPy meets a tuple where an array belongs most often because a
    forward function's ``(out, cache)`` was used whole; it says so in
    words about sequences and inhomogeneous shapes, which read like a
    shape problem (the package's own input checks say "a pair (out,
    cache)"). This names the real one.
    """
    text = str(error)
    if isinstance(error, ValueError) and ("inhomogeneous" in text
                                          or "setting an array element with a sequence" in text
                                          or "got a pair (out, cache)" in text):
        found = "a tuple or list was used where an array belongs"
    elif isinstance(error, (TypeError, AttributeError)) and ("'tuple'" in text
                                                             or "'list'" in text):
        found = "a tuple or list was used where an array belongs"
    elif isinstance(error, (TypeError, AttributeError)) and "'NoneType'" in text:
        return ("a value was None where an array belongs: does a helper function of yours "
                "end without `return`?")
    else:
        return None
    return (f"{found}. The package's forward functions return a pair (out, cache): unpack "
            "it, e.g. `weights, _ = softmax_forward(scores)`, and use the array. (The error "
            f"was: {text})")


# NumPy's words when the shapes of a product, a sum or a stack do not fit
_SHAPE_REFUSALS = ("could not be broadcast", "non-broadcastable",
                   "mismatch in its core dimension", "not aligned",
                   "must have the same shape", "must match exactly")


def refuses_shapes(error):
    """Whether ``error`` is NumPy refusing shapes that do not fit.

    Other ``ValueError``s (Python's ``max`` on an array, an einsum
    subscript that no input has) are not about shapes.

    Examples
    --------
    >>> try:
    ...     np.ones((2, 3)) @ np.ones((2, 3))
    ... except ValueError as error:
    ...     print(refuses_shapes(error))
    True
    >>> try:
    ...     np.concatenate([np.ones((2, 3)), np.ones((2, 4))])
    ... except ValueError as error:
    ...     print(refuses_shapes(error))
    True
    """
    return isinstance(error, ValueError) and any(words in str(error)
                                                 for words in _SHAPE_REFUSALS)


def truth_value_hint(error, *, of_scores=False):
    """The hint for Python's ``max``, ``if`` or ``and`` on an array, or None.

    Python's ``max`` of a 2-D array compares whole rows, and NumPy
    refuses to make one True or False of an array. With ``of_scores``
    the hint names the row maximum of scores, what such a ``max`` is
    most often meant to be.

    Examples
    --------
    >>> try:
    ...     max(np.ones((2, 3)))
    ... except ValueError as error:
    ...     print(truth_value_hint(error).startswith("Python's own max"))
    True
    """
    if not isinstance(error, ValueError) or "truth value of an array" not in str(error):
        return None
    use = ("for the largest score in each row use NumPy's, "
           "scores.max(axis=-1, keepdims=True)" if of_scores
           else "use NumPy's, e.g. a.max(axis=-1), or .any() and .all()")
    return ("Python's own max, min, `if` and `and` want one True or False, and "
            f"comparing arrays gives one per entry: {use}")


def shapes_in(text):
    """The shapes a NumPy message names, in order.

    Examples
    --------
    >>> shapes_in("shapes (4,2) (4,4) ")
    [(4, 2), (4, 4)]
    """
    return [tuple(int(n) for n in inside.split(",") if n.strip())
            for inside in re.findall(r"\(([\d,\s]*)\)", text)]


def _shapes_of(args):
    """The shapes of the arrays among ``args``, and inside dicts among them."""
    values = [v for a in args for v in (a.values() if isinstance(a, Mapping) else [a])]
    return {v.shape for v in values if isinstance(v, np.ndarray)}


def _table_hint(n):
    return (f"NumPy built a ({n}, {n}) table that none of the inputs has: an array of shape "
            f"({n},) met a column of shape ({n}, 1) (from keepdims=True or [:, None]), and "
            f"broadcasting paired each of its {n} numbers with each of the {n} rows. Keep a "
            f"per-row quantity in one shape all the way: ({n},) everywhere, or ({n}, 1) "
            "everywhere")


def broadcast_hint(error, args):
    """The hint for NumPy's refusal to broadcast shapes, or None.

    Two slips with one number per row give most of these refusals:

    - an ``(N,)`` array and an ``(N, 1)`` column (one side with
      ``keepdims=True``) broadcast without complaint into an ``(N, N)``
      table, which crashes a line later against an ``(N, S)`` array;
    - an ``(N,)`` array meets an ``(N, S)`` one: NumPy aligns shapes from
      the right, so it lands on the ``S`` axis, not on the rows.

    ``args`` are the case's arguments. The first slip is named only when
    one of them holds one number per row, shape ``(N,)``, and none has
    an ``(N, N)`` array: a square that self-attention's scores or an
    input can have is no sign of it.

    Examples
    --------
    >>> error = ValueError("operands could not be broadcast together with "
    ...                    "shapes (4,2) (4,) ")
    >>> "make it a column of shape (4, 1)" in broadcast_hint(error, ())
    True
    """
    text = str(error)
    if not isinstance(error, ValueError) or ("could not be broadcast" not in text
                                             and "non-broadcastable" not in text):
        return None
    shapes = shapes_in(text)
    given = _shapes_of(args)
    squares = {shape[-2:] for shape in given if len(shape) >= 2}
    for shape in shapes:
        if (len(shape) >= 2 and shape[-1] == shape[-2] and shape[-2:] not in squares
                and shape[-1:] in given):
            return _table_hint(shape[-1])
    for one in shapes:
        for other in shapes:
            if len(one) == 1 and len(other) >= 2 and one[0] == other[-2] != other[-1]:
                n = one[0]
                return (f"NumPy aligns shapes from the right, so an array of shape ({n},) "
                        f"meets the last axis of {other}, not its {n} rows: to use one "
                        f"number per row, make it a column of shape ({n}, 1), with "
                        "keepdims=True in the max or sum, or [:, None]")
    return None


def _where_in_your_code(error):
    """Which function of the learner's raised, and its line; '' if unknown.

    The last frame of the traceback outside this package and outside
    installed libraries (NumPy's own frames) is the learner's.
    """
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not Path(frame.filename).resolve().is_relative_to(_PACKAGE_DIR)
              and "site-packages" not in frame.filename
              and not frame.filename.startswith("<frozen")]
    if not frames or not frames[-1].line:
        return ""
    frame = frames[-1]
    return f"It happened in `{frame.name}`, at `{frame.line.strip()}`."


def describe_value(value):
    """A value as a message names it: its kind, and for a tuple or list
    its length and the kinds of its first items.

    Examples
    --------
    >>> describe_value((np.zeros(3), (3,)))
    'a tuple of 2 items (ndarray, tuple)'
    """
    if isinstance(value, tuple | list):
        kinds = ", ".join(type(v).__name__ for v in value[:4])
        return f"a {type(value).__name__} of {len(value)} items ({kinds})"
    return f"a {type(value).__name__}"


def require_function(name, attempt):
    """Raise :class:`ExerciseError` unless ``attempt`` can be called.

    ``check_x(my_function(q, k))`` hands the checker what the function
    returned, an array say, and the first call would end in "object is
    not callable". :func:`check_exercise` asks this of its ``attempt``; a
    checker that wraps the learner's function in one of its own asks it
    first, since the wrapper is callable whatever it holds.

    Examples
    --------
    >>> require_function("Exercise 1 (double)", lambda x: 2 * x)
    >>> try:
    ...     require_function("Exercise 1 (double)", np.zeros((3, 5)))
    ... except ExerciseError as error:
    ...     print(error.message.endswith("(you passed an array of shape (3, 5))"))
    True
    """
    if callable(attempt):
        return
    passed = ("None" if attempt is None
              else f"an array of shape {attempt.shape}" if isinstance(attempt, np.ndarray)
              else describe_value(attempt))
    raise ExerciseError(name, "pass the function itself, `check_...(my_function)`, not what "
                              f"it returns (you passed {passed})")


def _same(got, expected, rtol, atol):
    return got is not None and expected is not None and len(got) == len(expected) and all(
        g.shape == e.shape and np.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        for g, e in zip(got, expected, strict=True)
    )


def _describe(reference, args):
    """A case as messages name it, each argument by the reference's name
    for it: a number, a bool or a short str by its value (``b=3``,
    ``side='left'``), a short 1-D array of integers or bools by its values
    (``lengths=[2, 0, 3]``), any other array by its shape (``h of shape
    (2, 4, 6)``), anything else by its kind (``params (a dict)``)."""
    names = list(inspect.signature(reference).parameters)[:len(args)]
    if len(names) < len(args):
        names = [f"argument {i}" for i in range(len(args))]

    def one(name, value):
        if isinstance(value, numbers.Real | np.bool_):
            return f"{name}={value}"
        if isinstance(value, str) and len(value) <= _SHORT_STR:
            return f"{name}={value!r}"
        if isinstance(value, np.ndarray) and value.dtype.kind in "biu" and (
                value.ndim <= 1 and value.size <= _SHORT_ARRAY):
            return f"{name}={value.tolist()}"
        if isinstance(value, np.ndarray):
            return f"{name} of shape {value.shape}"
        return f"{name} ({describe_value(value)})"

    return "arguments " + ", ".join(one(n, a) for n, a in zip(names, args, strict=True))


def _outputs(function, args):
    """``flat_arrays(function(*args))`` on a copy of ``args``; None if it raises.

    A planted mistake may not run on every case (a shape that only fits
    when two sizes coincide): then it is simply not the attempt's mistake.
    """
    try:
        with np.errstate(all="ignore"):
            return flat_arrays(function(*copy.deepcopy(args)))
    except Exception:                        # noqa: BLE001 - any failure rules it out
        return None


def _crash_hint(attempt, reference, probes, mistakes, rtol, atol):
    """Name a mistake from a probe case on which the crashing attempt runs."""
    for args in probes:
        try:
            with np.errstate(all="ignore"):
                got = flat_arrays(attempt(*copy.deepcopy(args)))
        except Exception:                    # noqa: BLE001 - it crashes here too
            continue
        if _same(got, _outputs(reference, args), rtol, atol):
            continue
        for wrong, hint in mistakes:
            if _same(got, _outputs(wrong, args), rtol, atol):
                return hint
    return None


def check_exercise(name, attempt, reference, cases, *, mistakes=(), probes=(),
                   rtol=1e-6, atol=1e-9, output_names=None, crash_hint=None):
    """Check ``attempt`` against ``reference`` on every case.

    Parameters
    ----------
    name : str
        The exercise, as the learner sees it: its number and name,
        e.g. ``"Exercise 2 (linear backward)"``.
    attempt, reference : callable
        The learner's function and the right answer, same signature.
    cases : list of tuple
        Positional arguments, one tuple per hidden case. Each call gets a
        deep copy, so an attempt that modifies its inputs cannot spoil the
        comparison. Floating-point warnings are silenced during the calls:
        a NaN or an overflow is judged by the output it leaves.
    mistakes : sequence of (callable, str)
        Known wrong implementations and the hint to give when the attempt
        matches one of them. A mistake that raises on a case matches
        nothing there.
    probes : sequence of tuple
        Extra arguments, used only when the attempt raises on a case: some
        mistakes (e.g. a bias of the wrong width) only run when two sizes
        coincide, and a probe with such sizes names them.
    rtol, atol : float
        Tolerances of the comparison.
    output_names : sequence of str, optional
        What the learner calls each output (e.g. ``("new_max", "new_sum")``),
        used in the messages instead of its number alone.
    crash_hint : callable, optional
        ``crash_hint(error, args)`` gives a hint (or None) for an attempt
        that raised ``error`` on the case ``args``, added after NumPy's
        or the package's own message; it comes before the shared
        :func:`broadcast_hint`.

    Raises
    ------
    ExerciseError
        With a hint, when the attempt is wrong, or is not a function at
        all (see :func:`require_function`).
    """
    require_function(name, attempt)
    for number, args in enumerate(cases, start=1):
        case = _describe(reference, args)
        try:
            with np.errstate(all="ignore"):
                result = attempt(*copy.deepcopy(args))
        except NotImplementedError:
            print(f"{name}: not attempted yet")
            return
        except ExerciseError:               # a wrapper's own hint, unless a probe names it
            hint = _crash_hint(attempt, reference, probes, mistakes, rtol, atol)
            if hint is None:
                raise
            raise ExerciseError(name, hint) from None
        except Exception as error:   # a crash is a wrong answer: say so, with the case
            hint = wrong_type_hint(error)
            if hint is None:
                named = _crash_hint(attempt, reference, probes, mistakes, rtol, atol)
                if named is not None:
                    raise ExerciseError(name, named) from None
                hint = (f"your function raised {type(error).__name__} on case {number} "
                        f"({case}): {str(error).strip()}")
                extra = ((crash_hint and crash_hint(error, args))
                         or broadcast_hint(error, args))
                if extra:
                    hint = f"{hint}{'' if hint.endswith('.') else '.'} {extra}"
            where = _where_in_your_code(error)
            if where:
                hint = f"{hint}{'' if hint.endswith('.') else '.'} {where}"
            raise ExerciseError(name, hint) from None
        if result is None:
            raise ExerciseError(name, "your function returned None; did you forget `return`?")
        wanted = reference(*copy.deepcopy(args))
        expected = flat_arrays(wanted)
        reference_is_one_array = len(expected) == 1
        if reference_is_one_array and isinstance(result, tuple) and any(
                hasattr(part, "_fields") for part in result):          # a cache
            raise ExerciseError(
                name, f"your function returned {describe_value(result)}, where one array "
                "belongs. If it comes from a forward function, that is the pair "
                "(out, cache): write `out, _ = ...` and return out")
        if isinstance(result, Mapping) and isinstance(wanted, tuple):
            raise ExerciseError(
                name, f"your function returned a dict; return the {len(expected)} arrays as a "
                "tuple, in the order the exercise lists them")
        try:
            got = flat_arrays(result)
        except Exception:            # noqa: BLE001 - NumPy cannot make arrays of it
            raise ExerciseError(
                name, f"your function returned {describe_value(result)}, which NumPy "
                "cannot turn into arrays (pieces of different shapes?); return "
                + ("one array" if reference_is_one_array
                   else f"{len(expected)} arrays, as a tuple")) from None
        if any(g.dtype.kind not in "biuf" for g in got):
            raise ExerciseError(name, "expected numbers, got arrays of dtype "
                                      f"{[str(g.dtype) for g in got]}")
        wrong_outputs = [_outputs(wrong, args) for wrong, _ in mistakes]
        if _same(got, expected, rtol, atol):
            # a mistake that differs from the right answer here cannot be the
            # attempt's: drop it, so a later failure gets no misleading hint
            mistakes = [m for m, out in zip(mistakes, wrong_outputs, strict=True)
                        if _same(out, expected, rtol, atol)]
            continue
        for (_, hint), wrong_output in zip(mistakes, wrong_outputs, strict=True):
            if _same(got, wrong_output, rtol, atol):
                raise ExerciseError(name, hint)
        if len(got) != len(expected):
            if expected[0].shape == () and len(expected) == 1:
                raise ExerciseError(name, f"expected one number, got {len(got)}: if you "
                                          "computed it in parts, add them up")
            raise ExerciseError(name, f"expected {len(expected)} array(s), got {len(got)}")
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            output = f"output {i}" if output_names is None else f"{output_names[i]} (output {i})"
            if g.shape != e.shape and e.shape == () and g.size == 1:
                raise ExerciseError(
                    name, f"{output} has shape {g.shape}, expected one number, of shape () "
                    f"(case {number}, {case}): the number is inside an array; take it out "
                    "with .item(), or drop keepdims=True")
            if g.shape != e.shape and e.shape == ():
                raise ExerciseError(
                    name, f"{output} has shape {g.shape}, expected one number, of shape () "
                    f"(case {number}, {case}): if you computed it in parts, add them up "
                    "(for an array, .sum())")
            if e.ndim == 1 and g.shape == e.shape * 2:
                raise ExerciseError(
                    name, f"{output} has shape {g.shape}, expected {e.shape} "
                    f"(case {number}, {case}). {_table_hint(e.shape[-1])}")
            if g.shape != e.shape:
                raise ExerciseError(
                    name, f"{output} has shape {g.shape}, expected {e.shape} "
                    f"(case {number}, {case}); check which axis you sum over or transpose")
            if np.isnan(g.astype(float)).any():
                raise ExerciseError(
                    name, f"{output} holds NaN on case {number} ({case}); look for "
                    "0/0, inf - inf or exp(-inf - (-inf))")
            if not np.allclose(g, e, rtol=rtol, atol=atol):
                if e.dtype.kind == "f" and g.dtype.kind in "biu":
                    raise ExerciseError(
                        name, f"{output} is an array of {g.dtype}, so its fractions are cut "
                        "off: build it as float64 (np.zeros(..., dtype=float), not dtype=int)")
                if e.dtype == np.float64 and g.dtype == np.float32:
                    raise ExerciseError(
                        name, f"{output} is float32, whose round-off is above this check's "
                        "tolerance: compute in float64")
                with np.errstate(invalid="ignore"):             # inf - inf where both agree
                    err = np.abs(g.astype(float) - e.astype(float))   # booleans too
                err = np.where(g == e, 0.0, err)
                where = np.unravel_index(np.argmax(err), err.shape)
                raise ExerciseError(
                    name, f"{output} is wrong on case {number} ({case}): "
                    f"largest error {err.max():.3g} at index "
                    f"{tuple(int(j) for j in where)}")
    print(f"✓ {name}: correct on {len(cases)} hidden cases")


def _reached(function):
    """What the code of ``function`` reaches, through the learner's helpers.

    Returns the names the code uses, and the objects that its global
    names and closure variables hold and that attribute chains on modules
    give (``np.tril``, ``masks.causal_mask``, a ``from m import f``
    inside the function). A helper is a function defined in the learner's
    module (that of ``function``): its code is read in turn, and it is
    not among the objects. A ``functools.partial`` counts as the function
    it wraps. Names that only a docstring or comment mentions do not
    count.

    What cannot be read counts as nothing found, never as an error: the
    checkers call this before they run the attempt, and a learner must
    get the attempt's own error, not a traceback of the checker.
    """
    names, held, seen, todo = set(), [], set(), [function]
    while todo:
        fn = todo.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        try:
            reached = _reached_by(fn, names)
        except (AttributeError, TypeError):
            # An object posing as a function (a __code__ of the right type
            # but no __globals__, a __closure__ that holds no cells) cannot
            # be read; the shortcut check then lets it pass, and running the
            # attempt judges it. These two are what reading an odd object's
            # attributes gives; an empty cell is handled by _cell_values, and
            # any other error is a bug here and must show.
            continue
        for obj in reached:
            while isinstance(obj, functools.partial):
                obj = obj.func                  # partial(np.tril) calls np.tril
            if getattr(obj, "__module__", None) == function.__module__:
                todo.append(obj)                # the learner's own helper
            else:
                held.append(obj)
                if callable(obj) and isinstance(getattr(obj, "__name__", None), str):
                    names.add(obj.__name__)
    return names, held


def _reached_by(fn, names):
    """The objects that ``fn``'s own code reaches (none when ``fn`` is not
    a function); adds the names it uses to ``names``."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return []
    codes = [code]
    for c in codes:
        names.update(c.co_names)
        codes.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
    reached = [fn.__globals__[n] for n in names if n in fn.__globals__]
    reached += [value for value in _cell_values(fn) if value is not None]
    reached += [obj for c in codes for obj in _through_modules(c, fn)]
    return reached


def _cell_values(fn):
    """What ``fn``'s closure cells hold, one per free variable; None for a
    cell not yet filled (a variable of the enclosing function assigned
    only after ``fn`` is defined and checked)."""
    values = []
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:                      # "Cell is empty"
            values.append(None)
    return values


# the instructions that store the top of the stack in a local name
_STORES = ("STORE_FAST", "STORE_NAME", "STORE_FAST_STORE_FAST", "STORE_FAST_LOAD_FAST")


def _through_modules(code, fn):
    """What ``code`` (``fn``'s, or a function nested in it) takes from
    modules: ``np.tril`` gives np.tril, ``from m import f`` gives m.f.

    Reads the bytecode: a module loaded by a global, closure or local
    name, or imported, and the attributes read from it one after another.
    """
    cells = dict(zip(fn.__code__.co_freevars, _cell_values(fn), strict=True))
    local_modules, importing, found = {}, [], []
    current, previous = None, None
    for ins in dis.get_instructions(code):
        op, arg = ins.opname, ins.argval
        stored = arg
        if isinstance(arg, tuple) and op.startswith(("LOAD_FAST", "STORE_FAST")):
            # Python 3.13 fuses two local loads or stores in one instruction:
            # a store puts the top of the stack in the first name, a load
            # pushes the last name on top
            stored, arg = arg
        value = None
        if op in _STORES and isinstance(current, types.ModuleType):
            local_modules[stored] = current
        if op in ("LOAD_GLOBAL", "LOAD_NAME"):
            value = fn.__globals__.get(arg)
        elif op == "LOAD_DEREF" and code is fn.__code__:
            value = cells.get(arg)
        elif op.startswith("LOAD_FAST") or op == "STORE_FAST_LOAD_FAST":
            value = local_modules.get(arg)
        elif op == "IMPORT_NAME":               # import a.b gives a; from a.b import gives a.b
            value = sys.modules.get(arg if previous is not None else arg.partition(".")[0])
            importing = [value]
        elif op == "IMPORT_FROM":
            value = next((vars(m)[arg] for m in reversed(importing)
                          if isinstance(m, types.ModuleType) and arg in vars(m)), None)
            importing.append(value)
        elif op in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(current, types.ModuleType):
            value = vars(current).get(arg)
        if value is not None and op in ("IMPORT_FROM", "LOAD_ATTR", "LOAD_METHOD"):
            found.append(value)
        if op not in ("SWAP", "POP_TOP") or not importing:
            current = value
        previous = arg if op == "LOAD_CONST" else None
    return found


def code_names(function):
    """The names the code of ``function`` uses, not those in its comments.

    Global and attribute names (``np.tril`` gives ``"np"`` and ``"tril"``),
    the real ``__name__`` of what a global or closure variable holds (so
    ``lower = np.tril`` still gives ``"tril"``), and the same for nested
    functions and for helper functions defined in the learner's module.
    Names that only a docstring or comment mentions do not count. A
    checker uses it to see how an attempt is written, e.g. with ``.T``;
    to refuse a function of the package, :func:`code_objects` compares
    the functions themselves.

    Examples
    --------
    >>> def f(x):
    ...     "Not np.tril."
    ...     return np.triu(x)   # nor np.tri
    >>> sorted(code_names(f))
    ['np', 'triu']
    """
    return _reached(function)[0]


def code_objects(function):
    """The objects the code of ``function`` reaches by name.

    What its global names and closure variables hold, and what it reads
    from modules (``np.tril`` gives the module ``np`` and the function
    ``np.tril``), through the learner's own helpers as :func:`code_names`
    does. A checker refuses a
    shortcut when one of these *is* the forbidden function: a learner's
    own function of the same name is not it.

    Examples
    --------
    >>> def f(x):
    ...     return np.tril(x)
    >>> any(obj is np.tril for obj in code_objects(f))
    True
    >>> def tril(x):
    ...     return x
    >>> any(obj is np.tril for obj in code_objects(lambda x: tril(x)))
    False
    """
    _, todo = _reached(function)
    objects, seen = [], set()
    while todo:
        obj = todo.pop()
        if id(obj) not in seen:
            seen.add(id(obj))
            objects.append(obj)
    return objects


def boolean_result(name, attempt):
    """Wrap ``attempt`` so that a mask that is not boolean gets its own hint.

    A mask of 0s and 1s (or floats) compares equal to the right booleans
    in ``np.allclose``, yet the package's attention refuses it; the wrapper
    raises :class:`ExerciseError` with a hint before the comparison.

    Examples
    --------
    >>> boolean_result("mask", lambda t: np.eye(t, dtype=bool))(3).dtype == np.bool_
    True
    """
    def checked(*args):
        result = attempt(*args)
        if result is not None and np.asarray(result).dtype != np.bool_:
            raise ExerciseError(
                name, "return a boolean array (True = may attend), got dtype "
                f"{np.asarray(result).dtype}; a comparison such as a <= b gives "
                "booleans directly")
        return result
    return checked


def inputs_kept(name, attempt, reference, *, fix, why=None, rtol=1e-6, atol=1e-9):
    """Wrap ``attempt`` so that a right answer that wrote into an argument
    gets its own hint.

    :func:`check_exercise` hands every call copies of the hidden case, so
    an answer that overwrites an input array (``dout *= gamma``) can still
    compare right; the caller's array is changed all the same. The
    wrapper raises :class:`ExerciseError` only when the values returned
    match ``reference`` (with ``rtol`` and ``atol``, the check's own): a
    wrong answer is let through, for the comparison and the named
    mistakes to speak. The message names the argument by the reference's
    name for it and shows ``fix``, a line that computes into a new array.
    ``why`` maps an argument's name to the reason its caller needs it,
    said only when that argument changed.

    Examples
    --------
    >>> def double(x):
    ...     return 2 * x
    >>> def double_in_place(x):
    ...     x *= 2
    ...     return x
    >>> checked = inputs_kept("Exercise 9 (double)", double_in_place, double,
    ...                       fix="y = 2 * x")
    >>> try:
    ...     checked(np.ones(3))
    ... except ExerciseError as error:
    ...     print(error.message.split(":")[0])
    the values you return are right, but your function changed its argument `x` in place
    >>> def triple_in_place(x):                   # wrong: left to the comparison
    ...     x *= 3
    ...     return x
    >>> inputs_kept("Exercise 9 (double)", triple_in_place, double, fix="y = 2 * x")(
    ...     np.ones(2))
    array([3., 3.])
    """
    names = list(inspect.signature(reference).parameters)
    why = why or {}

    def checked(*args):
        before = copy.deepcopy(args)
        result = attempt(*args)
        labels = names if len(names) >= len(args) else [f"argument {i}" for i in range(len(args))]
        changed = [label for label, now, was in zip(labels, args, before, strict=False)
                   if isinstance(was, np.ndarray)
                   and not np.array_equal(now, was, equal_nan=True)]
        if not changed:
            return result
        try:
            got = flat_arrays(result)
        except Exception:                    # noqa: BLE001 - not arrays: the check says so
            return result
        if not _same(got, _outputs(reference, before), rtol, atol):
            return result
        quoted = [f"`{label}`" for label in changed]
        which = (f"its argument {quoted[0]}" if len(quoted) == 1
                 else f"its arguments {', '.join(quoted[:-1])} and {quoted[-1]}")
        reasons = list(dict.fromkeys(why[label] for label in changed if label in why))
        raise ExerciseError(
            name, f"the values you return are right, but your function changed {which} in "
            "place: -=, *=, += or @= on an argument, or an assignment into it such as "
            "a[...] = ..., writes into the array the caller passed, and the caller may still "
            "need it as it was. " + "".join(f"{reason}. " for reason in reasons)
            + f"Compute into a new array instead, e.g. {fix}")
    return checked
