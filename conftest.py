"""Test-run set-up shared by the unit tests, the doctests and nbval."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent

os.environ.setdefault("MPLBACKEND", "Agg")
# One BLAS thread per test process (and per notebook kernel, which inherits it), unless
# the caller chose otherwise. The suite runs one worker per core, and the small matrix
# products of training run several times slower when BLAS threads outnumber the cores.
# This must happen before anything imports NumPy.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# And one thread for core's chunks of work: the test processes already use every core, and
# the timing checks of the exercises suffered when threads outnumbered cores. The tests of
# the threads themselves ask for two workers (common.parallel.set_workers).
os.environ.setdefault("ATTENTION_FROM_SCRATCH_WORKERS", "1")


def pytest_configure(config):
    # nbval resolves the sanitiser from the current directory; pin it to the repo
    # so `pytest` works from anywhere.
    if getattr(config.option, "nbval_sanitize_with", None) is None and hasattr(
        config.option, "nbval_sanitize_with"
    ):
        config.option.nbval_sanitize_with = str(ROOT / "nbval-sanitize.cfg")
    # A fresh environment builds matplotlib's font cache on first import and says so
    # on stderr; do it here, before any notebook kernel starts, so no cell sees it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.font_manager  # noqa: F401


# Running the suite must leave figures/ as it was: chapters show their figures
# inline, and only `python -m attention_from_scratch figures` writes there. Every
# chapter runs under nbval in the same session, so a chapter that saved a figure
# would fail the run here.
_FIGURES = ROOT / "figures"
_figures_at_start = {}


def _figures_state():
    return {p.name: p.read_bytes() for p in sorted(_FIGURES.iterdir())}


def pytest_sessionstart(session):
    _figures_at_start.update(_figures_state())


def pytest_sessionfinish(session, exitstatus):
    if _figures_state() != _figures_at_start:
        session.exitstatus = 1
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line("FAILED: the test run changed files in figures/", red=True)
