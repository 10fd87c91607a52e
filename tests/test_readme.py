"""The README's two commands come first, and CI runs the second one."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_blocks():
    """Every fenced block of the README, as (info string, lines), in order."""
    blocks, info, inside = [], None, None
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if inside is None:
                info, inside = line[3:].strip(), []
            else:
                blocks.append((info, inside))
                inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def readme_commands():
    (_, first), (_, second) = readme_blocks()[:2]
    assert len(first) == len(second) == 1, "each of the first two blocks is one command"
    return first[0], second[0]


def test_two_commands_then_ci_runs_the_second():
    (info_open, _), (info_test, _) = readme_blocks()[:2]
    assert info_open == info_test == "bash"
    install_and_open, install_and_test = readme_commands()
    assert "jupyter lab --allow-root --ServerApp.root_dir=. chapters/00_" in install_and_open
    assert "pytest" in install_and_test and "ruff check" in install_and_test
    for command in (install_and_open, install_and_test):
        assert command.startswith(
            'python3 -m venv .venv && .venv/bin/pip install -e ".[dev,book]"'
        )
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install_and_test in ci
    chapter = install_and_open.split()[-1]
    assert (ROOT / chapter).exists()


def test_the_windows_commands_are_the_unix_ones_translated():
    windows = [lines for info, lines in readme_blocks() if any("py -m venv" in x for x in lines)]
    assert len(windows) == 1 and len(windows[0]) == 2
    for unix, win in zip(readme_commands(), windows[0], strict=True):
        translated = (
            unix.replace("python3 -m venv", "py -m venv")
            .replace(".venv/bin/", ".venv\\Scripts\\")
            .replace(" --allow-root", "")
            .replace("chapters/", "chapters\\")
        )
        assert win == translated


def test_every_chapter_is_listed_and_every_link_exists():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", text)
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link
    for notebook in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")):
        assert f"chapters/{notebook.name}" in links, f"{notebook.name} missing from README"


def test_the_floors_file_pins_every_declared_floor():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = dict(re.findall(r'^\s*"([A-Za-z0-9_.-]+)>=([0-9][^",;]*)",?$', pyproject, re.M))
    declared.pop("hatchling", None)
    floors = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$",
                   (ROOT / "constraints" / "floors.txt").read_text(encoding="utf-8"), re.M)
    )

    def release(version):
        return re.sub(r"(\.0)+$", "", version)  # 8 == 8.0.0

    assert declared
    assert {name: release(v) for name, v in floors.items()} == {
        name: release(v) for name, v in declared.items()
    }
