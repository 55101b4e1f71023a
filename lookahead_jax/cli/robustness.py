"""`lookahead-jax robustness`: the inner learning rate swept with and without Lookahead."""

import argparse

import numpy as np

from lookahead_jax.cli._common import (
    add_training_args,
    build_optimizer_spec,
    describe,
    dumps,
    fraction,
    load_data_and_model,
    mean_sd,
    positive_float,
    positive_int,
    prepare_run,
    print_table,
    run_settings,
    seeds_summary,
    train_all,
    write_atomic,
)

EXAMPLES = """examples:
  lookahead-jax robustness
  lookahead-jax robustness --optimizer optax.adam --lrs 1e-4 1e-3 1e-2 1e-1
  lookahead-jax robustness --sync-periods 5 10 --slow-step-sizes 0.5 0.8 --seeds 0 1 2"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `robustness` subcommand."""
    from lookahead_jax.cli.optimizer_specs import OPTIMIZERS

    robustness = subparsers.add_parser(
        "robustness",
        help="sweep the inner learning rate with and without Lookahead",
        description="The Lookahead paper's robustness experiment in small: trains with each inner "
        "learning rate, without Lookahead and with each (sync period, slow step size), and "
        "plots the final train loss against the learning rate.",
        epilog=EXAMPLES,
    )
    robustness.add_argument(
        "--optimizer",
        default="optax.sgd",
        metavar="NAME[:KEY=VALUE,...]",
        help=f"the inner optimizer, from: {', '.join(OPTIMIZERS)} (default: %(default)s)",
    )
    robustness.add_argument(
        "--lrs",
        type=positive_float,
        nargs="+",
        default=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        help="inner learning rates to sweep (default: %(default)s)",
    )
    robustness.add_argument(
        "--sync-periods", type=positive_int, nargs="+", default=[5], help="Lookahead's k values"
    )
    robustness.add_argument(
        "--slow-step-sizes", type=fraction, nargs="+", default=[0.5], help="Lookahead's alphas"
    )
    add_training_args(robustness, epochs=10, seeds=[0, 1], out="runs/robustness")
    robustness.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lookahead_jax.cli.plots import plot_robustness
    from lookahead_jax.lookahead import lookahead

    base = args.optimizer.split(":", 1)[0]
    inners = [(lr, *build_optimizer_spec(args.optimizer, learning_rate=lr)) for lr in args.lrs]
    data, model = load_data_and_model(args)  # checks --batch-size and --model
    prepare_run(args)
    configs = [(base, None)] + [
        (f"lookahead({base}, k={k}, alpha={a})", (k, a))
        for k in args.sync_periods
        for a in args.slow_step_sizes
    ]
    runs = []
    for lr, inner, settings in inners:
        for label, la in configs:
            tx = inner if la is None else lookahead(inner, *la)
            extra = {} if la is None else {"sync_period": la[0], "slow_step_size": la[1]}
            runs.append((f"{label} lr={lr:g}", tx, {**settings, **extra}))
    results = train_all(args, runs, data, model)
    by_config = {
        label: np.asarray(
            [results[i * len(configs) + j]["final_train_loss"] for i in range(len(args.lrs))],
            np.float64,
        )
        for j, (label, _) in enumerate(configs)
    }
    report = {
        **run_settings(args),
        "optimizer": args.optimizer,
        "learning_rates": args.lrs,
        "final_train_loss": {label: v.tolist() for label, v in by_config.items()},
        "runs": results,
    }
    write_atomic(args.out / "results.json", dumps(report, indent=1))
    plot_robustness(
        args.lrs,
        by_config,
        args.out / "robustness.png",
        f"Robustness to the learning rate: {args.optimizer} on {describe(args)}",
    )
    if args.json:
        print(dumps(report))
        return 0
    seeds = seeds_summary(args)
    print_table(
        f"final train loss, {seeds} ({describe(args)})",
        ("learning rate", *by_config),
        [
            (f"{lr:g}", *(mean_sd(v[i]) for v in by_config.values()))
            for i, lr in enumerate(args.lrs)
        ],
    )
    print(f"wrote {args.out / 'results.json'} and {args.out / 'robustness.png'}")
    return 0
