"""Checkers for the exercises of Chapter 7, "Training"."""

import functools

import numpy as np

from attention_from_scratch.checking.gradcheck import gradient_check
from attention_from_scratch.common.params import init_decoder_only_params
from attention_from_scratch.core.cross_entropy import (
    cross_entropy_backward,
    cross_entropy_forward,
)
from attention_from_scratch.core.embedding import embedding_backward, embedding_forward
from attention_from_scratch.core.transformer import (
    decoder_only_backward,
    decoder_only_forward,
)
from attention_from_scratch.exercises import (
    ExerciseError,
    check_exercise,
    inputs_kept,
    require_function,
)
from attention_from_scratch.training.optim import AdamState, adam_step

_RNG_SEED = 2031


# Exercise 1: the embedding's backward

def _embedding_dw(dout, tokens, vocab):
    _, cache = embedding_forward(np.zeros((vocab, dout.shape[-1])), tokens=tokens)
    return embedding_backward(dout, cache)


def _fancy_index_add(dout, tokens, vocab):
    dw = np.zeros((vocab, dout.shape[-1]))
    dw[tokens] += dout          # repeated rows: the last write wins
    return dw


def _fancy_index_add_per_row(dout, tokens, vocab):
    dw = np.zeros((vocab, dout.shape[-1]))
    for row_tokens, row_dout in zip(tokens, dout, strict=True):
        dw[row_tokens] += row_dout      # a loop over the batch, buffered inside
    return dw


def _gathered(dout, tokens, vocab):
    return dout.reshape(-1, dout.shape[-1])[:vocab]


def _repeats_averaged(dout, tokens, vocab):
    counts = np.bincount(tokens.reshape(-1), minlength=vocab)[:, None]
    return _embedding_dw(dout, tokens, vocab) / np.maximum(counts, 1)


def _last_row_left_out(dout, tokens, vocab):
    dw = _embedding_dw(dout, tokens, vocab)
    dw[-1] = 0.0
    return dw


def check_embedding_backward(attempt):
    """``attempt(dout (..., D), tokens (...,), vocab) -> dW (V, D)``."""
    rng = np.random.default_rng(_RNG_SEED)
    cases = [(rng.normal(size=(3, 2)), np.array([0, 2, 1]), 4),
             (rng.normal(size=(2, 5, 3)), np.array([[1, 1, 4, 0, 1], [4, 2, 2, 2, 0]]), 6),
             (rng.normal(size=(4, 2)), np.array([3, 3, 3, 3]), 5),
             # the last vocabulary entry, repeated, and the first: a loop that
             # stops one row short, range(vocab - 1), leaves a row out
             (rng.normal(size=(3, 2, 5)), np.array([[6, 0], [2, 6], [6, 3]]), 7)]
    check_exercise("Exercise 1 (embedding backward)", attempt, _embedding_dw, cases, mistakes=[
        (_fancy_index_add, "a repeated token's row was written once (the last write wins) "
                           "instead of adding every occurrence: dw[tokens] += dout does this, "
                           "and so does dw[t] = ... in a loop; use np.add.at, or += in a "
                           "loop over positions"),
        (_fancy_index_add_per_row, "a token repeated within one sequence was written once "
                                   "(the last write wins): dw[row_tokens] += row_dout, in a "
                                   "loop over the batch, still indexes a whole sequence at "
                                   "once. Use np.add.at, or += in a loop over single "
                                   "positions"),
        (_repeats_averaged, "a repeated token's gradients add up, they are not averaged: "
                            "the loss depends on the row once per occurrence, so each "
                            "occurrence contributes its whole dout"),
        (_last_row_left_out, "the last row of dW, token vocab - 1, got nothing: a loop over "
                             "the vocabulary must run over range(vocab), every id from 0 to "
                             "vocab - 1"),
        (_gathered, "dW has one row per vocabulary entry: add each position's gradient to "
                    "the row of its token"),
    ])


# Exercise 2: the cross-entropy's backward

def _ce_grad(logits, targets, pad_id):
    _, cache = cross_entropy_forward(logits, targets=targets, ignore_id=pad_id)
    return cross_entropy_backward(np.array(1.0), cache)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _onehot(targets, vocab):
    return np.eye(vocab)[targets]


def _mean_over_all(logits, targets, pad_id):
    real = (targets != pad_id)[..., None]
    return (_softmax(logits) - _onehot(targets, logits.shape[-1])) * real / targets.size


def _padding_kept(logits, targets, pad_id):
    return (_softmax(logits) - _onehot(targets, logits.shape[-1])) / (targets != pad_id).sum()


def _no_onehot(logits, targets, pad_id):
    real = (targets != pad_id)[..., None]
    return _softmax(logits) * real / real.sum()


def _summed(logits, targets, pad_id):
    real = (targets != pad_id)[..., None]
    return (_softmax(logits) - _onehot(targets, logits.shape[-1])) * real


def _no_softmax(logits, targets, pad_id):
    real = (targets != pad_id)[..., None]
    return (logits - _onehot(targets, logits.shape[-1])) * real / real.sum()


def _pad_id_taken_as_zero(logits, targets, pad_id):
    return _ce_grad(logits, targets, 0)


def _softmax_without_max(logits, targets, pad_id):
    e = np.exp(logits)
    real = (targets != pad_id)[..., None]
    return (e / e.sum(axis=-1, keepdims=True) - _onehot(targets, logits.shape[-1])) * real \
        / real.sum()


def _sign_flipped(logits, targets, pad_id):
    return -_ce_grad(logits, targets, pad_id)


def check_cross_entropy_backward(attempt):
    """``attempt(logits (..., V), targets (...,), pad_id) -> dlogits`` of the mean loss.

    ``pad_id`` here is what ``cross_entropy_forward`` calls ``ignore_id``:
    targets equal to it are left out of the mean.
    """
    rng = np.random.default_rng(_RNG_SEED + 1)
    cases = []
    for shape in [(3, 4), (2, 5, 6), (1, 3, 5)]:
        targets = rng.integers(1, shape[-1], size=shape[:-1])
        targets.reshape(-1)[-1] = 0                       # one padding position
        cases.append((rng.normal(size=shape), targets, 0))
    # pad_id need not be 0: here it is 2, on three positions, none the
    # last, and 0 is a real target
    targets = np.array([[0, 2, 5, 1], [2, 6, 0, 3], [4, 2, 0, 6]])
    cases.append((rng.normal(size=(3, 4, 7)), targets, 2))
    # logits far from 0: exp(800) overflows without the max subtracted
    targets = rng.integers(1, 8, size=(2, 3))
    targets[1, 0] = 0
    cases.append((rng.normal(size=(2, 3, 8)) + 800.0, targets, 0))
    check_exercise("Exercise 2 (cross-entropy backward)", attempt, _ce_grad, cases, mistakes=[
        (_mean_over_all, "the mean is over the real tokens only: divide by their count, not "
                         "by every position's"),
        (_padding_kept, "padding positions must get a zero gradient (they are not in the "
                        "loss)"),
        (_no_onehot, "the gradient of -log p_y is softmax - onehot(y): subtract 1 at the "
                     "target"),
        (_summed, "the loss is a mean: divide by the number of real tokens"),
        (_no_softmax, "the gradient of log-sum-exp is the softmax: softmax(logits) - "
                      "onehot(y), not logits - onehot(y)"),
        (_pad_id_taken_as_zero, "the positions left out are those whose target equals "
                                "pad_id, whatever its value: compare with pad_id, not with "
                                "0 (in this hidden case pad_id is 2, and 0 is a real "
                                "target)"),
        (_softmax_without_max, "exp of logits near 800 overflows to inf, and inf / inf is "
                               "NaN: subtract each row's maximum before the exponential "
                               "(softmax(z) = softmax(z - max z)), as the loss does"),
        (_sign_flipped, "the sign is flipped: the gradient of -log p_y is softmax - "
                        "onehot(y), which is negative at the target"),
    ])


# Exercise 3: one Adam step with bias correction

def _adam(p, g, m, v, t, lr, beta1, beta2, eps):
    """``t`` is the number of steps already taken."""
    new, state = adam_step({"p": p}, {"p": g}, AdamState(t, {"p": m}, {"p": v}), lr=lr,
                           beta1=beta1, beta2=beta2, eps=eps)
    return new["p"], state.m["p"], state.v["p"]


def _no_correction(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - lr * m / (np.sqrt(v) + eps), m, v


def _correction_with_t(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)     # t, not t + 1
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def _no_sqrt(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
    return p - lr * m_hat / (v_hat + eps), m, v


def _corrected_means_kept(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m_hat, v_hat


def _eps_inside_sqrt(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
    return p - lr * m_hat / np.sqrt(v_hat + eps), m, v


def _betas_swapped(p, g, m, v, t, lr, beta1, beta2, eps):
    return _adam(p, g, m, v, t, lr, beta2, beta1, eps)


def _weights_swapped(p, g, m, v, t, lr, beta1, beta2, eps):
    m = (1 - beta1) * m + beta1 * g
    v = (1 - beta2) * v + beta2 * g * g
    m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def _only_m_corrected(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - lr * m / (1 - beta1 ** (t + 1)) / (np.sqrt(v) + eps), m, v


def _only_v_corrected(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - lr * m / (np.sqrt(v / (1 - beta2 ** (t + 1))) + eps), m, v


def _eps_fixed(value):
    """Planted mistake: an eps of the learner's own, not the one passed in."""
    def wrong(p, g, m, v, t, lr, beta1, beta2, eps):
        return _adam(p, g, m, v, t, lr, beta1, beta2, value)
    return wrong


def _betas_fixed(beta1, beta2):
    """Planted mistake: betas of the learner's own, not those passed in."""
    def wrong(p, g, m, v, t, lr, _beta1, _beta2, eps):
        return _adam(p, g, m, v, t, lr, beta1, beta2, eps)
    return wrong


def _v_of_g_not_g_squared(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g
    m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def _eps_before_correction(p, g, m, v, t, lr, beta1, beta2, eps):
    """Kingma & Ba's (2015, section 2) faster ordering, with its eps-hat."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    step_size = lr * np.sqrt(1 - beta2 ** (t + 1)) / (1 - beta1 ** (t + 1))
    return p - step_size * m / (np.sqrt(v) + eps), m, v


def _uphill(p, g, m, v, t, lr, beta1, beta2, eps):
    new_p, m, v = _adam(p, g, m, v, t, lr, beta1, beta2, eps)
    return 2 * p - new_p, m, v


def _old_moments_returned(p, g, m, v, t, lr, beta1, beta2, eps):
    return _adam(p, g, m, v, t, lr, beta1, beta2, eps)[0], m, v


def _adam_cases(seed):
    """Hidden cases ``(p, g, m, v, t, lr, beta1, beta2, eps)``.

    Case 3 has tiny gradients (``|g|`` about 1e-5, and ``sqrt(v_hat)``
    1e-5 to 2e-5): there ``eps = 1e-8`` changes the step by less than
    0.1 % outside the square root, and inside it shrinks the step more
    than five times. Case 4 has small gradients too (``sqrt(v_hat)`` about
    1e-4) and ``eps = 1e-6``, which changes its step by about 1 %: an
    ``eps`` that is not the one passed in (1e-8, 1e-9) shows there. Case 5
    is the very first step (``t = 0``) and comes last: correcting with
    ``beta^t`` there divides by zero, and the earlier cases name that
    mistake first.
    """
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), 0.1 * rng.normal(size=(2, 3)),
             rng.random(size=(2, 3)), 1, 0.01, 0.8, 0.9, 1e-8),
            (rng.normal(size=4), rng.normal(size=4), 0.1 * rng.normal(size=4),
             rng.random(size=4), 4, 0.05, 0.9, 0.98, 1e-9),
            (rng.normal(size=(3, 2)), 1e-5 * rng.normal(size=(3, 2)),
             1e-6 * rng.normal(size=(3, 2)), 1e-12 * rng.random(size=(3, 2)), 2, 0.02,
             0.9, 0.999, 1e-8),
            (rng.normal(size=(2, 5)), 1e-4 * rng.normal(size=(2, 5)),
             1e-5 * rng.normal(size=(2, 5)), 1e-8 * rng.random(size=(2, 5)), 6, 0.003,
             0.85, 0.995, 1e-6),
            (rng.normal(size=3), rng.normal(size=3), np.zeros(3), np.zeros(3), 0, 0.1,
             0.9, 0.98, 1e-9)]


# why an Adam step must leave the arrays passed in as they were, for inputs_kept
_STATE_KEPT = dict.fromkeys("pmv", "The step is a pure function, like adam_step: a caller "
                                   "that keeps the old parameters and state, to compare or "
                                   "to retry the step, must still have them")


def check_adam_step(attempt):
    """``attempt(p, g, m, v, t, lr, beta1, beta2, eps) -> (p, m, v)``; ``t``
    steps were taken before this one. The arrays passed in must stay as
    they were."""
    name = "Exercise 3 (Adam step)"
    require_function(name, attempt)              # the wrapper is callable whatever it holds
    cases = _adam_cases(_RNG_SEED + 2)
    kept = inputs_kept(name, attempt, _adam, atol=1e-30, why=_STATE_KEPT,
                       fix="m = beta1 * m + (1 - beta1) * g, not m *= beta1, and return it")
    check_exercise(name, kept, _adam, cases, mistakes=[
        (_no_correction, "without bias correction the first steps are too small: this is "
                         "step t + 1, so divide the new m by 1 - beta1^(t + 1) and the new v "
                         "by 1 - beta2^(t + 1)"),
        (_correction_with_t, "the step being taken is number t + 1: correct with "
                             "1 - beta^(t + 1)"),
        (_only_m_corrected, "m is corrected but v is not: divide the new v by "
                            "1 - beta2^(t + 1) too"),
        (_only_v_corrected, "v is corrected but m is not: divide the new m by "
                            "1 - beta1^(t + 1) too"),
        (_corrected_means_kept, "return the raw running means m and v as the new state; "
                                "the corrected m_hat and v_hat are only for this step"),
        (_old_moments_returned, "the step is right, the state is not: return the updated m "
                                "and v (with this step's gradient in them), not the ones "
                                "passed in"),
        (_no_sqrt, "divide by the square root of v_hat: Adam scales by the gradient's "
                   "root-mean-square"),
        (_eps_inside_sqrt, "eps goes outside the square root: m_hat / (sqrt(v_hat) + eps), "
                           "not m_hat / sqrt(v_hat + eps). The two agree while sqrt(v_hat) "
                           "is far above eps; in this hidden case the gradients are tiny "
                           "(about 1e-5), and eps under the root shrinks the step "
                           "several times"),
        (_betas_swapped, "beta1 and beta2 are swapped: beta1 is the decay of m (the mean of "
                         "g), beta2 that of v (the mean of g^2), in the updates and in the "
                         "bias corrections"),
        (_weights_swapped, "the running means weigh the old value by beta and the new one "
                           "by 1 - beta: m = beta1 * m + (1 - beta1) * g, not the other way "
                           "round"),
        *((_eps_fixed(value), "use the eps you are given, not a number of your own: the "
                              "hidden cases pass different ones, and where the gradients are "
                              "small (sqrt(v_hat) of 1e-5 to 1e-4) eps changes the step")
          for value in (1e-8, 1e-9, 0.0)),
        *((_betas_fixed(*betas), "use the beta1 and beta2 you are given, not numbers of "
                                 "your own: the hidden cases pass different ones")
          for betas in ((0.9, 0.999), (0.9, 0.98))),
        (_v_of_g_not_g_squared, "v is the running mean of the squared gradient: "
                                "v = beta2 * v + (1 - beta2) * g * g (without the square, "
                                "v can turn negative and its square root NaN)"),
        (_eps_before_correction, "that is the faster ordering at the end of section 2 of "
                                 "Kingma & Ba (2015), with the bias correction folded into "
                                 "the step size and eps added to sqrt(v) before it: its "
                                 "eps-hat is a different eps. This exercise, like "
                                 "adam_step, adds eps after the correction: "
                                 "m_hat / (sqrt(v_hat) + eps)"),
        (_uphill, "the step goes uphill: subtract, p - lr * m_hat / (sqrt(v_hat) + eps)"),
    ], atol=1e-30)      # case 3's m and v are about 1e-6 and 1e-11: compare them relatively


# Exercise 4: find the bug in a training step

BUG_SIZES = {"vocab": 7, "d_model": 8, "d_ff": 12, "n_layers": 2, "n_heads": 2}


def bug_hunt_params():
    """The tiny tied decoder-only model the buggy step trains."""
    rng = np.random.default_rng(_RNG_SEED + 3)
    s = BUG_SIZES
    params = init_decoder_only_params(s["vocab"], s["d_model"], s["d_ff"],
                                      n_layers=s["n_layers"], norm="pre", tied=True, rng=rng)
    return {k: v + rng.normal(scale=0.2, size=v.shape) for k, v in params.items()}


def buggy_forward(params, *, tokens):
    """A forward whose backward, below, has one planted bug."""
    return decoder_only_forward(params, tokens=tokens, n_heads=BUG_SIZES["n_heads"],
                                norm="pre")


def buggy_backward(dlogits, cache):
    """The backward of ``buggy_forward``: one parameter's gradient is wrong."""
    grads = decoder_only_backward(dlogits, cache)
    dlogits_rows = np.asarray(dlogits).reshape(-1, dlogits.shape[-1])
    h = cache.out.h.reshape(-1, cache.out.h.shape[-1])
    grads["embed"] = grads["embed"] - dlogits_rows.T @ h
    return grads


@functools.cache
def _buggy_key():
    tokens = np.random.default_rng(0).integers(1, BUG_SIZES["vocab"], size=(2, 5))
    report = gradient_check(buggy_forward, buggy_backward, (bug_hunt_params(),),
                            kwargs={"tokens": tokens}, rng=np.random.default_rng(1),
                            n_entries=4)
    return tuple(r.name for r in report.rows if r.relative_error > report.tolerance)


def check_bug_hunt(attempt):
    """``attempt() -> str``: the key of ``params`` whose gradient is wrong."""
    name = "Exercise 4 (find the bug)"
    require_function(name, attempt)
    try:
        answer = attempt()
    except NotImplementedError:
        print(f"{name}: not attempted yet")
        return
    wrong = _buggy_key()
    if answer is None:
        raise ExerciseError(name, "your function returned None; return the key as a str")
    if not isinstance(answer, str):
        raise ExerciseError(name, f"return the key as a str, got {type(answer).__name__}")
    if answer not in bug_hunt_params():
        raise ExerciseError(name, f"{answer!r} is not a key of the parameters. The report "
                                  "names its rows params['...']: return only the quoted key "
                                  "inside the brackets")
    if f"params[{answer!r}]" not in wrong:
        raise ExerciseError(name, f"the gradient of {answer!r} passes the check; look for "
                                  "the row whose relative error is above the tolerance")
    print(f"✓ Exercise 4 (find the bug): {answer!r} it is — the tied table also feeds the output "
          "projection, and that share of its gradient was dropped")
