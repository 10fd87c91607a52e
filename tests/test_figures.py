"""``figures`` regenerates every figure, byte for byte, and figures/ holds exactly them.

The stored files are not compared byte for byte with a fresh regeneration:
a newer matplotlib writes slightly different bytes, and the Chapter 6
memory figure plots a measurement (tracemalloc peaks vary by a few
kilobytes with the interpreter's state).
"""

import matplotlib

matplotlib.use("Agg")

from attention_from_scratch.book.plotting import FIGURES_DIR  # noqa: E402
from attention_from_scratch.figures import FIGURES, regenerate  # noqa: E402


def test_regeneration_is_deterministic(tmp_path):
    first = regenerate(tmp_path / "a")
    second = regenerate(tmp_path / "b")
    assert [p.name for p in first] == list(FIGURES)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_figures_directory_holds_exactly_the_registered_figures():
    stored = {p.name for p in FIGURES_DIR.iterdir() if p.suffix in (".png", ".svg")}
    assert stored == set(FIGURES), (
        f"missing: {sorted(set(FIGURES) - stored)}, not made by any chapter: "
        f"{sorted(stored - set(FIGURES))}"
    )
