"""``python -m attention_from_scratch verify``: every pair, checked twice.

For each forward/backward pair of the package, on small random float64
inputs of all-different sizes:

1. finite differences against the backward of ``steps`` and of ``core``
   (largest relative error, :mod:`attention_from_scratch.gradcheck`);
2. ``steps`` against ``core``: the forward output and every gradient for
   the same random upstream gradient (largest absolute difference).

``CASES`` lists the pairs; the test suite runs the same list.
"""

import importlib
import sys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from attention_from_scratch.gradcheck import flat_arrays, gradient_check

FD_TOLERANCE = 1e-6        # central differences in float64, eps = 1e-5
MIRROR_TOLERANCE = 1e-10   # steps vs core, relative to the values' size


class Case(NamedTuple):
    """One forward/backward pair and how to make inputs for it."""

    label: str
    module: str           # the same module name in steps/ and core/
    forward: str
    backward: str
    make_inputs: Callable  # rng -> (inputs tuple, keyword arguments dict)


def pair(impl, case):
    """Return ``(forward, backward)`` of ``case`` from ``"steps"`` or ``"core"``."""
    module = importlib.import_module(f"attention_from_scratch.{impl}.{case.module}")
    return getattr(module, case.forward), getattr(module, case.backward)


def _normal(rng, *shape):
    return rng.normal(size=shape)


def _random_mask(rng, *shape):
    mask = rng.random(shape) < 0.6
    mask[..., 0, :] = False     # one query with nothing to attend to
    return mask


CASES = [
    Case("linear", "linear", "linear_forward", "linear_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 4, 5), _normal(rng, 5)), {})),
    Case("softmax (axis=-1)", "softmax", "softmax_forward", "softmax_backward",
         lambda rng: ((_normal(rng, 2, 3, 4),), {"axis": -1})),
    Case("softmax (axis=1)", "softmax", "softmax_forward", "softmax_backward",
         lambda rng: ((_normal(rng, 2, 3, 4),), {"axis": 1})),
    Case("attention scores", "attention", "scores_forward", "scores_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4)), {})),
    Case("attention weighted sum", "attention", "weighted_sum_forward",
         "weighted_sum_backward",
         lambda rng: ((rng.random((2, 3, 5)), _normal(rng, 2, 5, 4)), {})),
    Case("attention", "attention", "attention_forward", "attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4),
                       _normal(rng, 2, 5, 6)), {})),
    Case("attention, random mask", "attention", "attention_forward",
         "attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4),
                       _normal(rng, 2, 5, 6)), {"mask": _random_mask(rng, 2, 3, 5)})),
]


class CaseResult(NamedTuple):
    label: str
    fd_steps: float
    fd_core: float
    mirror_forward: float
    mirror_backward: float
    passed: bool


def _mirror_difference(a, b):
    """Largest ``|a - b|`` relative to ``1 + |a|``, over flattened arrays."""
    return max(
        (float(np.max(np.abs(x - y) / (1.0 + np.abs(x)), initial=0.0))
         for x, y in zip(flat_arrays(a), flat_arrays(b), strict=True)),
        default=0.0,
    )


def run_case(case, *, seed=0):
    """Check one case; return a :class:`CaseResult`."""
    rng = np.random.default_rng(seed)
    inputs, kwargs = case.make_inputs(rng)
    fd = {}
    for impl in ("steps", "core"):
        forward, backward = pair(impl, case)
        report = gradient_check(forward, backward, inputs, kwargs=kwargs, rng=rng,
                                tolerance=FD_TOLERANCE)
        fd[impl] = report.max_relative_error   # inf when a gradient is malformed
    steps_fwd, steps_bwd = pair("steps", case)
    core_fwd, core_bwd = pair("core", case)
    out_s, cache_s = steps_fwd(*inputs, **kwargs)
    out_c, cache_c = core_fwd(*inputs, **kwargs)
    dout = rng.normal(size=np.shape(out_s))
    mirror_fwd = _mirror_difference(out_s, out_c)
    mirror_bwd = _mirror_difference(steps_bwd(dout, cache_s), core_bwd(dout, cache_c))
    passed = (max(fd.values()) <= FD_TOLERANCE
              and max(mirror_fwd, mirror_bwd) <= MIRROR_TOLERANCE)
    return CaseResult(case.label, fd["steps"], fd["core"], mirror_fwd, mirror_bwd, passed)


def main(out=sys.stdout):
    """Print the verification table as it goes; return the exit status."""
    header = (f"{'pair':<28} {'FD steps':>9} {'FD core':>9} "
              f"{'fwd s-c':>9} {'bwd s-c':>9}  result")
    print(f"Checking {len(CASES)} forward/backward pairs: finite differences "
          f"(tolerance {FD_TOLERANCE:.0e}) and steps vs core "
          f"(tolerance {MIRROR_TOLERANCE:.0e}).", file=out)
    print(header, file=out)
    print("-" * len(header), file=out, flush=True)
    failures = 0
    for case in CASES:
        r = run_case(case)
        failures += not r.passed
        print(f"{r.label:<28} {r.fd_steps:>9.1e} {r.fd_core:>9.1e} "
              f"{r.mirror_forward:>9.1e} {r.mirror_backward:>9.1e}  "
              f"{'pass' if r.passed else 'FAIL'}", file=out, flush=True)
    print(f"{len(CASES) - failures} passed, {failures} failed", file=out)
    return 1 if failures else 0
