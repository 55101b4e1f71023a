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
        description="Loads a `meta-train` output folder and runs the evaluation protocol "
        "(lookahead_jax.meta.protocol): warmup + constant, cosine and linear decay schedules "
        "tuned over peak x warmup x floor on tuning tasks (each grid extended past an edge "
        "optimum), then the learned schedule, the untrained one and the tuned baselines scored "
        "on held-out tasks never seen in tuning or meta-training, by test loss (held-out data; "
        "training loss where the family has no test split): per-task loss ratios, geometric "
        "mean and median with bootstrap 95%% intervals.",
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
        "--tune-tasks", type=positive_int, default=16, help="tasks that tune the baselines"
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
            # The one number the baselines also get to tune on the new family: its best
            # constant rate, by test loss on the tuning tasks.
            constant = se.protocol.schedule_baseline(
                inner, horizon, "constant", list(grid), warmups=[0.0]
            )
            keys = se.task_keys(se.TUNE_ROOT, args.tune_tasks)
            base_lr = se.protocol.tune(family, constant, keys, horizon).best["peak"]
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
        out, lrs = se.evaluate_schedule(
            family, inner, grid, horizon, schedule, params, args.tune_tasks, args.heldout
        )
        progress.update(stage, completed=2, description="meta-eval: write results")
        out.update(
            family=family_name,
            trained_on=settings["family"],
            num_heldout_tasks=args.heldout,
            num_tune_tasks=args.tune_tasks,
        )
        write_atomic(folder / "results.json", dumps(out, indent=1))
        se.plot_rates(lrs, f"{family_name}, horizon {horizon}", folder / "comparison.png")
        progress.update(stage, completed=3, description="meta-eval: done")
    for name, t in out["tuning"].items():
        for hp, where in t["where"].items():
            if where == "edge":
                print(
                    f"lookahead-jax meta-eval: warning: the tuned {hp} of {name} "
                    f"({t['best'][hp]:.3g}) is still at the edge of its grid after extending it: "
                    "the baseline may be under-tuned",
                    file=sys.stderr,
                )
    if args.json:
        print(dumps(out))
        return 0
    rows = []
    for name, m in out["methods"].items():
        key = f"learned vs {name}"
        c = out["comparisons"].get(key)
        acc = m["test_accuracy_mean"]
        rows.append(
            (
                name,
                f"{m['test_loss_mean']:.4g}",
                f"{m['test_loss_geomean']:.4g}",
                "" if acc is None else f"{100 * acc:.2f}%",
                f"{m['train_loss_mean']:.3g}",
                ""
                if c is None
                else "{:.3f} [{:.3f}, {:.3f}]".format(c["geomean_ratio"], *c["geomean_ci"]),
                "" if c is None else f"{c['wins']}/{c['num_tasks']}",
            )
        )
    tuned = "; ".join(
        f"{name}: " + ", ".join(f"{k} {v:.3g} ({t['where'][k]})" for k, v in t["best"].items())
        for name, t in out["tuning"].items()
    )
    print_table(
        f"{family_name}, horizon {horizon}, {args.heldout} held-out tasks (schedule trained on "
        f"{settings['family']}); baselines tuned on {args.tune_tasks} tuning tasks: {tuned}",
        (
            "method",
            "test loss (mean)",
            "geomean",
            "test acc",
            "train loss",
            "learned / it (geomean, 95% CI)",
            "tasks learned wins",
        ),
        rows,
    )
    if not out["test_split"]:
        print(f"({family_name} tasks have no held-out data: 'test loss' is the training loss)")
    print(f"wrote {folder / 'results.json'} and {folder / 'comparison.png'}")
    return 0
