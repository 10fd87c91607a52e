"""``figures`` regenerates every figure, byte for byte; chapters never write them.

Two regenerations, one in a fresh interpreter (the ``figures`` command) and
one in this process, run side by side and must give the same bytes: that
is "deterministic across runs", and it costs one regeneration of wall time
when a second core is free. The stored files are not compared byte for
byte with a fresh regeneration: a newer matplotlib writes slightly
different bytes.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from attention_from_scratch.figures import FIGURES, regenerate  # noqa: E402
from attention_from_scratch.plotting import FIGURES_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("**/*.ipynb"))


def test_regeneration_is_deterministic_across_processes(tmp_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    command = subprocess.Popen(
        [sys.executable, "-m", "attention_from_scratch", "figures", "--out",
         str(tmp_path / "command")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    here = regenerate(tmp_path / "here")
    out, err = command.communicate(timeout=600)
    assert command.returncode == 0, err
    assert [p.name for p in here] == list(FIGURES)
    assert out.splitlines() == [f"wrote {tmp_path / 'command' / name}" for name in FIGURES]
    for path in here:
        assert path.read_bytes() == (tmp_path / "command" / path.name).read_bytes(), path.name


def test_saved_files_carry_no_date_and_fixed_ids(tmp_path):
    from attention_from_scratch.figures import chapter00
    from attention_from_scratch.plotting import save_figure

    fig = chapter00.step_size_figure()
    svg = save_figure(fig, "a.svg", tmp_path).read_text()
    png = save_figure(fig, "a.png", tmp_path).read_bytes()
    assert "<dc:date>" not in svg
    ids = re.findall(r'id="(p[0-9a-f]+)"', svg)
    assert ids and ids == re.findall(r'id="(p[0-9a-f]+)"',
                                     save_figure(fig, "b.svg", tmp_path).read_text())
    assert b"Software" not in png and b"Date" not in png


def test_figures_directory_holds_exactly_the_registered_figures():
    stored = {p.name for p in FIGURES_DIR.iterdir() if p.suffix in (".png", ".svg")}
    assert stored == set(FIGURES), (
        f"missing: {sorted(set(FIGURES) - stored)}, not made by any chapter: "
        f"{sorted(stored - set(FIGURES))}"
    )


def test_no_notebook_writes_a_figure():
    # chapters show their figures inline; only `figures` writes figures/
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for call in ("save_figure", "savefig", "regenerate", "FIGURES_DIR"):
            assert call not in code, f"{notebook.name} calls {call}"
