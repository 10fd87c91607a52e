"""``figures`` regenerates every figure, byte for byte."""

import matplotlib

matplotlib.use("Agg")

from attention_from_scratch.figures import FIGURES, regenerate  # noqa: E402
from attention_from_scratch.plotting import FIGURES_DIR  # noqa: E402


def test_regeneration_is_deterministic_and_matches_the_repository(tmp_path):
    first = regenerate(tmp_path / "a")
    second = regenerate(tmp_path / "b")
    assert [p.name for p in first] == list(FIGURES)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
        stored = FIGURES_DIR / a.name
        assert stored.exists(), f"{a.name} is not in figures/: run the figures command"
        assert stored.read_bytes() == a.read_bytes(), f"figures/{a.name} is stale"
