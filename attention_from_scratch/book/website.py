"""Build the book as a static website that reads offline.

``python -m attention_from_scratch book`` runs Sphinx with myst-nb on the
repository (configuration in ``conf.py`` beside this file) and writes HTML
to ``build/book``; open ``build/book/README.html`` in a browser. Sphinx's
and myst-nb's working files go beside the output folder (``build/doctrees``,
``build/jupyter_execute``).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CONF_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "build" / "book"


def build(out=None, *, warnings_are_errors=True, quiet=False):
    """Build the HTML book into ``out`` and return the front page's path.

    Every page is rebuilt from scratch, from the notebooks' stored outputs.

    Parameters
    ----------
    out : str or Path, optional
        Output directory (default ``build/book`` in the repository).
    warnings_are_errors : bool
        Fail if Sphinx warns (a broken link, a page outside the contents).
    quiet : bool
        Print only warnings and errors.

    Returns
    -------
    Path
        ``README.html`` in ``out``: the front page.
    """
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    out = Path(out) if out is not None else DEFAULT_OUT
    with docutils_namespace():
        app = Sphinx(
            srcdir=ROOT,
            confdir=CONF_DIR,
            outdir=out,
            doctreedir=out.parent / "doctrees",
            buildername="html",
            status=None if quiet else sys.stdout,
            warningiserror=warnings_are_errors,
            freshenv=True,
        )
        app.build(force_all=True)
    if app.statuscode:
        raise RuntimeError(f"the book build failed with status {app.statuscode}")
    return out / "README.html"
