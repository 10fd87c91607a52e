import numpy as np
import pytest

from attention_from_scratch.training.tasks import (
    EOS,
    PAD,
    TASKS,
    decode,
    encode,
    make_batch,
    make_task,
)


@pytest.mark.parametrize("name", TASKS)
def test_held_out_never_sampled_and_seeded(name):
    task = make_task(name, seed=3)
    held = {tuple(s) for s, _ in task.held_out}
    assert len(held) == len(task.held_out)
    rng = np.random.default_rng(0)
    assert not any(tuple(task.sample(rng)[0]) in held for _ in range(3000))
    assert make_task(name, seed=3).held_out == task.held_out
    assert make_task(name, seed=4).held_out != task.held_out


def test_digit_tasks_are_what_they_say():
    rng = np.random.default_rng(0)
    for _ in range(50):
        s, t = make_task("reversal").sample(rng)
        assert t == s[::-1] and 2 <= len(s) <= 8
        s, t = make_task("sorting").sample(rng)
        assert t == sorted(s)


def test_translation_reorders_and_agrees():
    task = make_task("translation")
    pairs = dict((" ".join(s), " ".join(t)) for s, t in task.held_out)
    assert pairs["el gato se sentó en la alfombra"] == "the cat sat on the mat"
    assert pairs["el gato negro se sentó en la alfombra"] == "the black cat sat on the mat"
    rng = np.random.default_rng(1)
    feminine = {"negra", "blanca", "roja", "pequeña", "vieja"}
    masculine = {"negro", "blanco", "rojo", "pequeño", "viejo"}
    for _ in range(300):
        s, t = task.sample(rng)
        for i, word in enumerate(s[:-2]):
            if word in ("el", "un"):      # masculine determiner: masculine adjective
                assert s[i + 2] not in feminine
            if word in ("la", "una"):
                assert s[i + 2] not in masculine


def test_length_generalisation_split():
    task = make_task("reversal", max_len=8, held_out_lengths=(9, 16), n_held_out=50)
    assert all(9 <= len(s) <= 16 for s, _ in task.held_out)
    rng = np.random.default_rng(0)
    assert all(len(task.sample(rng)[0]) <= 8 for _ in range(200))


def test_batches_shift_and_pad():
    task = make_task("reversal")
    batch = make_batch(task, [("1 2 3".split(), "3 2 1".split()), (["4"], ["4"])])
    assert decode(task, batch.src[0]) == ["1", "2", "3"]
    np.testing.assert_array_equal(batch.inputs[:, 1:], batch.targets[:, :-1] * (
        batch.targets[:, :-1] != EOS))
    assert batch.targets[1].tolist() == encode(task, ["4"]) + [EOS, PAD, PAD]
    sorting = make_task("sorting")
    b = make_batch(sorting, [("3 1".split(), "1 3".split())])
    assert b.targets[0].tolist() == [PAD, PAD] + encode(sorting, ["1", "3"]) + [EOS]


def test_unknown_task():
    with pytest.raises(ValueError, match="task must be one of reversal, sorting, translation"):
        make_task("copying")
