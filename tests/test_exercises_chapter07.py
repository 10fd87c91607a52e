"""Chapter 7's checkers accept the right answers and reject planted wrong ones."""

import numpy as np
import pytest

from attention_from_scratch.exercises import ExerciseError
from attention_from_scratch.exercises import chapter07 as ex


def test_embedding_backward(capsys):
    def loop(dout, tokens, vocab):
        dw = np.zeros((vocab, dout.shape[-1]))
        for idx in np.ndindex(tokens.shape):
            dw[tokens[idx]] += dout[idx]
        return dw

    ex.check_embedding_backward(loop)
    assert "✓ Exercise 1 (embedding backward)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="the last write wins"):
        ex.check_embedding_backward(ex._fancy_index_add)

    def loop_overwrites(dout, tokens, vocab):
        dw = np.zeros((vocab, dout.shape[-1]))
        for idx in np.ndindex(tokens.shape):
            dw[tokens[idx]] = dout[idx]          # = where += is needed
        return dw

    with pytest.raises(AssertionError, match=r"dw\[t\] = \.\.\. in a loop") as caught:
        ex.check_embedding_backward(loop_overwrites)
    assert "def " not in str(caught.value)      # the hint, never the checker's source


def test_cross_entropy_backward(capsys):
    def mine(logits, targets, pad_id):
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        onehot = np.eye(logits.shape[-1])[targets]
        real = (targets != pad_id)[..., None]
        return (p - onehot) * real / real.sum()

    ex.check_cross_entropy_backward(mine)
    assert "✓ Exercise 2 (cross-entropy backward)" in capsys.readouterr().out
    for wrong, hint in [(ex._mean_over_all, "real tokens only"),
                        (ex._padding_kept, "zero gradient"),
                        (ex._no_onehot, "subtract 1"),
                        (ex._summed, "is a mean"),
                        (ex._no_softmax, "not logits - onehot"),
                        (ex._sign_flipped, "sign is flipped")]:
        with pytest.raises(AssertionError, match=hint):
            ex.check_cross_entropy_backward(wrong)


def test_adam_step(capsys):
    def mine(p, g, m, v, t, lr, beta1, beta2, eps):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
        return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v

    ex.check_adam_step(mine)
    assert "✓ Exercise 3 (Adam step)" in capsys.readouterr().out
    for wrong, hint in [(ex._no_correction, "bias correction"),
                        (ex._correction_with_t, "t \\+ 1"),
                        (ex._corrected_means_kept, "raw running means"),
                        (ex._no_sqrt, "square root")]:
        with pytest.raises(AssertionError, match=hint):
            ex.check_adam_step(wrong)


def test_adam_corrected_with_the_steps_before_gets_its_hint():
    # what learners write: t as given (the steps before this one) in the correction
    def with_t(p, g, m, v, t, lr, beta1, beta2, eps):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v

    with pytest.raises(ExerciseError, match="step t \\+ 1|number t \\+ 1"):
        ex.check_adam_step(with_t)


def _moments(g, m, v, beta1, beta2):
    return beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g ** 2


def _corrected(m, v, t, beta1, beta2):
    return m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))


def adam_eps_inside_sqrt(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    m_hat, v_hat = _corrected(m, v, t, beta1, beta2)
    return p - lr * m_hat / np.sqrt(v_hat + eps), m, v


def adam_betas_swapped(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta2, beta1)
    m_hat, v_hat = _corrected(m, v, t, beta2, beta1)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adam_counts_from_zero(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)   # t: the steps before
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adam_uncorrected(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    return p - lr * m / (np.sqrt(v) + eps), m, v


def adam_only_m_corrected(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    m_hat, _ = _corrected(m, v, t, beta1, beta2)
    return p - lr * m_hat / (np.sqrt(v) + eps), m, v


def adam_only_v_corrected(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    _, v_hat = _corrected(m, v, t, beta1, beta2)
    return p - lr * m / (np.sqrt(v_hat) + eps), m, v


def adam_weights_swapped(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = (1 - beta1) * m + beta1 * g, (1 - beta2) * v + beta2 * g ** 2
    m_hat, v_hat = _corrected(m, v, t, beta1, beta2)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adam_uphill(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    m_hat, v_hat = _corrected(m, v, t, beta1, beta2)
    return p + lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adam_old_state(p, g, m, v, t, lr, beta1, beta2, eps):
    new_m, new_v = _moments(g, m, v, beta1, beta2)
    m_hat, v_hat = _corrected(new_m, new_v, t, beta1, beta2)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


@pytest.mark.parametrize(("wrong", "hint"), [
    (adam_eps_inside_sqrt, r"eps goes outside the square root: "
                           r"m_hat / \(sqrt\(v_hat\) \+ eps\)"),
    (adam_betas_swapped, "beta1 and beta2 are swapped"),
    (adam_counts_from_zero, r"number t \+ 1"),
    (adam_uncorrected, "without bias correction"),
    (adam_only_m_corrected, "m is corrected but v is not"),
    (adam_only_v_corrected, "v is corrected but m is not"),
    (adam_weights_swapped, "weigh the old value by beta"),
    (adam_uphill, "the step goes uphill"),
    (adam_old_state, "return the updated m and v"),
])
def test_adam_mistakes_written_as_a_learner_would_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint) as caught:
        ex.check_adam_step(wrong)
    assert "def " not in str(caught.value)      # the hint, never the checker's source
    assert "is wrong on case" not in caught.value.message


def test_adam_eps_inside_sqrt_passes_every_case_but_the_small_gradients():
    # the case that catches it is needed: elsewhere the two formulas agree
    cases = ex._adam_cases(ex._RNG_SEED + 2)
    for number, args in enumerate(cases, start=1):
        right, wrong = ex._adam(*args)[0], adam_eps_inside_sqrt(*args)[0]
        assert np.allclose(wrong, right, rtol=1e-6, atol=1e-9) == (number not in (3, 4))


def test_the_adam_cases_hold_what_their_docstring_says():
    p, g, m, v, t, lr, beta1, beta2, eps = ex._adam_cases(ex._RNG_SEED + 2)[2]
    m, v = _moments(g, m, v, beta1, beta2)
    m_hat, v_hat = _corrected(m, v, t, beta1, beta2)
    assert np.all((1e-6 < np.abs(g)) & (np.abs(g) < 1e-4))
    assert np.all((1e-5 < np.sqrt(v_hat)) & (np.sqrt(v_hat) < 2e-5))
    assert np.all(eps / np.sqrt(v_hat) < 1e-3)                   # < 0.1 % outside
    assert np.all(np.sqrt(v_hat + eps) > 5 * (np.sqrt(v_hat) + eps))   # > 5 x inside
    assert ex._adam_cases(ex._RNG_SEED + 2)[-1][4] == 0           # the first step last


def test_bug_hunt(capsys):
    ex.check_bug_hunt(lambda: "embed")
    assert "✓ Exercise 4 (find the bug)" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="passes the check"):
        ex.check_bug_hunt(lambda: "out.b")
    with pytest.raises(ExerciseError, match="only the quoted key"):
        ex.check_bug_hunt(lambda: "params['embed']")      # the row name as printed
    with pytest.raises(ExerciseError, match="as a str"):
        ex.check_bug_hunt(lambda: None)

    def stub():
        raise NotImplementedError

    ex.check_bug_hunt(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_embedding_backward_mistakes_the_old_cases_let_through():
    def stops_one_row_short(dout, tokens, vocab):
        dw = np.zeros((vocab, dout.shape[-1]))
        for v in range(vocab - 1):                   # the last id never visited
            dw[v] = dout[tokens == v].sum(axis=0)
        return dw

    def batch_loop_indexing_a_row(dout, tokens, vocab):
        dw = np.zeros((vocab, dout.shape[-1]))
        for row_tokens, row_dout in zip(tokens, dout, strict=True):
            dw[row_tokens] += row_dout               # buffered within a sequence
        return dw

    with pytest.raises(ExerciseError, match=r"must run over range\(vocab\)"):
        ex.check_embedding_backward(stops_one_row_short)
    with pytest.raises(ExerciseError, match="repeated within one sequence"):
        ex.check_embedding_backward(batch_loop_indexing_a_row)


def _stable_softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_cross_entropy_backward_mistakes_the_old_cases_let_through():
    def pad_is_zero(logits, targets, pad_id):        # pad_id never read
        real = (targets != 0)[..., None]
        return (_stable_softmax(logits) - np.eye(logits.shape[-1])[targets]) * real / real.sum()

    def softmax_without_max(logits, targets, pad_id):
        p = np.exp(logits)
        p /= p.sum(axis=-1, keepdims=True)
        real = (targets != pad_id)[..., None]
        return (p - np.eye(logits.shape[-1])[targets]) * real / real.sum()

    def one_padding_position(logits, targets, pad_id):   # divides by size - 1
        real = (targets != pad_id)[..., None]
        return ((_stable_softmax(logits) - np.eye(logits.shape[-1])[targets]) * real
                / (targets.size - 1))

    with pytest.raises(ExerciseError, match="compare with pad_id, not with 0"):
        ex.check_cross_entropy_backward(pad_is_zero)
    with pytest.raises(ExerciseError, match="subtract each row's maximum"):
        ex.check_cross_entropy_backward(softmax_without_max)
    with pytest.raises(ExerciseError, match="is wrong on case 4"):
        ex.check_cross_entropy_backward(one_padding_position)


def adam_own_eps(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    m_hat, v_hat = _corrected(m, v, t, beta1, beta2)
    return p - lr * m_hat / (np.sqrt(v_hat) + 1e-8), m, v


def adam_own_betas(p, g, m, v, t, lr, beta1, beta2, eps):
    return ex._adam(p, g, m, v, t, lr, 0.9, 0.999, eps)


def adam_v_of_g(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g                  # the square forgotten
    m_hat, v_hat = _corrected(m, v, t, beta1, beta2)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adam_papers_faster_ordering(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    step_size = lr * np.sqrt(1 - beta2 ** (t + 1)) / (1 - beta1 ** (t + 1))
    return p - step_size * m / (np.sqrt(v) + eps), m, v


def adam_in_place(p, g, m, v, t, lr, beta1, beta2, eps):
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g ** 2
    p -= lr * (m / (1 - beta1 ** (t + 1))) / (np.sqrt(v / (1 - beta2 ** (t + 1))) + eps)
    return p, m, v


def adam_parameters_in_place(p, g, m, v, t, lr, beta1, beta2, eps):
    m, v = _moments(g, m, v, beta1, beta2)
    m_hat, v_hat = _corrected(m, v, t, beta1, beta2)
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


@pytest.mark.parametrize(("wrong", "hint"), [
    (adam_own_eps, "use the eps you are given"),
    (adam_own_betas, "use the beta1 and beta2 you are given"),
    (adam_v_of_g, "running mean of the squared gradient"),
    (adam_papers_faster_ordering, "faster ordering .* Kingma & Ba"),
    (adam_in_place, r"are right, but your function changed its arguments `p`, `m` and `v` "
                    r"in place.*a pure function"),
    (adam_parameters_in_place, r"are right, but your function changed its argument `p` in "
                               r"place.*a pure function"),
])
def test_adam_mistakes_the_old_cases_let_through_get_their_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_adam_step(wrong)


def test_adam_in_place_and_wrong_gets_the_mistakes_hint():
    def in_place_uncorrected(p, g, m, v, t, lr, beta1, beta2, eps):
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g ** 2
        p -= lr * m / (np.sqrt(v) + eps)
        return p, m, v

    with pytest.raises(ExerciseError, match="without bias correction"):
        ex.check_adam_step(in_place_uncorrected)


def test_adam_right_answers_written_differently(capsys):
    def pytorch_ordering(p, g, m, v, t, lr, beta1, beta2, eps):
        m, v = _moments(g, m, v, beta1, beta2)
        step = t + 1
        denom = np.sqrt(v) / np.sqrt(1 - beta2 ** step) + eps
        return p - lr / (1 - beta1 ** step) * m / denom, m, v

    def copies_then_in_place(p, g, m, v, t, lr, beta1, beta2, eps):
        p, m, v = p.copy(), m.copy(), v.copy()
        return adam_in_place(p, g, m, v, t, lr, beta1, beta2, eps)

    ex.check_adam_step(pytorch_ordering)
    ex.check_adam_step(copies_then_in_place)
    assert capsys.readouterr().out.count("✓ Exercise 3 (Adam step)") == 2


def test_embedding_backward_repeats_averaged_named():
    def averaged(dout, tokens, vocab):
        dw = np.zeros((vocab, dout.shape[-1]))
        for v in np.unique(tokens):
            dw[v] = dout[tokens == v].mean(axis=0)
        return dw

    with pytest.raises(ExerciseError, match="not averaged"):
        ex.check_embedding_backward(averaged)
