"""The glossary: every entry complete and introduced by a chapter that links to it."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "chapters" / "glossary.md"
CHAPTERS = {
    int(path.name[:2]): path for path in sorted(ROOT.glob("chapters/[0-9][0-9]_*.ipynb"))
}
FIELDS = re.compile(
    r"\*\*es:\*\* (?P<es>.+?) · \*\*symbol:\*\* (?P<symbol>.+?) · "
    r"\*\*chapter:\*\* \[Chapter (?P<number>\d+)\]\((?P<target>[^)]+)\)$"
)
LINK = re.compile(r"\]\(glossary\.md#([^)]+)\)")

# The terms each chapter must not leave undefined: the ones it is about.
KEY_TERMS = {
    0: ["central difference", "finite differences", "gradient check", "upstream gradient",
        "cache", "backward pass", "vector-Jacobian product"],
    1: ["query", "key", "value", "self-attention", "embedding", "softmax", "token", "batch"],
    2: ["scaled dot-product attention", "score", "attention weights", "softmax Jacobian"],
    3: ["mask", "causal mask", "padding mask", "sliding-window mask"],
    4: ["multi-head attention", "head", "split heads", "merge heads", "cross-attention",
        "output projection"],
    5: ["encoder", "decoder", "positional encoding", "layer normalisation",
        "feed-forward network", "residual connection", "KV cache", "memory"],
    6: ["FLOPs", "path length", "FlashAttention", "online softmax", "Linformer",
        "Performer"],
}


def slug(heading):
    """The anchor myst-parser and GitHub give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def entries():
    text = GLOSSARY.read_text(encoding="utf-8")
    found = {}
    for block in re.split(r"\n(?=## )", text)[1:]:
        heading, fields, *definition = [line for line in block.splitlines() if line]
        match = FIELDS.match(fields)
        assert match, f"entry {heading!r}: fields line does not parse: {fields!r}"
        found[heading[3:]] = {**match.groupdict(), "definition": " ".join(definition)}
    return found


def glossary_links(chapter):
    cells = json.loads(chapter.read_text(encoding="utf-8"))["cells"]
    markdown = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return set(LINK.findall(markdown))


def test_every_entry_is_complete_and_sorted():
    found = entries()
    assert len(found) >= 40
    assert list(found) == sorted(found, key=str.lower), "keep the entries alphabetical"
    for term, entry in found.items():
        assert entry["es"].strip() and entry["symbol"].strip(), term
        assert 20 <= len(entry["definition"]) <= 200, f"{term}: one line of definition"


def test_every_entry_names_a_chapter_that_exists():
    for term, entry in entries().items():
        number = int(entry["number"])
        assert number in CHAPTERS, f"{term}: Chapter {number} does not exist"
        assert entry["target"] == CHAPTERS[number].name, f"{term}: link to {entry['target']}"


@pytest.mark.parametrize("number", sorted(CHAPTERS))
def test_a_chapter_links_the_terms_it_introduces_and_every_link_resolves(number):
    found = entries()
    anchors = {slug(term): term for term in found}
    links = glossary_links(CHAPTERS[number])
    for anchor in links:
        assert anchor in anchors, f"Chapter {number} links to a missing entry #{anchor}"
    introduced = {slug(t) for t, e in found.items() if int(e["number"]) == number}
    assert introduced <= links, f"Chapter {number} never links {sorted(introduced - links)}"


@pytest.mark.parametrize("number", sorted(set(KEY_TERMS) & set(CHAPTERS)))
def test_each_chapters_key_terms_are_in_the_glossary(number):
    found = entries()
    for term in KEY_TERMS[number]:
        assert term in found, f"Chapter {number}'s key term {term!r} is not in the glossary"
        assert int(found[term]["number"]) <= number, f"{term} introduced after Chapter {number}"


def test_the_spanish_terms_of_the_running_notes_are_there():
    spanish = " ".join(entry["es"] for entry in entries().values())
    for term in ["consulta", "clave", "valor", "cabeza", "máscara", "codificador",
                 "decodificador", "autoatención", "atención cruzada", "incrustación",
                 "codificación posicional"]:
        assert term in spanish, term
