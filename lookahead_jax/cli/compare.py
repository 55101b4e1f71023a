"""`lookahead-jax compare`: one model, several optimizers, with and without Lookahead."""

import argparse
from typing import Any

import numpy as np

from lookahead_jax.cli._common import (
    add_training_args,
    build_optimizer_spec,
    describe,
    dumps,
    fraction,
    load_data_and_model,
    mean_sd,
    positive_int,
    prepare_run,
    print_table,
    run_settings,
    seeds_summary,
    train_all,
    write_atomic,
)

EXAMPLES = """examples:
  lookahead-jax compare
  lookahead-jax compare --dataset wine --epochs 30 --seeds 0 1 2
  lookahead-jax compare --optimizers optax.adam:learning_rate=3e-3 optax.sgd --sync-period 10
  lookahead-jax compare --json --quiet > results.json
  lookahead-jax compare --model cnn --epochs 10 --out runs/cnn
  lookahead-jax compare --model cnn --epochs 10 --out runs/cnn --resume  # after Ctrl-C
  lookahead-jax compare --model cnn --epochs 20 --out runs/cnn --resume  # train it longer"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `compare` subcommand."""
    from lookahead_jax.cli.optimizer_specs import OPTIMIZERS

    compare = subparsers.add_parser(
        "compare",
        help="train an MLP or a CNN with several optimizers, with and without Lookahead",
        description="Trains the same model (an MLP, or a CNN on digits: --model) with each "
        "optimizer, with and without Lookahead, over "
        "several seeds, and prints final train loss, test loss and test accuracy (on the slow "
        "weights for Lookahead) as mean +- s.d. over seeds.",
        epilog=EXAMPLES,
    )
    compare.add_argument(
        "--optimizers",
        nargs="+",
        default=["optax.adam", "optax.sgd"],
        metavar="NAME[:KEY=VALUE,...]",
        help=f"optimizers to compare, from: {', '.join(OPTIMIZERS)} (default: %(default)s)",
    )
    compare.add_argument(
        "--lookahead",
        choices=("both", "on", "off"),
        default="both",
        help="run each optimizer with Lookahead, without, or both",
    )
    compare.add_argument("--sync-period", type=positive_int, default=5, help="Lookahead's k")
    compare.add_argument("--slow-step-size", type=fraction, default=0.5, help="Lookahead's alpha")
    add_training_args(compare, epochs=20, seeds=[0, 1, 2], out="runs/compare")
    compare.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lookahead_jax.cli.optimizer_specs import describe_settings
    from lookahead_jax.cli.plots import plot_training_curves
    from lookahead_jax.lookahead import lookahead

    inners = [(spec, *build_optimizer_spec(spec)) for spec in args.optimizers]
    data, model = load_data_and_model(args)  # checks --batch-size and --model
    prepare_run(args)
    runs: list[tuple[str, Any, dict]] = []
    for spec, inner, settings in inners:
        if args.lookahead in ("both", "off"):
            runs.append((spec, inner, settings))
        if args.lookahead in ("both", "on"):
            la = lookahead(inner, args.sync_period, args.slow_step_size)
            la_settings = {
                **settings,
                "sync_period": args.sync_period,
                "slow_step_size": args.slow_step_size,
            }
            runs.append((f"lookahead({spec})", la, la_settings))
    results = train_all(args, runs, data, model)
    report = {
        **run_settings(args),
        "sync_period": args.sync_period,
        "slow_step_size": args.slow_step_size,
        "runs": results,
    }
    write_atomic(args.out / "results.json", dumps(report, indent=1))
    plot_training_curves(
        results,
        args.out / "curves.png",
        f"{describe(args)}; Lookahead k={args.sync_period}, alpha={args.slow_step_size} "
        "(slow weights)",
    )
    if args.json:
        print(dumps(report))
        return 0
    seeds = seeds_summary(args)
    print_table(
        f"{describe(args)}: {seeds}; Lookahead evaluated on its slow weights",
        ("optimizer", "settings", "train loss", "test loss", "test accuracy", "s / epoch"),
        [
            (
                r["optimizer"],
                describe_settings(r["settings"]),
                mean_sd(np.asarray(r["final_train_loss"], np.float64)),
                mean_sd(np.asarray(r["final_test_loss"], np.float64)),
                mean_sd(np.asarray(r["final_test_accuracy"], np.float64)),
                "-" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.3f}",
            )
            for r in results
        ],
    )
    print(f"wrote {args.out / 'results.json'} and {args.out / 'curves.png'}")
    return 0
