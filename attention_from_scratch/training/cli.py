"""``python -m attention_from_scratch train TASK``: train, show progress, save.

Writes ``OUT/TASK.npz`` (parameters, Adam state, settings and history,
loadable with ``load_checkpoint``) and ``OUT/TASK_loss.csv`` (the loss
curve); ``--resume`` continues from the checkpoint. Ctrl-C stops after
the current step and still saves.
"""

import argparse
import os
import sys
import time

from attention_from_scratch.training.tasks import TASKS


def _int_at_least(minimum):
    """An argparse ``type``: a whole number ``>= minimum``, or a clear error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value
    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def add_train_command(commands):
    train = commands.add_parser(
        "train",
        help="train a small Transformer on a toy task (reversal, sorting, translation)",
        description="Train an encoder-decoder (reversal, translation) or decoder-only "
                    "(sorting) Transformer with Adam, warm-up and cosine decay and "
                    "gradient clipping, in float32 on one BLAS thread. Shows step, loss, "
                    "held-out exact match and time left on one line; saves a checkpoint "
                    "OUT/TASK.npz and the loss curve OUT/TASK_loss.csv. Ctrl-C stops and "
                    "saves; --resume continues.",
    )
    train.add_argument("task", choices=TASKS, metavar="TASK",
                       help=f"one of: {', '.join(TASKS)}")
    train.add_argument("--heads", type=_positive_int, default=4,
                       help="attention heads per layer; must divide --width (default 4)")
    train.add_argument("--layers", type=_positive_int, default=2,
                       help="blocks per stack (default 2)")
    train.add_argument("--width", type=_positive_int, default=64,
                       help="model width D (default 64; feed-forward width is 2 D)")
    train.add_argument("--steps", type=_positive_int, default=None,
                       help="training steps (default: 3000 for reversal and sorting, "
                            "600 for translation)")
    train.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seed of the initialisation, batches and held-out set")
    train.add_argument("--out", default="checkpoints",
                       help="directory for TASK.npz and TASK_loss.csv (default checkpoints)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/TASK.npz (its settings are kept; --steps "
                            "may extend the run)")
    train.add_argument("--stop-at", type=float, default=None, metavar="ACCURACY",
                       help="stop once exact match on fresh training-distribution pairs "
                            "reaches ACCURACY (e.g. 0.99); the held-out set is never used "
                            "to decide, so its accuracy stays a fair test")
    return train


DEFAULT_STEPS = {"reversal": 3000, "sorting": 3000, "translation": 600}


def _progress_line(stream):
    def show(step, total, loss, accuracy, cpu_seconds):
        left = cpu_seconds / step * (total - step) if step else 0.0
        acc = "  -  " if accuracy != accuracy else f"{100 * accuracy:5.1f}%"
        stream.write(f"\rstep {step:>5}/{total}  loss {loss:7.4f}  held-out {acc}  "
                     f"cpu {cpu_seconds:6.1f} s  ~{left:5.0f} s left ")
        stream.flush()
    return show


def main(args, parser, *, stream=None):
    """Run the ``train`` command; returns the exit status."""
    from attention_from_scratch.training.loop import (
        Settings,
        load_checkpoint,
        new_run,
        save_checkpoint,
        train,
    )
    stream = stream or sys.stderr
    width = args.width
    if width % args.heads:
        parser.error(f"--heads {args.heads} must divide --width {width}")
    if width % 2:
        parser.error(f"--width must be even (sinusoidal positions), got {width}")
    if args.stop_at is not None and not 0 < args.stop_at <= 1:
        parser.error(f"--stop-at must be in (0, 1], got {args.stop_at}")
    path = os.path.join(args.out, f"{args.task}.npz")
    if args.resume:
        if not os.path.exists(path):
            parser.error(f"--resume: no checkpoint {path}")
        run = load_checkpoint(path)
        if args.steps is not None:
            run = run._replace(settings=run.settings._replace(steps=args.steps))
        print(f"resuming {path} at step {run.state.step}", file=stream)
    else:
        steps = args.steps or DEFAULT_STEPS[args.task]
        run = new_run(Settings(task=args.task, n_heads=args.heads, n_layers=args.layers,
                               d_model=width, d_ff=2 * width, steps=steps, seed=args.seed,
                               warmup=min(200, max(1, steps // 10))))
    os.makedirs(args.out, exist_ok=True)
    start = time.process_time()
    run = train(run, progress=_progress_line(stream), stop_at=args.stop_at)
    stream.write("\n")
    save_checkpoint(path, run)
    with open(os.path.join(args.out, f"{args.task}_loss.csv"), "w") as f:
        f.write("step,loss\n")
        f.writelines(f"{s},{loss:.6g}\n" for s, loss in zip(run.history["step"],
                                                            run.history["loss"], strict=True))
    history = run.history
    accuracy = (f"{100 * history['accuracy'][-1]:.1f}%" if history["accuracy"]
                else "not measured yet")
    word = "interrupted at" if history["interrupted"] else "finished"
    print(f"{word} step {run.state.step}: held-out exact match {accuracy}, "
          f"{time.process_time() - start:.1f} CPU s this session; saved {path}", file=stream)
    return 130 if history["interrupted"] else 0


def add_experiment_command(commands):
    experiment = commands.add_parser(
        "experiment",
        help="run one of Chapter 7's longer experiments and write its JSON (minutes)",
        description="heads: 1 against 4 heads at equal width on sorting and reversal, "
                    "3 seeds, 600 steps each at D = 32 (about 2 CPU-minutes). length: reversal "
                    "and sorting trained on lengths 2..8, exact match per length on 2..16, "
                    "sinusoidal positions against ALiBi, 3 seeds each (about 8 CPU-minutes). "
                    "Writes "
                    "OUT/NAME.json, the file Chapter 7 reads.",
    )
    experiment.add_argument("name", choices=("heads", "length"), metavar="NAME",
                            help="heads or length")
    experiment.add_argument("--out", default="chapters/results",
                            help="directory for NAME.json (default chapters/results)")
    experiment.add_argument("--quick", action="store_true",
                            help="a seconds-long version with the same output format")


def experiment_main(args, *, stream=None):
    """Run the ``experiment`` command; returns the exit status."""
    import json

    from attention_from_scratch.training.experiments import run_experiment
    stream = stream or sys.stderr
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.name}.json")

    def log(row):
        print(json.dumps({k: v for k, v in row.items() if k != "per_length"}),
              file=stream, flush=True)

    run_experiment(args.name, path, quick=args.quick, log=log)
    print(f"wrote {path}", file=stream)
    return 0
