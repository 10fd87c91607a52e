"""Test-run set-up shared by the unit tests, the doctests and nbval."""

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent

os.environ.setdefault("MPLBACKEND", "Agg")
# The chapters save their figures as they run; in a test run (kernels inherit this
# environment) they go to a temporary folder, so figures/ stays as committed even
# where another matplotlib version would write different bytes.
_FIGURES_TMP = tempfile.mkdtemp(prefix="attention-figures-")
os.environ.setdefault("ATTENTION_FIGURES_DIR", _FIGURES_TMP)


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


def pytest_unconfigure(config):
    shutil.rmtree(_FIGURES_TMP, ignore_errors=True)
