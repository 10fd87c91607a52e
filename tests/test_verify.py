"""``verify`` checks every pair, and fails loudly when one is wrong."""

import io
import subprocess
import sys

import pytest

from attention_from_scratch.checking import verify
from attention_from_scratch.core import softmax as core_softmax


@pytest.mark.parametrize("case", verify.CASES, ids=[c.label for c in verify.CASES])
def test_every_case_passes(case):
    result = verify.run_case(case)
    assert result.fd_steps <= verify.FD_TOLERANCE
    assert result.fd_core <= verify.FD_TOLERANCE
    assert max(result.mirror_forward, result.mirror_backward) <= verify.MIRROR_TOLERANCE
    assert result.passed


def test_a_broken_backward_fails_verify(monkeypatch):
    monkeypatch.setattr(core_softmax, "softmax_backward",
                        lambda dy, cache: cache.y * dy)   # diagonal of the Jacobian only
    out = io.StringIO()
    status = verify.main(out=out)
    text = out.getvalue()
    assert status == 1
    assert "softmax (axis=-1)" in text and "FAIL" in text
    assert text.rstrip().endswith(f"{len(verify.CASES) - 2} passed, 2 failed")


def test_cli_verify_exits_zero_and_prints_every_pair():
    done = subprocess.run([sys.executable, "-m", "attention_from_scratch", "verify"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for case in verify.CASES:
        assert case.label in done.stdout
    assert f"{len(verify.CASES)} passed, 0 failed" in done.stdout


def test_cli_help_explains_both_commands():
    done = subprocess.run([sys.executable, "-m", "attention_from_scratch", "--help"],
                          capture_output=True, text=True, check=True)
    assert "verify" in done.stdout and "figures" in done.stdout
