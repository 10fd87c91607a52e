"""Command line: ``python -m attention_from_scratch {verify,figures,bench,train,book}``."""

import argparse
import os
import sys

# One BLAS thread unless the user chose otherwise, set before NumPy loads:
# the small matrix products of training ran 5-10x slower (CPU time) with
# two threads on a busy two-core machine.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m attention_from_scratch",
        description="Attention from scratch: check the package, regenerate figures, "
                    "build the book as a website.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "verify",
        help="check every forward/backward pair against finite differences "
             "and steps against core; exit status 1 if any fails",
        description="For every forward/backward pair in the package: the largest "
                    "relative error of the steps and core backward passes against "
                    "central finite differences (float64, random upstream gradient), "
                    "and the largest difference between steps and core in the "
                    "forward output and every gradient. Exits 1 if any check fails.",
    )
    figures = commands.add_parser(
        "figures",
        help="regenerate every figure in figures/ (deterministic)",
        description="Regenerate every figure of the book with fixed seeds, SVG files "
                    "with a fixed hash salt and no date, PNG files with no software tag.",
    )
    figures.add_argument("--out", default=None,
                         help="directory to write to (default: the repository's figures/)")
    bench = commands.add_parser(
        "bench",
        help="time core attention against steps, np.matmul and, if installed, PyTorch "
             "(~35 s)",
        description="Time core multi-head self-attention, forward and forward+backward, "
                    "float32 and float64, without and with a causal mask, at (B, T, D, H) "
                    "= (8, 128, 256, 8) and (4, 512, 512, 8), and causal at (1, 2048, 512, "
                    "8) in float32 with core's flash and dense attention on the bare heads; "
                    "the steps version at the small size; a large square np.matmul; and, "
                    "when PyTorch is installed, its nn.MultiheadAttention and "
                    "scaled_dot_product_attention on the same inputs, all in one run. "
                    "Prints median and best times, FLOPs counted explicitly (matrix products "
                    "only), the fraction of the square-matmul rate achieved, as a Markdown "
                    "table, and the time ratios to PyTorch against their targets. Close "
                    "other work first: the times are wall-clock.",
    )
    bench.add_argument("--repeats", type=int, default=6,
                       help="timed runs per measurement but steps' (default: 6)")
    bench.add_argument("--steps-repeats", type=int, default=2,
                       help="timed runs per steps measurement (default: 2)")
    from attention_from_scratch.training.cli import add_experiment_command, add_train_command
    train_parser = add_train_command(commands)  # its own usage line in its errors
    add_experiment_command(commands)
    book = commands.add_parser(
        "book",
        help="build the book as a website that reads offline (needs the [book] extra)",
        description="Build the README, every chapter, the glossary and the solutions "
                    "into static HTML from the notebooks' stored outputs (nothing is "
                    "executed), with MathJax served from the build itself, so the site "
                    "reads offline from file://. Warnings are errors: a broken link "
                    "fails the build.",
    )
    book.add_argument("--out", default=None,
                      help="directory to write to (default: the repository's build/book/)")
    args = parser.parse_args(argv)

    if args.command == "verify":
        from attention_from_scratch.checking import verify
        return verify.main()
    if args.command == "train":
        from attention_from_scratch.training.cli import main as train_main
        return train_main(args, train_parser)
    if args.command == "experiment":
        from attention_from_scratch.training.cli import experiment_main
        return experiment_main(args)
    if args.command == "bench":
        from attention_from_scratch.measure import bench
        return bench.main(repeats=args.repeats, steps_repeats=args.steps_repeats)
    if args.command == "book":
        from attention_from_scratch.book import website
        front_page = website.build(args.out)
        print(f"open {front_page.as_uri()} in a browser")
        return 0
    import matplotlib
    matplotlib.use("Agg")
    from attention_from_scratch.figures import regenerate
    regenerate(args.out, out=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
