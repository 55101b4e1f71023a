"""`lookahead-jax meta-train`: an LSTM schedule meta-trained on a task family."""

import argparse
import json
from pathlib import Path

import numpy as np

from lookahead_jax.cli._common import (
    UsageError,
    positive_float,
    positive_int,
    progress_bar,
    write_atomic,
)

EXAMPLES = """examples:
  lookahead-jax meta-train --family quadratic --budget 60
  lookahead-jax meta-train --family digits --budget 240 --out runs/digits
  lookahead-jax meta-eval runs/digits --heldout 200"""


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
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    meta_train.add_argument("--family", choices=FAMILY_NAMES, default="digits")
    meta_train.add_argument(
        "--budget", type=positive_float, default=120.0, help="meta-training seconds (120)"
    )
    meta_train.add_argument("--horizon", type=positive_int, default=200, help="inner steps")
    meta_train.add_argument(
        "--unroll-length", type=positive_int, default=None, help="truncation (default: horizon)"
    )
    meta_train.add_argument("--num-tasks", type=positive_int, default=8, help="tasks per step")
    meta_train.add_argument("--meta-lr", type=positive_float, default=None)
    meta_train.add_argument("--objective", choices=OBJECTIVES, default="final_loss")
    meta_train.add_argument("--tune-tasks", type=positive_int, default=32)
    meta_train.add_argument("--seed", type=int, default=0)
    meta_train.add_argument("--out", type=Path, default=Path("runs/meta-train"))
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
    family, inner, grid = se.family_setup(args.family)
    meta_lr = se.META_LR[args.family] if args.meta_lr is None else args.meta_lr
    start = time.perf_counter()
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
        )
        progress.update(task, completed=round(args.budget))
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
        "meta_steps": len(result.history),
        "wall_time_s": result.wall_time_s,
        "meta_loss_history": result.history.tolist(),
        "validation_history": np.asarray(result.validation).tolist(),
    }
    write_atomic(args.out / "settings.json", json.dumps(settings, indent=1))
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
    summary = {k: v for k, v in settings.items() if not k.endswith("history")}
    if args.json:
        print(json.dumps(summary))
        return 0
    first, last = result.history[:10].mean(), result.history[-10:].mean()
    print(
        f"meta-trained on {args.family}: {len(result.history)} meta steps in "
        f"{result.wall_time_s:.0f} s, meta-loss {first:.4g} -> {last:.4g}; base lr "
        f"{schedule.base_lr:.3g} (the tuned constant)\nwrote {ckpt}, "
        f"{args.out / 'settings.json'} and {args.out / 'meta_training.png'}"
    )
    return 0
