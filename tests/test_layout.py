"""The two mirrors keep one contract: same modules, same public names, and
every forward has its backward. Until now this was a convention only."""

import ast
from pathlib import Path

import pytest

from attention_from_scratch import core, steps

PACKAGE = Path(core.__file__).resolve().parent.parent

# Helpers that belong to one mirror's way of computing, each for a reason;
# any other difference between the mirrors fails the test below.
MIRROR_ONLY = {
    "steps.softmax.softmax_jacobian",          # the Jacobian matrix is shown once, in steps
    "steps.multi_head.rows_fed_by",            # a check of any split function, for the chapter
    "steps.local_attention.key_range",         # the explicit version loops over queries
    "core.softmax.stable_row_max",             # the in-place softmax of the vectorised mirror
    "core.softmax.masked_softmax_in_place",
    "core.local_attention.to_blocks",          # the blocked layout of the vectorised mirror
    "core.local_attention.pairs",
    "core.local_attention.band",
    "core.local_attention.from_pairs",
    "core.flash_attention.dealt",              # key blocks shared out among the workers
}


def public_names(module):
    """Names a module defines itself (not imports), without a leading ``_``."""
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__}


def test_steps_and_core_have_the_same_modules():
    assert steps.__all__ == core.__all__
    for name in steps.__all__:
        assert (PACKAGE / "steps" / f"{name}.py").exists()
        assert (PACKAGE / "core" / f"{name}.py").exists()


@pytest.mark.parametrize("name", steps.__all__)
def test_steps_and_core_export_the_same_public_names(name):
    in_steps = public_names(getattr(steps, name))
    in_core = public_names(getattr(core, name))
    only = ({f"steps.{name}.{n}" for n in in_steps - in_core}
            | {f"core.{name}.{n}" for n in in_core - in_steps})
    assert only == {entry for entry in MIRROR_ONLY if entry.split(".")[1] == name}


@pytest.mark.parametrize("name", steps.__all__)
def test_every_forward_has_its_backward_in_both_mirrors(name):
    forwards = {n for n in public_names(getattr(steps, name)) | public_names(getattr(core, name))
                if n.endswith("_forward")}
    assert forwards, f"{name} has no forward/backward pair"
    for mirror in (steps, core):
        module = getattr(mirror, name)
        for forward in forwards:
            backward = forward.removesuffix("_forward") + "_backward"
            assert callable(getattr(module, forward, None)), f"{module.__name__}.{forward}"
            assert callable(getattr(module, backward, None)), f"{module.__name__}.{backward}"


def test_core_never_imports_steps():
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                assert not any(n.startswith("attention_from_scratch.steps") for n in names), (
                    f"{path.name} imports {node.module}")
