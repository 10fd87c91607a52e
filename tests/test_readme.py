"""The README's two commands come first, and CI runs the second one."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    blocks, inside = [], False
    for line in lines:
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            blocks.append(line)
        elif blocks and len(blocks) == 2:
            break
    return blocks[:2]


def test_two_commands_then_ci_runs_the_second():
    install_and_open, install_and_test = readme_commands()
    assert "jupyter lab --allow-root chapters/00_" in install_and_open
    assert "pytest" in install_and_test and "ruff check" in install_and_test
    for command in (install_and_open, install_and_test):
        assert command.startswith('python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"')
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci
    chapter = install_and_open.split()[-1]
    assert (ROOT / chapter).exists()


def test_every_chapter_is_listed_and_every_link_exists():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link
    for notebook in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")):
        assert f"chapters/{notebook.name}" in links, f"{notebook.name} missing from README"
