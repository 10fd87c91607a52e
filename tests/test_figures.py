"""``figures`` makes every figure deterministically; chapters never write them.

What makes a regeneration byte-identical is checked in two parts, so that
no figure has to be rendered twice: every figure function, called twice,
draws the same thing (every artist's type, data, text and colours); and
the saver, given the same figure made twice, writes the same bytes, with
no date and fixed SVG ids, for an SVG and a PNG. SVG ids are hashes of
the fixed salt and the content, and Agg's pixels depend only on the
content, so the same content saved makes the same file. The stored files are not
compared byte for byte with a fresh regeneration: a newer matplotlib
writes slightly different bytes.
"""

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import Collection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from attention_from_scratch.book.plotting import FIGURES_DIR, save_figure  # noqa: E402
from attention_from_scratch.figures import FIGURES, chapter00, chapter03  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("**/*.ipynb"))


def drawn(fig):
    """What ``fig`` draws: each artist's type with its data, text and colours."""
    parts = [fig.get_size_inches().tobytes()]
    for artist in fig.findobj():
        parts.append(type(artist).__name__)
        if isinstance(artist, Axes):
            parts += [artist.get_xlim(), artist.get_ylim(), artist.get_xscale(),
                      artist.get_yscale()]
        elif isinstance(artist, Line2D):
            parts += [np.asarray(artist.get_xydata()).tobytes(), str(artist.get_color()),
                      artist.get_linestyle(), str(artist.get_marker())]
        elif isinstance(artist, AxesImage):
            parts += [np.asarray(artist.get_array()).tobytes(), artist.get_clim()]
        elif isinstance(artist, Text):
            parts += [artist.get_text(), artist.get_position(), str(artist.get_color())]
        elif isinstance(artist, Collection):
            parts += [np.asarray(artist.get_offsets()).tobytes(),
                      np.asarray(artist.get_facecolor()).tobytes()]
            parts += [path.vertices.tobytes() for path in artist.get_paths()]
        elif isinstance(artist, Patch):
            parts += [artist.get_path().vertices.tobytes(), artist.get_facecolor()]
    return parts


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_function_draws_the_same_figure_twice(name):
    first = FIGURES[name]()
    second = FIGURES[name]()
    try:
        assert drawn(first) == drawn(second)
    finally:
        plt.close(first)
        plt.close(second)


@pytest.mark.parametrize("name", [name for name in FIGURES if name.endswith(".png")])
def test_attention_weights_share_one_colour_scale_and_one_colour_bar(name):
    # an image of attention weights (rows of non-negative numbers summing to
    # 1) is drawn on 0..1, so a colour is the same weight in every panel; a
    # colour bar beside each panel would suggest scales of their own
    fig = FIGURES[name]()
    try:
        weights = [image for image in fig.findobj(AxesImage)
                   if np.all(image.get_array() >= 0)
                   and np.allclose(image.get_array().sum(axis=-1), 1.0)]
        assert [image.get_clim() for image in weights] == [(0.0, 1.0)] * len(weights)
        assert sum(image.colorbar is not None for image in weights) <= 1
    finally:
        plt.close(fig)


def test_drawn_sees_a_change_in_the_data():
    rng = np.random.default_rng(0)
    figs = [plt.subplots(figsize=(2, 2)) for _ in range(2)]
    for (_, ax), shift in zip(figs, (0.0, 1e-9), strict=True):
        ax.plot(rng.normal(size=3) * 0 + shift)
    assert drawn(figs[0][0]) != drawn(figs[1][0])
    for fig, _ in figs:
        plt.close(fig)


@pytest.mark.parametrize("make", [chapter00.step_size_figure, chapter03.masks_figure],
                         ids=["svg", "png"])
def test_the_saver_writes_the_same_bytes_with_no_date_and_fixed_ids(make, tmp_path):
    # as `figures` does it: a fresh figure, saved once (a second save of the
    # same figure object may differ, as its first draw settles its layout)
    suffix = ".svg" if make is chapter00.step_size_figure else ".png"
    first, second = (save_figure(make(), f"{name}{suffix}", tmp_path).read_bytes()
                     for name in "ab")
    plt.close("all")
    assert first == second
    if suffix == ".svg":
        assert b"<dc:date>" not in first
        assert re.findall(rb'clip-path="url\(#(p[0-9a-f]+)\)"', first)    # hashed ids
    else:
        assert b"Software" not in first and b"Date" not in first


def test_regenerate_saves_each_registered_figure_under_its_name(tmp_path, monkeypatch):
    import io

    from attention_from_scratch import figures

    cheap = {name: FIGURES[name] for name in ("01_hard_vs_soft_lookup.svg",
                                              "05_positional_encoding.png")}
    monkeypatch.setattr(figures, "FIGURES", cheap)
    out = io.StringIO()
    paths = figures.regenerate(tmp_path, out=out)
    assert [p.name for p in paths] == list(cheap)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(cheap)
    assert out.getvalue().splitlines() == [f"wrote {tmp_path / name}" for name in cheap]
    assert plt.get_fignums() == []                        # every figure closed


def test_figures_directory_holds_exactly_the_registered_figures():
    stored = {p.name for p in FIGURES_DIR.iterdir() if p.suffix in (".png", ".svg")}
    assert stored == set(FIGURES), (
        f"missing: {sorted(set(FIGURES) - stored)}, not made by any chapter: "
        f"{sorted(stored - set(FIGURES))}"
    )


def test_no_notebook_writes_a_figure_or_a_file():
    # chapters show their figures inline; only `figures` writes figures/
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for call in ("save_figure", "savefig", "regenerate", "FIGURES_DIR", "open(",
                     ".write", "np.save", "tofile", "mkdir"):
            assert call not in code, f"{notebook.name} calls {call}"
