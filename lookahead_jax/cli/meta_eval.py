"""`lookahead-jax meta-eval`: a meta-trained schedule against tuned baselines on held-out tasks."""

import argparse
import json
from pathlib import Path

from lookahead_jax.cli._common import UsageError, positive_int, print_table, write_atomic

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
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    meta_eval.add_argument("checkpoint", type=Path, help="a meta-train --out folder")
    meta_eval.add_argument(
        "--family", choices=FAMILY_NAMES, default=None, help="default: the trained family"
    )
    meta_eval.add_argument("--horizon", type=positive_int, default=None)
    meta_eval.add_argument("--heldout", type=positive_int, default=50, help="held-out tasks")
    meta_eval.add_argument("--tune-tasks", type=positive_int, default=32)
    meta_eval.add_argument("--out", type=Path, default=None, help="default: CHECKPOINT/eval")
    meta_eval.add_argument("--json", action="store_true", help="print the results as JSON")
    meta_eval.add_argument("--quiet", action="store_true", help="(no progress bar to hide)")
    meta_eval.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import jax
    import orbax.checkpoint as ocp

    from lookahead_jax.cli import experiment as se
    from lookahead_jax.lstm_schedule import LSTMSchedule

    settings_path = args.checkpoint / "settings.json"
    if not settings_path.exists():
        raise UsageError(f"{args.checkpoint} is not a meta-train output folder (no settings.json)")
    settings = json.loads(settings_path.read_text())
    family_name = args.family or settings["family"]
    horizon = args.horizon or settings["horizon"]
    family, inner, grid = se.family_setup(family_name)
    base_lr = settings["base_lr"]
    if family_name != settings["family"]:
        # The one number the baselines also get to tune on the new family: its best constant.
        base_lr = se.tune(
            family, inner, grid, se.task_keys(se.TUNE_ROOT, args.tune_tasks), horizon
        )[0]
    schedule = LSTMSchedule(base_lr=base_lr, hidden_size=settings["hidden_size"])
    abstract = jax.eval_shape(schedule.init_params, jax.random.key(0))
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore((args.checkpoint / "schedule").absolute(), abstract)
    out, lrs, curves = se.compare(
        family, inner, grid, horizon, schedule, params, args.tune_tasks, args.heldout
    )
    out.update(family=family_name, trained_on=settings["family"])
    folder = args.out or args.checkpoint / "eval"
    write_atomic(folder / "results.json", json.dumps(out, indent=1))
    se.plot({(family_name, f"horizon {horizon}"): (lrs, curves)}, folder / "comparison.png")
    if args.json:
        print(json.dumps(out))
        return 0
    rows = []
    for name, s in out["final_loss"].items():
        diff = out.get(f"learned_minus_{name}")
        rows.append(
            (
                name,
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
