"""The HTML book: builds with warnings as errors, has every page, reads offline."""

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from attention_from_scratch.book import website

ROOT = Path(__file__).resolve().parent.parent
# myst-parser calls a Sphinx attribute that Sphinx plans to remove; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API")

NOTEBOOKS = sorted(ROOT.glob("chapters/[0-9][0-9]_*.ipynb")) + sorted(
    ROOT.glob("chapters/solutions/[0-9][0-9]_*.ipynb")
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("book") / "html"
    front_page = website.build(out, warnings_are_errors=True, quiet=True)
    assert front_page == out / "README.html"
    return out


class Resources(HTMLParser):
    """Collect what a page loads (scripts, stylesheets, images) and links to."""

    def __init__(self):
        super().__init__()
        self.loaded, self.links, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag in ("script", "img", "iframe", "source", "embed") and attrs.get("src"):
            self.loaded.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            rel = attrs.get("rel", "")
            (self.loaded if rel in ("stylesheet", "preload", "icon") else self.links).append(
                attrs["href"]
            )
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def parse(page):
    parser = Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def is_remote(url):
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme != "file") or url.startswith("//")


def test_every_notebook_and_the_glossary_has_a_page(site):
    assert (site / "README.html").exists()
    assert (site / "chapters" / "glossary.html").exists()
    assert len(NOTEBOOKS) >= 2
    for notebook in NOTEBOOKS:
        page = site / notebook.relative_to(ROOT).with_suffix(".html")
        assert page.exists(), f"no page for {notebook.name}"
        assert "cell_output" in page.read_text(encoding="utf-8"), f"{page.name}: no outputs"


def test_no_page_loads_anything_from_another_host(site):
    pages = sorted(site.rglob("*.html"))
    assert pages
    for page in pages:
        for url in parse(page).loaded:
            assert not is_remote(url), f"{page.relative_to(site)} loads {url}"
            target = (page.parent / urlsplit(url).path).resolve()
            assert target.is_file(), f"{page.relative_to(site)} loads missing {url}"


def test_math_is_rendered_by_a_local_mathjax(site):
    mathjax = site / "_static" / "mathjax" / "tex-chtml.js"
    assert mathjax.is_file() and mathjax.stat().st_size > 100_000
    assert (site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    page = site / "chapters" / "02_scaled_dot_product_attention.html"
    scripts = [url for url in parse(page).loaded if url.endswith(".js") or ".js?" in url]
    assert any(urlsplit(url).path == "../_static/mathjax/tex-chtml.js" for url in scripts)
    assert r"\sqrt{D_k}" in page.read_text(encoding="utf-8")


def test_links_between_pages_and_their_anchors_resolve(site):
    checked = 0
    for page in sorted(site.rglob("*.html")):
        for url in parse(page).links:
            parts = urlsplit(url)
            if is_remote(url) or parts.scheme == "mailto" or not parts.path:
                continue
            target = (page.parent / parts.path).resolve()
            assert target.exists(), f"{page.relative_to(site)} links to missing {url}"
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in parse(target).ids, f"{page.name}: {url}"
            checked += 1
    assert checked > 100


def test_figures_are_in_the_site(site):
    readme = parse(site / "README.html")
    assert any(Path(url).name == "02_sentence_attention.png" for url in readme.loaded)
    chapter = parse(site / "chapters" / "02_scaled_dot_product_attention.html")
    images = [url for url in chapter.loaded if url.endswith((".png", ".svg"))]
    assert len(images) >= 2


def test_the_offline_check_would_see_a_cdn():
    assert is_remote("https://cdn.example.org/mathjax/tex-chtml.js")
    assert is_remote("//cdn.example.org/furo.css")
    assert not is_remote("../_static/mathjax/tex-chtml.js?v=1")
    page = Resources()
    page.feed('<link rel="stylesheet" href="https://cdn.example.org/a.css">'
              '<script src="https://cdn.example.org/b.js"></script><a href="https://x.org">x</a>')
    assert [is_remote(url) for url in page.loaded] == [True, True]
