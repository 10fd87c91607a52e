
import numpy as np
import pytest

from attention_from_scratch.__main__ import main
from attention_from_scratch.training.loop import (
    Settings,
    load_checkpoint,
    new_run,
    save_checkpoint,
    train,
)


def test_training_lowers_the_loss_and_checkpoints_round_trip(tmp_path):
    settings = Settings(task="translation", d_model=16, d_ff=32, n_heads=2, n_layers=1,
                        steps=40, batch_size=16, warmup=5)
    run = train(new_run(settings), eval_every=40, eval_size=20)
    assert np.mean(run.history["loss"][-5:]) < 0.8 * np.mean(run.history["loss"][:5])
    path = tmp_path / "run.npz"
    save_checkpoint(path, run)
    loaded = load_checkpoint(path)
    assert loaded.settings == settings and loaded.state.step == 40
    for key in run.params:
        np.testing.assert_array_equal(loaded.params[key], run.params[key])
        np.testing.assert_array_equal(loaded.state.v[key], run.state.v[key])


def test_resume_gives_the_same_steps_as_one_run():
    settings = Settings(task="reversal", d_model=16, d_ff=32, n_heads=2, n_layers=1,
                        steps=12, batch_size=8, warmup=3)
    whole = train(new_run(settings), eval_every=100)
    half = train(new_run(settings), until=6, eval_every=100)
    resumed = train(half, eval_every=100)
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"], rtol=1e-5)
    for key in whole.params:
        np.testing.assert_allclose(resumed.params[key], whole.params[key], rtol=1e-4, atol=1e-6)


def test_train_command_writes_checkpoint_and_curve_and_resumes(tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert main(["train", "sorting", "--steps", "6", "--width", "16", "--heads", "2",
                 "--layers", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "\rstep     6/6" in err and "saved" in err
    assert (out / "sorting_loss.csv").read_text().count("\n") == 7
    assert main(["train", "sorting", "--resume", "--steps", "9", "--out", str(out)]) == 0
    assert load_checkpoint(out / "sorting.npz").state.step == 9
    assert "resuming" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "copying"], "invalid choice: 'copying'"),
    (["train", "reversal", "--heads", "3"], "--heads 3 must divide --width 64"),
    (["train", "reversal", "--steps", "0"], "expected a number >= 1, got 0"),
    (["train", "reversal", "--steps", "ten"], "expected a whole number, got 'ten'"),
    (["train", "reversal", "--resume", "--out", "/nonexistent-dir"], "no checkpoint"),
])
def test_bad_arguments_get_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "train: error:" in err          # the train command's own usage, not the top level's


def test_ctrl_c_leaves_a_usable_run():
    settings = Settings(task="reversal", d_model=16, d_ff=32, n_heads=2, n_layers=1,
                        steps=50, batch_size=8, warmup=3)

    def interrupt(step, total, loss, accuracy, cpu_seconds):
        if step == 4:
            raise KeyboardInterrupt

    run = train(new_run(settings), progress=interrupt, eval_every=100)
    assert run.history["interrupted"] and run.state.step == 4
    assert len(run.history["loss"]) == 4 == len(run.history["cpu_seconds"])
    assert all(np.isfinite(p).all() for p in run.params.values())


@pytest.mark.parametrize("name", ["heads", "length"])
def test_quick_experiments_write_the_format_the_chapter_reads(tmp_path, name):
    import json
    assert main(["experiment", name, "--quick", "--out", str(tmp_path)]) == 0
    fresh = json.loads((tmp_path / f"{name}.json").read_text())
    from pathlib import Path
    stored = json.loads((Path(__file__).parents[1] / "chapters" / "results" /
                         f"{name}.json").read_text())
    assert fresh["experiment"] == stored["experiment"] == name
    assert set(fresh["results"][0]) == set(stored["results"][0])
    for row in fresh["results"]:
        assert 0.0 <= row["accuracy"] <= 1.0


def test_quick_length_experiment_compares_alibi_with_sinusoidal(tmp_path):
    """Both encodings on the same split and seeds, stored and regenerated."""
    import json
    from pathlib import Path
    assert main(["experiment", "length", "--quick", "--out", str(tmp_path)]) == 0
    fresh = json.loads((tmp_path / "length.json").read_text())
    stored = json.loads((Path(__file__).parents[1] / "chapters" / "results" /
                         "length.json").read_text())
    for result in (fresh, stored):
        seeds = {}
        for row in result["results"]:
            seeds.setdefault((row["task"], row["positions"]), []).append(row["seed"])
            assert sorted(map(int, row["per_length"])) == list(range(2, 17))
            assert all(0.0 <= a <= 1.0 for a in row["per_length"].values())
        assert {task for task, _ in seeds} == {"reversal", "sorting"}
        for task in ("reversal", "sorting"):
            assert sorted(seeds[task, "sinusoidal"]) == sorted(seeds[task, "alibi"])
    assert all(len(s) >= 3 for s in seeds.values())      # stored: >= 3 seeds for each


@pytest.mark.parametrize(("fresh_accuracy", "held_out_accuracy", "last_step"), [
    (1.0, 0.0, 2),      # the fresh training pairs are right: stop at the first evaluation
    (0.0, 1.0, 6),      # only the held-out set is right: that must not stop the run
])
def test_stop_at_decides_on_fresh_pairs_never_the_held_out_set(
        fresh_accuracy, held_out_accuracy, last_step, monkeypatch):
    from attention_from_scratch.training import loop

    settings = Settings(task="reversal", d_model=16, d_ff=32, n_heads=2, n_layers=1,
                        steps=6, batch_size=8, warmup=2)
    held_out = {tuple(source) for source, _ in loop.task_of(settings).held_out}

    def scripted(params, pairs, *, task, settings):
        is_held_out = all(tuple(source) in held_out for source, _ in pairs)
        assert is_held_out or not any(tuple(source) in held_out for source, _ in pairs)
        return (held_out_accuracy if is_held_out else fresh_accuracy), {}

    monkeypatch.setattr(loop, "evaluate", scripted)
    run = loop.train(loop.new_run(settings), eval_every=2, eval_size=10, stop_at=0.99)
    assert run.state.step == last_step
