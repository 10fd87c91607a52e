"""The chapter's longer experiments, as functions that write small JSON.

- ``heads``: 1 head against 4 heads at the same width ``D`` on sorting
  and reversal, several seeds, held-out exact match after a fixed number
  of steps (in the spirit of Vaswani et al. 2017, table 3, row A).
- ``length``: train reversal (encoder–decoder) and sorting (decoder-only)
  on lengths 2..8, test exact match per length on 2..16 (lengths 9..16
  never seen in training), with sinusoidal positions and with ALiBi's
  linear biases (Press et al. 2022).

``python -m attention_from_scratch experiment heads --out results`` runs
one; ``--quick`` shrinks it to seconds (what the tests run).
"""

import json
import time

from attention_from_scratch.training.loop import Settings, evaluate, new_run, task_of, train


def _run(settings, eval_size):
    start = time.process_time()
    run = train(new_run(settings), eval_every=10 ** 9, eval_size=eval_size)
    task = task_of(settings)
    accuracy, per_length = evaluate(run.params, task.held_out, task=task, settings=settings)
    return {"accuracy": accuracy, "per_length": {str(k): v for k, v in per_length.items()},
            "final_loss": run.history["loss"][-1],
            "cpu_seconds": round(time.process_time() - start, 1)}


def heads_experiment(*, tasks=("sorting", "reversal"), heads=(1, 4), seeds=(0, 1, 2),
                     steps=600, d_model=32, quick=False, log=None):
    """Held-out exact match for each task, head count and seed."""
    if quick:
        tasks, seeds, steps, d_model = tasks[:1], seeds[:2], 30, 16
    results = []
    for task in tasks:
        for n_heads in heads:
            for seed in seeds:
                settings = Settings(task=task, n_heads=n_heads, d_model=d_model,
                                    d_ff=2 * d_model, steps=steps, seed=seed,
                                    warmup=min(200, steps // 10), batch_size=64)
                row = {"task": task, "heads": n_heads, "seed": seed, "steps": steps,
                       **_run(settings, 200)}
                results.append(row)
                if log:
                    log(row)
    return {"experiment": "heads", "d_model": d_model, "results": results}


def length_experiment(*, tasks=("reversal", "sorting"), positions=("sinusoidal", "alibi"),
                      seeds=(0, 1, 2), steps=1500, d_model=64, quick=False, log=None):
    """Exact match per length, training on 2..8, testing on 2..16, for
    sinusoidal positions and ALiBi on the same split and seeds."""
    if quick:
        seeds, steps, d_model = seeds[:1], 30, 16
    results = []
    for task in tasks:
        for encoding in positions:
            for seed in seeds:
                settings = Settings(task=task, d_model=d_model, d_ff=2 * d_model, steps=steps,
                                    seed=seed, warmup=min(200, steps // 10), max_len=8,
                                    test_min_len=2, test_max_len=16, positions=encoding)
                row = {"task": task, "positions": encoding, "seed": seed, "steps": steps,
                       **_run(settings, 200)}
                results.append(row)
                if log:
                    log(row)
    return {"experiment": "length", "train_lengths": [2, 8], "test_lengths": [2, 16],
            "results": results}


EXPERIMENTS = {"heads": heads_experiment, "length": length_experiment}


def run_experiment(name, path, *, quick=False, log=None):
    """Run experiment ``name`` and write its JSON to ``path``."""
    result = EXPERIMENTS[name](quick=quick, log=log)
    with open(path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    return result
