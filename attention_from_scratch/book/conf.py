"""Sphinx configuration of the HTML book (read by ``website.build``).

The source directory is the repository: the README is the front page, and
the chapters, the glossary and the solutions are read from ``chapters/``
with their stored outputs; nothing is executed. MathJax is served from the
build itself (the ``sphinx-mathjax-offline`` package), so formulas render
with no network.
"""

project = "Attention from Scratch"
author = "the attention_from_scratch authors"
copyright = "the attention_from_scratch authors"

extensions = ["myst_nb", "sphinx.ext.mathjax", "sphinx-mathjax-offline"]

root_doc = "README"
include_patterns = [
    "README.md",
    "chapters/[0-9][0-9]_*.ipynb",
    "chapters/glossary.md",
    "chapters/solutions/[0-9][0-9]_*.ipynb",
]
exclude_patterns = [".*", "build", "dist", "**/.ipynb_checkpoints"]

nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 2

html_theme = "furo"
html_title = project
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False

# The README is written for GitHub and JupyterLab, which have no toctree: the
# book's table of contents is appended to it here, from whatever chapters exist.
TOCTREES = (
    ("Chapters", "chapters/[0-9][0-9]_*"),
    ("Reference", "chapters/glossary"),
    ("Solutions", "chapters/solutions/[0-9][0-9]_*"),
)


def add_table_of_contents(app, docname, source):
    if docname != root_doc:
        return
    for caption, pattern in TOCTREES:
        source[0] += (
            f"\n\n```{{toctree}}\n:hidden:\n:glob:\n:caption: {caption}\n\n{pattern}\n```\n"
        )


def setup(app):
    app.connect("source-read", add_table_of_contents)
