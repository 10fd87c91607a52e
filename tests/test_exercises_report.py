"""A wrong answer is reported as its hint, in Jupyter and under nbval.

IPython renders an exception through its ``_render_traceback_`` method
when it has one, and nbval's report shows what the kernel rendered. These
tests run a copy of Chapter 0 with wrong answers filled in, under nbval in
a separate process, and read the report as a learner would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attention_from_scratch import exercises
from attention_from_scratch.exercises import ExerciseError, chapter00

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "chapters" / "00_how_this_book_checks_itself.ipynb"

# stub -> a wrong answer a learner wrote
ANSWERS = {
    "def central_difference(f, x, eps):\n    raise NotImplementedError":
        "def central_difference(f, x, eps):\n    return (f(x + eps) - f(x - eps)) / 2*eps",
    "def my_linear_backward(dout, x, w):\n    raise NotImplementedError":
        "def my_linear_backward(dout, x, w):\n"
        "    dx = dout @ w\n"
        "    return dx, x.T @ dout, dout.sum(axis=0)",
    # a right answer, called and its result passed where the function belongs
    "def fixed_softmax_backward(dy, y):\n    raise NotImplementedError":
        "def fixed_softmax_backward(dy, y):\n"
        "    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))",
    "check_fixed_softmax_backward(fixed_softmax_backward)":
        "check_fixed_softmax_backward(fixed_softmax_backward(np.ones((2, 3)), "
        "np.full((2, 3), 1 / 3)))",
}


def _source_lines(module):
    """The checker's own lines, long enough to be recognisable."""
    text = Path(module.__file__).read_text()
    return {line.strip() for line in text.splitlines() if len(line.strip()) >= 12}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    notebook = json.loads(CHAPTER.read_text())
    filled = set()
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        for stub, answer in ANSWERS.items():
            if stub in source:
                cell["source"] = source.replace(stub, answer)
                filled.add(stub)
    assert filled == set(ANSWERS), "a stub of Chapter 0 was not found"
    copy = tmp_path_factory.mktemp("chapter") / CHAPTER.name
    copy.write_text(json.dumps(notebook))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    before = _figures_state()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(ROOT / "nbval-sanitize.cfg"), "-p", "no:cacheprovider",
         "-p", "no:randomly", "--color=no", "--rootdir", str(copy.parent), copy.name],
        cwd=copy.parent, capture_output=True, text=True, env=env, timeout=600, check=False)
    run.figures_touched = before != _figures_state()
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    run.n_code_cells = len(code_cells)
    # nbval's number of Exercise 1's check cell: code cells only, from 0
    run.exercise_1_cell = next(i for i, c in enumerate(code_cells)
                               if "".join(c["source"]).startswith("check_central_difference("))
    return run


def _figures_state():
    """Every file in figures/ with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted((ROOT / "figures").iterdir())}


def test_the_report_fails_on_the_three_check_cells(report):
    assert report.returncode == 1
    assert "3 failed" in report.stdout


def test_running_the_chapter_left_figures_untouched(report):
    # the chapter ran top to bottom, drawing every figure inline
    assert f"3 failed, {report.n_code_cells - 3} passed" in report.stdout
    assert not report.figures_touched


def test_the_report_shows_each_exercise_and_its_hint(report):
    out = " ".join(report.stdout.split())          # the block wraps long hints
    assert "✗ Exercise 1 (central_difference) is not right yet" in out
    assert "Python reads `a / 2*eps` as `(a / 2) * eps`" in out
    assert "✗ Exercise 2 (linear backward) is not right yet" in out
    # a crash names the learner's own line, not the checker's
    assert "your function raised ValueError on case 1" in out
    assert "It happened in `my_linear_backward`, at `dx = dout @ w`." in out
    # the function's result passed in its place is named as such, not as a crash
    assert "✗ Exercise 3 (fixed softmax backward) is not right yet" in out
    assert ("pass the function itself, `check_...(my_function)`, not what it returns "
            "(you passed an array of shape (2, 3))") in out
    assert "not callable" not in out


def test_the_report_shows_none_of_the_checker(report):
    out = report.stdout
    assert "Traceback (most recent call last)" not in out
    assert "exercises/chapter00.py" not in out and "exercises/__init__.py" not in out
    leaked = [line for line in _source_lines(chapter00) | _source_lines(exercises)
              if line in out]
    assert leaked == []


def test_the_rendered_block_is_short_and_plain():
    error = ExerciseError("Exercise 9 (example)", "first part\nsecond " + "word " * 30)
    lines = error._render_traceback_()
    assert lines[0] == "✗ Exercise 9 (example) is not right yet"
    assert lines[1] == "  first part"
    assert all(len(line) <= 90 and line.startswith("  ") for line in lines[1:])
    assert " ".join(line.strip() for line in lines[2:]) == ("second " + "word " * 30).strip()
    assert isinstance(error, AssertionError)        # pytest.raises(AssertionError) still works


def test_the_readme_shows_the_block_and_the_title_that_the_report_has(report):
    readme = (ROOT / "README.md").read_text()
    with pytest.raises(ExerciseError) as caught:
        chapter00.check_central_difference(lambda f, x, eps: (f(x + eps) - f(x - eps)) / 2*eps)
    assert "\n".join(caught.value._render_traceback_()) in readme
    # the README's example title is the one nbval gives Exercise 1's check cell
    title = f"{CHAPTER.name}::Cell {report.exercise_1_cell}"
    assert f"chapters/{title}" in readme
    assert f" {title} _" in report.stdout                  # the failure's header line
