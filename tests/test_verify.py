"""``verify`` checks every pair at every size variant, and fails loudly when one is wrong."""

import io
import subprocess
import sys

import numpy as np
import pytest

from attention_from_scratch import __main__ as cli
from attention_from_scratch.checking import verify
from attention_from_scratch.core import flash_attention as core_flash
from attention_from_scratch.core import linear as core_linear
from attention_from_scratch.core import softmax as core_softmax
from attention_from_scratch.steps import linear as steps_linear

CHECKS = verify.checks()
SOFTMAX_CASES = [case for case in verify.CASES if case.module == "softmax"]


@pytest.mark.parametrize("case, name, sizes", CHECKS,
                         ids=[f"{case.label} [{name}]" for case, name, _ in CHECKS])
def test_every_case_passes_at_every_size(case, name, sizes):
    result = verify.run_case(case, sizes=sizes)
    assert result.reason == ""
    assert result.fd_steps <= verify.FD_TOLERANCE
    assert result.fd_core <= verify.FD_TOLERANCE
    assert max(result.mirror_forward, result.mirror_backward) <= verify.MIRROR_TOLERANCE
    assert result.passed


@pytest.mark.parametrize("case", verify.CASES, ids=[c.label for c in verify.CASES])
def test_base_sizes_are_all_different(case):
    sizes = dict(case.sizes)
    if "Dh" in sizes:
        sizes["D"] = sizes["H"] * sizes["Dh"]
    batch, heads = sizes.pop("B"), sizes.pop("H", None)
    values = list(sizes.values())
    assert len(values) == len(set(values)), case.sizes
    # B == H (both 2) in the multi-head cases keeps them small; neither meets another size
    assert batch not in values and heads not in values, case.sizes


def test_size_variants_cover_the_coincidences_real_models_have():
    names = {name for case, name, _ in CHECKS}
    assert names == {"all different", "T == S", "T == Dv", "Dk == Dv", "D == F",
                     "square weights", "T == D"}
    for case, name, sizes in CHECKS:
        for a, b in verify.COINCIDENCES.get(name, ()):
            if a in sizes and b in sizes:
                assert sizes[a] == sizes[b], (case.label, name)
    # every pair with a weight matrix is checked with it square
    square = {case.label for case, name, _ in CHECKS if name in ("D == F", "square weights")}
    for label in ["linear", "self-attention", "feed-forward (ReLU)", "encoder block (pre-norm)",
                  "decoder block (post-norm)", "recurrent layer", "convolution, dilation 2"]:
        assert label in square


def test_the_variant_sizes_reach_the_inputs():
    case = next(c for c in verify.CASES if c.label == "attention")
    for name, sizes in verify.size_variants(case.sizes):
        (q, k, v), _ = case.make_inputs(np.random.default_rng(0), sizes)
        assert q.shape[-2:] == (sizes["T"], sizes["Dk"]), name
        assert v.shape[-2:] == (sizes["S"], sizes["Dv"]), name


def failing_labels(cases):
    out = io.StringIO()
    status = verify.main(out=out, cases=cases)
    lines = out.getvalue().splitlines()
    return status, [line.removeprefix("FAILED: ") for line in lines
                    if line.startswith("FAILED: ")], out.getvalue()


def test_a_broken_backward_fails_verify(monkeypatch):
    monkeypatch.setattr(core_softmax, "softmax_backward",
                        lambda dy, cache: cache.y * dy)   # diagonal of the Jacobian only
    status, failed, text = failing_labels(SOFTMAX_CASES)
    n_checks = len(verify.checks(SOFTMAX_CASES))
    assert status == 1
    assert len(failed) == n_checks     # every size of both softmax cases
    assert text.rstrip().endswith(f"0 passed, {n_checks} failed")


def test_a_pair_that_raises_is_reported_and_the_rest_still_run(monkeypatch):
    def wrong_shape_backward(dout, cache):
        dx, dw, db = steps_linear.linear_backward(dout, cache)
        return dx, dw, db[:-1]      # a gradient one entry short breaks steps - core
    monkeypatch.setattr(core_linear, "linear_backward", wrong_shape_backward)
    cases = [verify.CASES[0]] + SOFTMAX_CASES
    status, failed, text = failing_labels(cases)
    assert status == 1
    assert failed == [f"linear [{name}]" for name, _ in verify.size_variants(cases[0].sizes)]
    assert "raised ValueError" in text
    # the softmax checks after it ran and passed
    assert text.count("  pass\n") == len(verify.checks(SOFTMAX_CASES))
    assert text.rstrip().endswith(
        f"{len(verify.checks(SOFTMAX_CASES))} passed, {len(failed)} failed")


def test_run_case_returns_the_reason_instead_of_raising(monkeypatch):
    def broken(dout, cache):
        raise ValueError("dout has the wrong shape")
    monkeypatch.setattr(core_softmax, "softmax_backward", broken)
    result = verify.run_case(SOFTMAX_CASES[0])
    assert not result.passed
    assert result.reason == "ValueError: dout has the wrong shape"


def test_square_weights_catch_dw_transposed_in_core_linear(monkeypatch):
    def dw_transposed(dout, cache):
        """dw = dout^T x instead of x^T dout: the transpose of the right answer."""
        x, w = cache
        dx, _, db = steps_linear.linear_backward(dout, cache)
        return dx, dout.reshape(-1, w.shape[1]).T @ x.reshape(-1, w.shape[0]), db
    monkeypatch.setattr(core_linear, "linear_backward", dw_transposed)
    case = verify.CASES[0]
    square = dict(verify.size_variants(case.sizes))["D == F"]
    # with a square weight the mistake runs without error: only the values are wrong
    result = verify.run_case(case, sizes=square)
    assert result.reason == "" and result.fd_steps <= verify.FD_TOLERANCE
    assert result.fd_core > 1e-2 and result.mirror_backward > 1e-2 and not result.passed


def test_t_equal_dv_catches_the_flash_row_term_summed_over_the_wrong_axis(monkeypatch):
    def delta_over_positions(dout, cache):
        """rowsum(dout * out) summed over positions T instead of over Dv."""
        q, k, v, out, lse, scale = cache.q, cache.k, cache.v, cache.out, cache.lse, cache.scale
        weights = np.exp(q @ np.swapaxes(k, -1, -2) * scale - lse[..., None])   # (..., T, S)
        delta = (dout * out).sum(axis=-2)[..., None]              # (..., Dv, 1): wrong axis
        dscores = weights * (dout @ np.swapaxes(v, -1, -2) - delta)
        return (dscores @ k * scale, np.swapaxes(dscores, -1, -2) @ q * scale,
                np.swapaxes(weights, -1, -2) @ dout)
    monkeypatch.setattr(core_flash, "flash_attention_backward", delta_over_positions)
    case = next(c for c in verify.CASES if c.label == "flash attention, block 3")
    variants = dict(verify.size_variants(case.sizes))
    # all different: the wrong axis cannot broadcast, so the pair raises and is reported
    assert "ValueError" in verify.run_case(case).reason
    # T == Dv: it broadcasts, runs, and is caught by its values
    result = verify.run_case(case, sizes=variants["T == Dv"])
    assert result.reason == ""
    assert result.fd_core > 1e-3 and result.mirror_backward > 1e-3 and not result.passed


def test_cli_verify_prints_every_check_and_exits_zero(monkeypatch, capsys):
    # the command line runs verify.main on CASES (here cut to two pairs: the full
    # list already runs above, check by check)
    monkeypatch.setattr(verify, "CASES", SOFTMAX_CASES)
    status = cli.main(["verify"])
    text = capsys.readouterr().out
    assert status == 0
    for case, name, _ in verify.checks(SOFTMAX_CASES):
        assert f"{case.label} [{name}]" in text
    assert f"{len(verify.checks(SOFTMAX_CASES))} passed, 0 failed" in text


def test_cli_verify_exit_status_reaches_the_shell():
    program = ("import sys; from attention_from_scratch import __main__; "
               "from attention_from_scratch.checking import verify; "
               "from attention_from_scratch.core import softmax; "
               "verify.CASES = verify.CASES[1:2]; "
               "softmax.softmax_backward = lambda dy, cache: cache.y * dy; "
               "sys.exit(__main__.main(['verify']))")
    done = subprocess.run([sys.executable, "-c", program],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    assert "0 passed, 2 failed" in done.stdout


def test_cli_help_explains_both_commands():
    done = subprocess.run([sys.executable, "-m", "attention_from_scratch", "--help"],
                          capture_output=True, text=True, check=True)
    assert "verify" in done.stdout and "figures" in done.stdout
