"""`lookahead-jax meta-eval`: a meta-trained schedule against tuned baselines on held-out tasks."""

import argparse
import json
import sys
from pathlib import Path

from lookahead_jax.cli._common import (
    UsageError,
    check_out_dir,
    checked,
    dumps,
    positive_int,
    print_table,
    progress_bar,
    write_atomic,
)

# A standard error needs two tasks.
at_least_two = checked(int, lambda v: v >= 2, "an integer >= 2")

EXAMPLES = """examples:
  lookahead-jax meta-eval runs/meta-train
  lookahead-jax meta-eval runs/digits --horizon 400        # twice the trained horizon
  lookahead-jax meta-eval runs/digits --family regression  # a family it was not trained on"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `meta-eval` subcommand."""
    from lookahead_jax.cli.experiment import FAMILY_NAMES

    meta_eval = subparsers.add_parser(
        "meta-eval",
        help="compare a meta-trained schedule with tuned baselines on held-out tasks",
        description="Loads a `meta-train` output folder and evaluates the learned schedule, the "
        "untrained one, the best constant rate and the best cosine decay (both tuned on a "
        "log-spaced grid on tuning tasks) on held-out tasks never seen in tuning or "
        "meta-training: mean +- s.e. of the final training loss, and paired differences.",
        epilog=EXAMPLES,
    )
    meta_eval.add_argument("checkpoint", type=Path, help="a meta-train --out folder")
    meta_eval.add_argument(
        "--family", choices=FAMILY_NAMES, default=None, help="task family (None: the trained one)"
    )
    meta_eval.add_argument(
        "--horizon", type=positive_int, default=None, help="inner steps (None: the trained one)"
    )
    meta_eval.add_argument("--heldout", type=at_least_two, default=50, help="held-out tasks")
    meta_eval.add_argument(
        "--tune-tasks", type=positive_int, default=32, help="tasks that tune the baselines"
    )
    meta_eval.add_argument(
        "--out", type=Path, default=None, help="output folder (None: CHECKPOINT/eval)"
    )
    meta_eval.add_argument("--json", action="store_true", help="print the results as JSON")
    meta_eval.add_argument("--quiet", action="store_true", help="no progress bar")
    meta_eval.set_defaults(run=run)


_SETTINGS_KEYS = {"family": str, "horizon": int, "base_lr": float, "hidden_size": int}


def _load_settings(folder: Path) -> dict:
    """A meta-train folder's settings.json, checked: a UsageError names what is missing."""
    path = folder / "settings.json"
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder (give a meta-train --out folder)")
    if not path.exists():
        raise UsageError(f"{folder} is not a meta-train output folder (no settings.json)")
    try:
        settings = json.loads(path.read_text())
    except ValueError:
        raise UsageError(f"{path} is not valid JSON") from None
    if not isinstance(settings, dict):
        raise UsageError(f"{path} holds no settings object")
    missing = [k for k in _SETTINGS_KEYS if k not in settings]
    if missing:
        raise UsageError(f"{path} lacks {', '.join(missing)}")
    for key, kind in _SETTINGS_KEYS.items():
        if kind is float and isinstance(settings[key], int):
            settings[key] = float(settings[key])
        if not isinstance(settings[key], kind) or isinstance(settings[key], bool):
            raise UsageError(f"{path}: {key} must be a {kind.__name__}, got {settings[key]!r}")
    if not (folder / "schedule").is_dir():
        raise UsageError(f"{folder} has no schedule/ checkpoint (did meta-train finish?)")
    return settings


def run(args: argparse.Namespace) -> int:
    import jax
    import orbax.checkpoint as ocp

    from lookahead_jax.cli import experiment as se
    from lookahead_jax.lstm_schedule import LSTMSchedule

    settings = _load_settings(args.checkpoint)
    folder = args.out or args.checkpoint / "eval"
    check_out_dir(folder, "--out")  # before the evaluation, not after it
    family_name = args.family or settings["family"]
    horizon = args.horizon or settings["horizon"]
    family, inner, grid = se.family_setup(family_name)
    base_lr = settings["base_lr"]
    with progress_bar(args.quiet or args.json) as progress:
        stage = progress.add_task("meta-eval: load schedule", total=3)
        if family_name != settings["family"]:
            # The one number the baselines also get to tune on the new family: its best constant.
            base_lr = se.tune(
                family, inner, grid, se.task_keys(se.TUNE_ROOT, args.tune_tasks), horizon
            )[0]
        schedule = LSTMSchedule(base_lr=base_lr, hidden_size=settings["hidden_size"])
        abstract = jax.eval_shape(schedule.init_params, jax.random.key(0))
        try:
            with ocp.StandardCheckpointer() as checkpointer:
                params = checkpointer.restore((args.checkpoint / "schedule").absolute(), abstract)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise UsageError(
                f"{args.checkpoint / 'schedule'} is missing or not a schedule checkpoint of "
                f"hidden size {settings['hidden_size']} ({type(e).__name__})"
            ) from None
        progress.update(stage, completed=1, description="meta-eval: tune baselines, evaluate")
        out, lrs, curves = se.compare(
            family, inner, grid, horizon, schedule, params, args.tune_tasks, args.heldout
        )
        progress.update(stage, completed=2, description="meta-eval: write results")
        out.update(family=family_name, trained_on=settings["family"])
        write_atomic(folder / "results.json", dumps(out, indent=1))
        se.plot({(family_name, f"horizon {horizon}"): (lrs, curves)}, folder / "comparison.png")
        progress.update(stage, completed=3, description="meta-eval: done")
    for name, lr in (
        ("constant rate", out["best_constant_lr"]),
        ("cosine peak", out["best_cosine_peak"]),
    ):
        if lr in (float(grid[0]), float(grid[-1])):
            print(
                f"lookahead-jax meta-eval: warning: the tuned {name} {lr:.3g} is at the edge of "
                f"its grid [{grid[0]:.3g}, {grid[-1]:.3g}]: the baseline may be under-tuned",
                file=sys.stderr,
            )
    if args.json:
        print(dumps(out))
        return 0
    rows = []
    for name, s in out["final_loss"].items():
        diff = out.get(f"learned_minus_{name}")
        rows.append(
            (
                se.LABELS[name],
                f"{s['mean']:.4g} ± {s['se']:.2g}",
                f"{out['final_loss_median'][name]:.3g}",
                "" if diff is None else f"{diff['mean']:.3g} ± {diff['se']:.2g}",
                "" if diff is None else ("yes" if diff["paired_beats_by_2se"] else "no"),
                "" if diff is None else f"{diff['tasks_won']}/{args.heldout}",
            )
        )
    print_table(
        f"{family_name}, horizon {horizon}, {args.heldout} held-out tasks (schedule trained on "
        f"{settings['family']}); constant lr {out['best_constant_lr']:.3g}, cosine peak "
        f"{out['best_cosine_peak']:.3g}, tuned on {args.tune_tasks} tuning tasks",
        (
            "method",
            "final loss (mean ± s.e.)",
            "median",
            "learned - it (paired)",
            "learned better by > 2 s.e.",
            "tasks learned wins",
        ),
        rows,
    )
    print(f"wrote {folder / 'results.json'} and {folder / 'comparison.png'}")
    return 0
