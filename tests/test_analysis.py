import numpy as np

from attention_from_scratch.training.analysis import (
    OUTCOMES,
    alignment,
    head_table,
    outcome,
    outcomes_by_length,
    uniform_weights,
)
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


def test_uniform_baseline_matches_its_closed_forms():
    # uniform weights 1/S on S source words: on the aligned word 1/S; within
    # +-1 of query i: (number of j with |i - j| <= 1) / S; mean distance
    # (S^2 - 1) / (3 S), averaged over the queries
    settings = Settings(task="reversal", n_layers=2, n_heads=3)
    task = task_of(settings)
    pairs = [(list("1234567"), list("7654321")), (list("89"), list("98")),
             (list("3141"), list("1413"))]
    table = head_table(None, pairs, task=task, settings=settings, uniform=True)
    lengths = np.array([7, 2, 4])
    on_aligned = (lengths * (1 / lengths)).sum() / lengths.sum()
    local = sum((3 * s - 2) / s for s in lengths) / lengths.sum()
    distance = sum(s * (s * s - 1) / (3 * s) for s in lengths) / lengths.sum()
    assert np.allclose(table["on_aligned"], on_aligned)
    assert np.allclose(table["local"], local)
    assert np.allclose(table["distance"], distance)


def test_uniform_weights_are_rows_over_the_visible_keys_only():
    settings = Settings(task="translation", n_layers=1, n_heads=2)
    task = task_of(settings)
    pairs = task.held_out[:5]
    weights = uniform_weights(pairs, task=task, settings=settings)
    for key in ("enc.0", "dec.0.cross"):
        w = weights[key]
        assert np.allclose(w.sum(axis=-1), 1.0)
        for b, (source, _) in enumerate(pairs):
            assert np.all(w[b, ..., len(source):] == 0)          # padding gets nothing
            assert np.allclose(w[b, ..., :len(source)], 1 / len(source))


def test_untrained_heads_sit_near_the_uniform_baseline():
    settings = Settings(task="translation", d_model=16, d_ff=32, n_heads=2, n_layers=2)
    task = task_of(settings)
    params = init_params(settings, task)
    pairs = task.held_out[:20]
    model = head_table(params, pairs, task=task, settings=settings)
    uniform = head_table(params, pairs, task=task, settings=settings, uniform=True)
    # random weights spread attention almost evenly: close to the baseline
    assert np.allclose(model["on_aligned"], uniform["on_aligned"], atol=0.1)


def test_outcome_tells_the_kinds_of_miss_apart():
    target = list("4321")
    assert outcome(list("4321"), target) == "right"
    assert outcome(list("432"), target) == "stopped early"
    assert outcome([], target) == "stopped early"
    assert outcome(list("43210"), target) == "ran long"
    assert outcome(list("4322"), target) == "wrong words"
    assert outcome(list("12"), target) == "stopped early"      # short and wrong: short


def test_outcomes_by_length_are_fractions_per_length():
    pairs = [(list("12"), list("21")), (list("12"), list("21")), (list("123"), list("321"))]
    outputs = [list("21"), list("2"), list("3210")]
    table = outcomes_by_length(outputs, pairs)
    assert list(table) == [2, 3]
    assert table[2] == {"right": 0.5, "stopped early": 0.5, "ran long": 0.0, "wrong words": 0.0}
    assert table[3]["ran long"] == 1.0
    assert all(set(row) == set(OUTCOMES) for row in table.values())
