"""`lookahead-jax meta-train`: an LSTM schedule meta-trained on a task family."""

import argparse
import sys
from pathlib import Path

import numpy as np

from lookahead_jax.cli._common import (
    UsageError,
    check_out_dir,
    dumps,
    positive_float,
    positive_int,
    progress_bar,
    seed,
    write_atomic,
)

EXAMPLES = """examples:
  lookahead-jax meta-train --family quadratic --budget 60
  lookahead-jax meta-train --family digits --budget 240 --out runs/digits
  lookahead-jax meta-eval runs/digits --heldout 200"""


# Fewer meta steps than this leave the schedule close to its untrained start.
FEW_META_STEPS = 50


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `meta-train` subcommand."""
    from lookahead_jax.cli.experiment import FAMILY_NAMES
    from lookahead_jax.meta import OBJECTIVES

    meta_train = subparsers.add_parser(
        "meta-train",
        help="meta-train an LSTM learning-rate schedule on a task family",
        description="Tunes a constant learning rate on tuning tasks, then meta-trains an "
        "LSTMSchedule that starts from it (jax.grad through unrolled training, early-stopped on "
        "validation tasks) for a wall-time budget. Saves the schedule params (orbax), its "
        "settings and plots of the meta-loss and of the learned rates.",
        epilog=EXAMPLES,
    )
    meta_train.add_argument("--family", choices=FAMILY_NAMES, default="digits", help="tasks")
    meta_train.add_argument(
        "--budget",
        type=positive_float,
        default=120.0,
        help="wall-clock seconds for the whole run, tuning and compilation included: no meta "
        "step starts after it (the first one always runs)",
    )
    meta_train.add_argument("--horizon", type=positive_int, default=200, help="inner steps")
    meta_train.add_argument(
        "--unroll-length",
        type=positive_int,
        default=None,
        help="truncation length (None: the horizon)",
    )
    meta_train.add_argument("--num-tasks", type=positive_int, default=8, help="tasks per step")
    meta_train.add_argument(
        "--meta-lr", type=positive_float, default=None, help="meta-optimizer rate (None: tuned)"
    )
    meta_train.add_argument(
        "--objective", choices=OBJECTIVES, default="final_loss", help="meta-objective"
    )
    meta_train.add_argument(
        "--tune-tasks", type=positive_int, default=32, help="tasks that tune the base rate"
    )
    meta_train.add_argument("--seed", type=seed, default=0, help="meta-training seed")
    meta_train.add_argument(
        "--out", type=Path, default=Path("runs/meta-train"), help="output folder"
    )
    meta_train.add_argument("--json", action="store_true", help="print a JSON summary")
    meta_train.add_argument("--quiet", action="store_true", help="no progress bar")
    meta_train.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    import orbax.checkpoint as ocp

    from lookahead_jax.cli import experiment as se
    from lookahead_jax.cli.plots import plot_meta_training
    from lookahead_jax.learned_schedule import learned_schedule
    from lookahead_jax.meta import evaluate

    if args.unroll_length is not None and args.horizon % args.unroll_length:
        raise UsageError(
            f"--unroll-length must divide --horizon, got {args.unroll_length} and {args.horizon}"
        )
    check_out_dir(args.out)  # before the work, not after it
    start = time.perf_counter()
    family, inner, grid = se.family_setup(args.family)
    meta_lr = se.META_LR[args.family] if args.meta_lr is None else args.meta_lr
    with progress_bar(args.quiet or args.json) as progress:
        task = progress.add_task(f"meta-train {args.family} (s)", total=round(args.budget))
        tick = lambda *_: progress.update(
            task, completed=min(round(time.perf_counter() - start), round(args.budget))
        )
        schedule, result = se.meta_train_family(
            args.family,
            args.budget,
            args.horizon,
            args.unroll_length,
            args.num_tasks,
            meta_lr,
            args.seed,
            grid,
            args.tune_tasks,
            args.objective,
            callback=tick,
            verbose=False,
            budget_start=start,
        )
        progress.update(task, completed=round(args.budget))
    total_s = time.perf_counter() - start
    meta_steps = len(result.history)
    params = result.meta_params["schedule"]
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = (args.out / "schedule").absolute()
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(ckpt, params, force=True)
    settings = {
        "family": args.family,
        "base_lr": schedule.base_lr,
        "hidden_size": schedule.hidden_size,
        "horizon": args.horizon,
        "unroll_length": args.unroll_length,
        "num_tasks": args.num_tasks,
        "meta_lr": meta_lr,
        "objective": args.objective,
        "seed": args.seed,
        "meta_steps": meta_steps,
        "budget_s": args.budget,
        "wall_time_s": total_s,
        "meta_training_s": result.wall_time_s,
        "meta_loss_history": result.history.tolist(),
        "validation_history": np.asarray(result.validation).tolist(),
    }
    write_atomic(args.out / "settings.json", dumps(settings, indent=1))
    keys = se.task_keys(se.VALID_ROOT, 8)
    lrs = evaluate(family, learned_schedule(inner, schedule, params), keys, args.horizon).lrs
    plot_meta_training(
        np.asarray(result.history),
        lrs,
        schedule.base_lr,
        args.out / "meta_training.png",
        f"LSTM schedule meta-trained on {args.family} ({len(result.history)} meta steps, "
        f"{result.wall_time_s:.0f} s)",
    )
    if meta_steps < FEW_META_STEPS:
        print(
            f"lookahead-jax meta-train: warning: only {meta_steps} meta steps fit in the "
            f"{args.budget:g} s budget (tuning and compilation took "
            f"{total_s - result.wall_time_s:.0f} s of it); the schedule is barely trained: raise "
            "--budget",
            file=sys.stderr,
        )
    summary = {k: v for k, v in settings.items() if not k.endswith("history")}
    if args.json:
        print(dumps(summary))
        return 0
    first, last = result.history[:10].mean(), result.history[-10:].mean()
    print(
        f"meta-trained on {args.family}: {meta_steps} meta steps; the {args.budget:g} s budget "
        f"covered tuning and compilation ({total_s - result.wall_time_s:.0f} s) and "
        f"meta-training ({result.wall_time_s:.0f} s, compilation included); meta-loss "
        f"{first:.4g} -> {last:.4g}; base lr {schedule.base_lr:.3g} (the tuned constant)\n"
        f"wrote {ckpt}, {args.out / 'settings.json'} and {args.out / 'meta_training.png'}"
    )
    return 0
