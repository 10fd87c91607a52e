import numpy as np

from attention_from_scratch.training.analysis import alignment, head_table
from attention_from_scratch.training.loop import Settings, init_params, task_of
from attention_from_scratch.training.tasks import make_task


def test_alignment_of_reversal_is_the_mirror():
    task = make_task("reversal")
    assert alignment(task, list("1234"), list("4321")) == [3, 2, 1, 0]


def test_alignment_of_every_translation_pair_points_at_its_word():
    task = make_task("translation")
    from attention_from_scratch.training.analysis import ENGLISH_TO_SPANISH
    for source, target in task.held_out:
        aligned = alignment(task, source, target)
        assert len(aligned) == len(target)
        pairs = zip(aligned, target, strict=True)
        assert all(source[j] in ENGLISH_TO_SPANISH[w] for j, w in pairs)
    assert alignment(task, "la mujer ve el perro".split(), "the woman sees the dog".split()) \
        == [0, 1, 2, 3, 4]


def test_head_table_is_a_set_of_fractions():
    settings = Settings(task="translation", d_model=16, d_ff=32, n_heads=2, n_layers=2)
    task = task_of(settings)
    params = init_params(settings, task)
    table = head_table(params, task.held_out[:20], task=task, settings=settings)
    assert {k: v.shape for k, v in table.items()} == {k: (2, 2) for k in table}
    assert np.all((table["on_aligned"] >= 0) & (table["on_aligned"] <= 1))
    assert np.all((table["local"] > 0) & (table["local"] <= 1 + 1e-6))
    # untrained attention is spread out: far from all weight on one word
    assert table["on_aligned"].max() < 0.6
