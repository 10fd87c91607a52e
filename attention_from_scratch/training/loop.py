"""The training loop (Chapter 7): batches, loss, backward, clip, Adam.

Everything is a function of explicit data: ``train`` takes the task, the
sizes and a seed, and returns the parameters, the optimiser state and the
history; a checkpoint is those arrays in one ``.npz``.
"""

import json
import time
from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.params import (
    init_decoder_only_params,
    init_encoder_decoder_params,
)
from attention_from_scratch.core import transformer
from attention_from_scratch.core.cross_entropy import (
    cross_entropy_backward,
    cross_entropy_forward,
)
from attention_from_scratch.inference.encoder_decoder import (
    greedy_decoder_only,
    greedy_encoder_decoder,
)
from attention_from_scratch.training.optim import (
    AdamState,
    adam_init,
    adam_step,
    clip_by_global_norm,
    learning_rate,
)
from attention_from_scratch.training.tasks import (
    BOS,
    EOS,
    PAD,
    SEP,
    decode,
    encode,
    make_batch,
    make_task,
)


class Settings(NamedTuple):
    """Everything that defines a run; stored in the checkpoint."""

    task: str
    n_heads: int = 4
    n_layers: int = 2           # per stack: encoder and decoder each
    d_model: int = 64
    d_ff: int = 128
    norm: str = "pre"
    steps: int = 3000
    batch_size: int = 64
    peak_lr: float = 3e-3
    warmup: int = 200
    clip: float = 1.0
    seed: int = 0
    min_len: int = 2
    max_len: int = 8
    test_min_len: int = 0       # 0: the training lengths
    test_max_len: int = 0
    positions: str = "sinusoidal"   # or "alibi" (Press et al. 2022)


def task_of(settings):
    held_lengths = None
    if settings.test_max_len:
        held_lengths = (settings.test_min_len or settings.min_len, settings.test_max_len)
    return make_task(settings.task, seed=settings.seed, min_len=settings.min_len,
                     max_len=settings.max_len, held_out_lengths=held_lengths)


def init_params(settings, task, *, dtype=np.float32):
    rng = np.random.default_rng([settings.seed, 2])
    s = settings
    if task.model == "encoder_decoder":
        return init_encoder_decoder_params(len(task.vocab), s.d_model, s.d_ff,
                                           n_enc=s.n_layers, n_dec=s.n_layers, norm=s.norm,
                                           rng=rng, dtype=dtype)
    return init_decoder_only_params(len(task.vocab), s.d_model, s.d_ff, n_layers=s.n_layers,
                                    norm=s.norm, rng=rng, dtype=dtype)


def forward(params, batch, *, task, settings):
    """Logits ``(B, T, V)`` and the cache, for either kind of model."""
    if task.model == "encoder_decoder":
        return transformer.encoder_decoder_forward(
            params, src=batch.src, tgt=batch.inputs, n_heads=settings.n_heads,
            norm=settings.norm, pad_id=PAD, positions=settings.positions)
    return transformer.decoder_only_forward(params, tokens=batch.inputs,
                                            n_heads=settings.n_heads, norm=settings.norm,
                                            pad_id=PAD, positions=settings.positions)


def loss_and_grads(params, batch, *, task, settings):
    """Mean cross-entropy over the real target tokens and its gradients."""
    logits, cache = forward(params, batch, task=task, settings=settings)
    loss, loss_cache = cross_entropy_forward(logits, targets=batch.targets, ignore_id=PAD)
    dlogits = cross_entropy_backward(np.array(1.0, dtype=logits.dtype), loss_cache)
    if task.model == "encoder_decoder":
        return float(loss), transformer.encoder_decoder_backward(dlogits, cache)
    return float(loss), transformer.decoder_only_backward(dlogits, cache)


def train_step(params, state, batch, *, task, settings):
    """One step: gradients, global-norm clipping, scheduled Adam."""
    loss, grads = loss_and_grads(params, batch, task=task, settings=settings)
    grads, norm = clip_by_global_norm(grads, settings.clip)
    lr = learning_rate(state.step, peak=settings.peak_lr, warmup=settings.warmup,
                       total=settings.steps)
    params, state = adam_step(params, grads, state, lr=lr)
    return params, state, loss, norm


def greedy(params, sources, *, task, settings, max_new=None):
    """Greedy outputs (word lists) for a list of source word lists,
    decoded with the key/value cache."""
    max_new = max_new or task.max_len + 2
    if task.model == "encoder_decoder":
        batch = make_batch(task, [(s, []) for s in sources])
        out = greedy_encoder_decoder(params, batch.src, n_heads=settings.n_heads,
                                     max_new=max_new, bos=BOS, eos=EOS, norm=settings.norm,
                                     pad_id=PAD, positions=settings.positions)
    else:
        out = greedy_decoder_only(params, [encode(task, s) + [SEP] for s in sources],
                                  n_heads=settings.n_heads, max_new=max_new,
                                  norm=settings.norm, pad_id=PAD,
                                  positions=settings.positions)
    return [decode(task, row) for row in out]


def evaluate(params, pairs, *, task, settings):
    """Exact match on ``pairs``: overall and per source length."""
    outputs = greedy(params, [s for s, _ in pairs], task=task, settings=settings)
    correct = {}
    for out, (source, target) in zip(outputs, pairs, strict=True):
        correct.setdefault(len(source), []).append(out == target)
    total = sum(sum(c) for c in correct.values())
    return (total / len(pairs),
            {length: float(np.mean(c)) for length, c in sorted(correct.items())})


class Run(NamedTuple):
    settings: Settings
    params: dict
    state: AdamState
    history: dict              # step, loss, accuracy, cpu seconds: lists


def new_run(settings):
    task = task_of(settings)
    params = init_params(settings, task)
    return Run(settings, params, adam_init(params),
               {"step": [], "loss": [], "eval_step": [], "accuracy": [], "cpu_seconds": []})


def train(run, *, until=None, eval_every=250, eval_size=200, progress=None, stop_at=None):
    """Continue ``run`` to step ``until`` (default: ``settings.steps``).

    Parameters
    ----------
    run : Run
        From :func:`new_run` or :func:`load_checkpoint`.
    until : int, optional
    eval_every : int
        Held-out exact match is measured every this many steps and at the
        end.
    eval_size : int
        Held-out pairs used for those measurements.
    progress : callable, optional
        ``progress(step, total, loss, accuracy, cpu_seconds)`` after
        each step.
    stop_at : float, optional
        Stop once exact match reaches it on ``eval_size`` fresh pairs of
        the training distribution, measured with the held-out set. Never
        on the held-out set itself: that set stays a test, so the
        held-out accuracy of a stopped run is not chosen by the stop.

    Returns
    -------
    run : Run
        Interrupting (Ctrl-C) returns the run as of the last full step;
        ``run.history["interrupted"]`` is then True.
    """
    settings, params, state, history = run
    history = {k: list(v) for k, v in history.items() if k != "interrupted"}
    history["interrupted"] = False
    task = task_of(settings)
    until = settings.steps if until is None else until
    cpu_start = time.process_time() - (history["cpu_seconds"][-1]
                                       if history["cpu_seconds"] else 0.0)
    accuracy = history["accuracy"][-1] if history["accuracy"] else float("nan")
    if stop_at is not None:
        stop_rng = np.random.default_rng([settings.seed, 4])
        validation = [task.sample(stop_rng) for _ in range(eval_size)]
    try:
        while state.step < until:
            # step n's batch depends on (seed, n) only: a resumed run sees the same data
            rng = np.random.default_rng([settings.seed, 3, state.step])
            batch = make_batch(task, [task.sample(rng) for _ in range(settings.batch_size)])
            new_params, new_state, loss, _ = train_step(params, state, batch, task=task,
                                                        settings=settings)
            params, state = new_params, new_state        # a step is all or nothing
            history["step"].append(state.step)
            history["loss"].append(loss)
            history["cpu_seconds"].append(time.process_time() - cpu_start)
            if state.step % eval_every == 0 or state.step == until:
                accuracy, _ = evaluate(params, task.held_out[:eval_size], task=task,
                                       settings=settings)
                history["eval_step"].append(state.step)
                history["accuracy"].append(accuracy)
            if progress is not None:
                progress(state.step, until, loss, accuracy, history["cpu_seconds"][-1])
            if stop_at is not None and history["eval_step"] \
                    and history["eval_step"][-1] == state.step:
                validation_accuracy, _ = evaluate(params, validation, task=task,
                                                  settings=settings)
                if validation_accuracy >= stop_at:
                    break
    except KeyboardInterrupt:
        history["interrupted"] = True
    history["cpu_seconds"] = history["cpu_seconds"][:len(history["step"])]
    return Run(settings, params, state, history)


def save_checkpoint(path, run):
    """Parameters, Adam moments, settings and history in one ``.npz``."""
    arrays = {f"param/{k}": v for k, v in run.params.items()}
    arrays.update({f"adam_m/{k}": v for k, v in run.state.m.items()})
    arrays.update({f"adam_v/{k}": v for k, v in run.state.v.items()})
    meta = {"settings": run.settings._asdict(), "adam_step": run.state.step,
            "history": run.history}
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_checkpoint(path):
    """The :class:`Run` saved by :func:`save_checkpoint`."""
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))

        def part(prefix):
            return {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}
        params, m, v = part("param/"), part("adam_m/"), part("adam_v/")
    history = {k: val for k, val in meta["history"].items() if k != "interrupted"}
    return Run(Settings(**meta["settings"]), params, AdamState(meta["adam_step"], m, v),
               history)
