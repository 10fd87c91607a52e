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
