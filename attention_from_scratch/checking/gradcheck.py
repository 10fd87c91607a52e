"""Check a hand-written backward pass against finite differences (Chapter 0).

A forward ``f(*inputs) -> (out, cache)`` and its backward
``b(dout, cache) -> grads`` define the gradient of the scalar
``L = sum(out * dout)`` for an upstream gradient ``dout``. We estimate the
same gradient by central differences,
``dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)``, entry by entry,
in float64, and compare.

``dout`` is random: with ``dout`` all ones, ``L = sum(out)``, and for a
softmax that sum is constant, so every gradient is 0 and a backward that
returns zeros would pass.
"""

import inspect
from typing import NamedTuple

import numpy as np

DEFAULT_EPS = 1e-5          # finite-difference step: the bottom of the float64 V (Chapter 0)
DEFAULT_TOLERANCE = 1e-6    # largest relative error that passes
DEFAULT_SCALE_FLOOR = 1e-3  # no gradient is measured against less: one that is truly 0 included


class InputReport(NamedTuple):
    """How one input's analytic gradient compares with the numerical one."""

    name: str
    shape: tuple
    max_abs_error: float
    relative_error: float   # max |analytic - numerical| / max |gradient| (floored)
    worst_index: tuple      # where the largest error is
    problem: str            # "" when the gradient could be compared


class GradCheckReport(NamedTuple):
    """Per-input results of :func:`gradient_check`; prints as a table."""

    rows: list
    tolerance: float

    @property
    def passed(self):
        return all(not r.problem and r.relative_error <= self.tolerance for r in self.rows)

    @property
    def max_relative_error(self):
        return max((r.relative_error for r in self.rows), default=0.0)

    def __str__(self):
        lines = [f"{'input':<16} {'shape':<16} {'rel. error':>10}  {'worst at':<14} ok"]
        for r in self.rows:
            ok = not r.problem and r.relative_error <= self.tolerance
            where = r.problem or str(r.worst_index)
            lines.append(
                f"{r.name:<16} {str(r.shape):<16} {r.relative_error:>10.1e}  "
                f"{where:<14} {'yes' if ok else 'NO'}"
            )
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(f"{verdict}: worst relative error {self.max_relative_error:.1e}, "
                     f"tolerance {self.tolerance:.0e}")
        return "\n".join(lines)


def flat_arrays(result):
    """Flatten an array, a tuple/list of them or a dict (sorted keys)."""
    if isinstance(result, dict):
        return [np.asarray(result[key]) for key in sorted(result)]
    if isinstance(result, (tuple, list)):
        return [a for part in result for a in flat_arrays(part)]
    return [np.asarray(result)]


def _as_float64(arg):
    if isinstance(arg, dict):
        return {key: np.array(value, dtype=np.float64) for key, value in arg.items()}
    return np.array(arg, dtype=np.float64)


def _difference_at(loss, array, idx, eps):
    """``(L(x + eps e_idx) - L(x - eps e_idx)) / (2 eps)``, ``array`` restored."""
    original = array[idx]
    array[idx] = original + eps
    plus = loss()
    array[idx] = original - eps
    minus = loss()
    array[idx] = original
    return (plus - minus) / (2 * eps)


def _central_differences(loss, array, eps):
    """Gradient of ``loss()`` w.r.t. ``array``, one entry at a time, in place."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        grad[idx] = _difference_at(loss, array, idx, eps)
    return grad


def _sampled_differences(loss, array, eps, entries):
    """The entries ``entries`` of the gradient; the others NaN ("not checked")."""
    grad = np.full_like(array, np.nan)
    for idx in entries:
        grad[idx] = _difference_at(loss, array, idx, eps)
    return grad


def _estimate(loss, array, eps, n_entries, rng):
    entries = _sample_entries(array.shape, n_entries, rng)
    if entries is None:
        return _central_differences(loss, array, eps)
    return _sampled_differences(loss, array, eps, entries)


def _sample_entries(shape, n_entries, rng):
    """At most ``n_entries`` distinct indices of an array of ``shape``."""
    size = int(np.prod(shape))
    if n_entries is None or size <= n_entries:
        return None
    flat = rng.choice(size, size=n_entries, replace=False)
    return [np.unravel_index(i, shape) for i in np.sort(flat)]


def numerical_gradients(forward, inputs, dout, *, kwargs=None, eps=DEFAULT_EPS, n_entries=None,
                        rng=None):
    """Central-difference gradients of ``sum(forward(*inputs)[0] * dout)``.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs, **kwargs) -> (out, cache)``.
    inputs : sequence of ndarray or dict of ndarray
        Float64 arrays; they are perturbed in place and restored.
    dout : ndarray
        Upstream gradient, shape of ``out``.
    kwargs : dict, optional
        Keyword-only arguments of ``forward``; a dict, so that a forward
        with its own ``eps`` (layer norm) cannot collide with the step.
    eps : float
        Step size; about 1e-5 balances truncation and round-off in float64.
    n_entries : int, optional
        Estimate at most this many entries of each array, drawn by ``rng``
        (the rest are NaN): a whole model checked in seconds.
    rng : numpy.random.Generator, optional
        Required with ``n_entries``.

    Returns
    -------
    grads : list
        One array (or dict of arrays) per input, shaped like it.
    """
    kwargs = kwargs or {}
    if n_entries is not None and rng is None:
        raise ValueError("n_entries needs rng, the generator that picks the entries")

    def loss():
        return float(np.sum(forward(*inputs, **kwargs)[0] * dout))

    grads = []
    for arg in inputs:
        if isinstance(arg, dict):
            grads.append({key: _estimate(loss, value, eps, n_entries, rng)
                          for key, value in arg.items()})
        else:
            grads.append(_estimate(loss, arg, eps, n_entries, rng))
    return grads


def _compare(name, analytic, numerical, scale_floor):
    shape = numerical.shape
    analytic = np.asarray(analytic)
    if analytic.shape != shape:
        return InputReport(name, shape, np.inf, np.inf, (),
                           f"shape {analytic.shape}")
    if not np.isfinite(analytic).all():
        return InputReport(name, shape, np.inf, np.inf, (), "NaN or inf")
    checked = ~np.isnan(numerical)   # entries not sampled are NaN
    error = np.where(checked, np.abs(analytic - numerical), 0.0)
    numerical = np.where(checked, numerical, 0.0)
    scale = max(np.abs(numerical).max(initial=0.0), np.abs(analytic).max(initial=0.0),
                scale_floor)
    worst = np.unravel_index(np.argmax(error), shape) if error.size else ()
    relative = float(error.max(initial=0.0) / scale)
    return InputReport(name, shape, float(error.max(initial=0.0)), relative,
                       tuple(int(i) for i in worst), "")


def gradient_check(forward, backward, inputs, *, rng, kwargs=None, names=None,
                   eps=DEFAULT_EPS, tolerance=DEFAULT_TOLERANCE,
                   scale_floor=DEFAULT_SCALE_FLOOR, n_entries=None):
    """Compare ``backward`` with central differences of ``forward``.

    Parameters
    ----------
    forward, backward : callable
        A functional pair: ``forward(*inputs, **kwargs) -> (out, cache)``
        and ``backward(dout, cache)`` returning one gradient per input (a
        bare array when there is one input; a dict for a dict input).
    inputs : sequence
        Positional inputs: arrays, or dicts of arrays (parameters). Copied
        to float64; the caller's arrays are never touched.
    rng : numpy.random.Generator, keyword-only
        Draws the random upstream gradient ``dout``.
    kwargs : dict, optional
        Keyword-only arguments of ``forward`` (``mask``, ``n_heads`` ...).
    names : sequence of str, optional
        Labels for the inputs; by default the forward's parameter names.
    eps, tolerance : float
        Finite-difference step (``DEFAULT_EPS``); largest relative error
        that passes (``DEFAULT_TOLERANCE``). A backward 0.1 % off fails.
    scale_floor : float
        The relative error is ``max |analytic - numerical|`` over
        ``max(max |gradient|, scale_floor)``. Central differences carry
        round-off noise of about 1e-11; a gradient that is truly 0 (softmax
        over a single key) would otherwise compare noise with noise.
    n_entries : int, optional
        Check at most this many randomly chosen entries of each array
        (default: every entry). A model with ``P`` parameters costs ``2 P``
        forward passes in full; a sample of 20 per array costs 40 per array.

    Returns
    -------
    report : GradCheckReport
        ``report.passed`` and a printable table, one row per array.

    See Also
    --------
    assert_gradients_correct

    Examples
    --------
    >>> from attention_from_scratch.core.linear import linear_forward, linear_backward
    >>> rng = np.random.default_rng(0)
    >>> x, w, b = rng.normal(size=(3, 2)), rng.normal(size=(2, 4)), rng.normal(size=4)
    >>> gradient_check(linear_forward, linear_backward, (x, w, b), rng=rng).passed
    True
    """
    kwargs = kwargs or {}
    inputs = [_as_float64(arg) for arg in inputs]
    if names is None:
        params = list(inspect.signature(forward).parameters)
        names = params[:len(inputs)]
    out, cache = forward(*inputs, **kwargs)
    dout = rng.normal(size=np.shape(out))
    analytic = backward(dout, cache)
    if len(inputs) == 1:
        analytic = (analytic,)
    numerical = numerical_gradients(forward, inputs, dout, kwargs=kwargs, eps=eps,
                                    n_entries=n_entries, rng=rng)
    if len(analytic) != len(inputs):
        raise AssertionError(
            f"backward returned {len(analytic)} gradients for {len(inputs)} inputs"
        )
    rows = []
    for name, arg, ana, num in zip(names, inputs, analytic, numerical, strict=True):
        if isinstance(arg, dict):
            if not isinstance(ana, dict) or set(ana) != set(arg):
                got = sorted(ana) if isinstance(ana, dict) else type(ana).__name__
                rows.append(InputReport(name, (), np.inf, np.inf, (),
                                        f"keys {got}"))
                continue
            for key in arg:
                rows.append(_compare(f"{name}[{key!r}]", ana[key], num[key], scale_floor))
        else:
            rows.append(_compare(name, ana, num, scale_floor))
    return GradCheckReport(rows, tolerance)


def assert_gradients_correct(forward, backward, inputs, *, rng, **options):
    """:func:`gradient_check`, raising ``AssertionError`` with the table."""
    report = gradient_check(forward, backward, inputs, rng=rng, **options)
    if not report.passed:
        raise AssertionError(f"gradient check failed\n{report}")
    return report
