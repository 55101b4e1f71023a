"""The `lookahead-jax` command line."""

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

EXAMPLES = {
    "compare": """examples:
  lookahead-jax compare
  lookahead-jax compare --dataset wine --epochs 30 --seeds 0 1 2
  lookahead-jax compare --optimizers optax.adam:learning_rate=3e-3 optax.sgd --sync-period 10
  lookahead-jax compare --json --quiet > results.json
  lookahead-jax compare --model cnn --epochs 10 --out runs/cnn; lookahead-jax compare --resume""",
    "meta-train": """examples:
  lookahead-jax meta-train --family quadratic --budget 60
  lookahead-jax meta-train --family digits --budget 240 --out runs/digits
  lookahead-jax meta-eval runs/digits --heldout 200""",
    "meta-eval": """examples:
  lookahead-jax meta-eval runs/meta-train
  lookahead-jax meta-eval runs/digits --horizon 400        # twice the trained horizon
  lookahead-jax meta-eval runs/digits --family regression  # a family it was not trained on""",
    "bench": """examples:
  lookahead-jax bench
  lookahead-jax bench --suites lookahead --quick
  lookahead-jax bench --no-torch --json > bench.json""",
    "robustness": """examples:
  lookahead-jax robustness
  lookahead-jax robustness --optimizer optax.adam --lrs 1e-4 1e-3 1e-2 1e-1
  lookahead-jax robustness --sync-periods 5 10 --slow-step-sizes 0.5 0.8 --seeds 0 1 2""",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _checked(cast, accept, what: str):
    """An argparse type: `cast(text)` if that works and `accept`s it, else a one-line error."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_positive_float = _checked(float, lambda v: v > 0.0 and np.isfinite(v), "a positive number")
_fraction = _checked(float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _build_parser() -> argparse.ArgumentParser:
    from lookahead_jax.data import DATASETS
    from lookahead_jax.meta import OBJECTIVES
    from lookahead_jax.optimizer_specs import OPTIMIZERS
    from lookahead_jax.schedule_eval import FAMILY_NAMES

    parser = _Parser(
        prog="lookahead-jax",
        description="Lookahead, PyTorch-faithful optimizers and learned schedules in JAX.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    compare = sub.add_parser(
        "compare",
        help="train an MLP with several optimizers, with and without Lookahead",
        description="Trains the same MLP with each optimizer, with and without Lookahead, over "
        "several seeds, and prints final train loss, test loss and test accuracy (on the slow "
        "weights for Lookahead) as mean +- s.d. over seeds.",
        epilog=EXAMPLES["compare"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("--dataset", choices=DATASETS, default="digits")
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
        help="run each optimizer with Lookahead, without, or both (default)",
    )
    compare.add_argument("--sync-period", type=_positive_int, default=5, help="k (default 5)")
    compare.add_argument("--slow-step-size", type=_fraction, default=0.5, help="alpha (0.5)")
    _add_training_args(compare, epochs=20, seeds=[0, 1, 2], out="runs/compare")
    compare.set_defaults(run=run_compare)

    robustness = sub.add_parser(
        "robustness",
        help="sweep the inner learning rate with and without Lookahead",
        description="The Lookahead paper's robustness experiment in small: trains with each inner "
        "learning rate, without Lookahead and with each (sync period, slow step size), and "
        "plots the final train loss against the learning rate.",
        epilog=EXAMPLES["robustness"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    robustness.add_argument("--dataset", choices=DATASETS, default="digits")
    robustness.add_argument(
        "--optimizer",
        default="optax.sgd",
        metavar="NAME[:KEY=VALUE,...]",
        help=f"the inner optimizer, from: {', '.join(OPTIMIZERS)} (default: %(default)s)",
    )
    robustness.add_argument(
        "--lrs",
        type=_positive_float,
        nargs="+",
        default=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        help="inner learning rates to sweep (default: %(default)s)",
    )
    robustness.add_argument("--sync-periods", type=_positive_int, nargs="+", default=[5])
    robustness.add_argument("--slow-step-sizes", type=_fraction, nargs="+", default=[0.5])
    _add_training_args(robustness, epochs=10, seeds=[0, 1], out="runs/robustness")
    robustness.set_defaults(run=run_robustness)

    meta_train = sub.add_parser(
        "meta-train",
        help="meta-train an LSTM learning-rate schedule on a task family",
        description="Tunes a constant learning rate on tuning tasks, then meta-trains an "
        "LSTMSchedule that starts from it (jax.grad through unrolled training, early-stopped on "
        "validation tasks) for a wall-time budget. Saves the schedule params (orbax), its "
        "settings and plots of the meta-loss and of the learned rates.",
        epilog=EXAMPLES["meta-train"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    meta_train.add_argument("--family", choices=FAMILY_NAMES, default="digits")
    meta_train.add_argument(
        "--budget", type=_positive_float, default=120.0, help="meta-training seconds (120)"
    )
    meta_train.add_argument("--horizon", type=_positive_int, default=200, help="inner steps")
    meta_train.add_argument(
        "--unroll-length", type=_positive_int, default=None, help="truncation (default: horizon)"
    )
    meta_train.add_argument("--num-tasks", type=_positive_int, default=8, help="tasks per step")
    meta_train.add_argument("--meta-lr", type=_positive_float, default=None)
    meta_train.add_argument("--objective", choices=OBJECTIVES, default="final_loss")
    meta_train.add_argument("--tune-tasks", type=_positive_int, default=32)
    meta_train.add_argument("--seed", type=int, default=0)
    meta_train.add_argument("--out", type=Path, default=Path("runs/meta-train"))
    meta_train.add_argument("--json", action="store_true", help="print a JSON summary")
    meta_train.add_argument("--quiet", action="store_true", help="no progress bar")
    meta_train.set_defaults(run=run_meta_train)

    meta_eval = sub.add_parser(
        "meta-eval",
        help="compare a meta-trained schedule with tuned baselines on held-out tasks",
        description="Loads a `meta-train` output folder and evaluates the learned schedule, the "
        "untrained one, the best constant rate and the best cosine decay (both tuned on a "
        "log-spaced grid on tuning tasks) on held-out tasks never seen in tuning or "
        "meta-training: mean +- s.e. of the final training loss, and paired differences.",
        epilog=EXAMPLES["meta-eval"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    meta_eval.add_argument("checkpoint", type=Path, help="a meta-train --out folder")
    meta_eval.add_argument(
        "--family", choices=FAMILY_NAMES, default=None, help="default: the trained family"
    )
    meta_eval.add_argument("--horizon", type=_positive_int, default=None)
    meta_eval.add_argument("--heldout", type=_positive_int, default=50, help="held-out tasks")
    meta_eval.add_argument("--tune-tasks", type=_positive_int, default=32)
    meta_eval.add_argument("--out", type=Path, default=None, help="default: CHECKPOINT/eval")
    meta_eval.add_argument("--json", action="store_true", help="print the results as JSON")
    meta_eval.add_argument("--quiet", action="store_true", help="(no progress bar to hide)")
    meta_eval.set_defaults(run=run_meta_eval)

    bench = sub.add_parser(
        "bench",
        help="time optimizer steps against optax (and torch, if installed)",
        description="Times jitted, donated optimizer steps on ~10M params in 40 leaves and ~1M "
        "params in 200 leaves, and prints medians and ratios measured in one run: the tables of "
        "the README.",
        epilog=EXAMPLES["bench"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--suites",
        nargs="+",
        choices=("lookahead", "optimizers"),
        default=["lookahead", "optimizers"],
    )
    bench.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    bench.add_argument("--no-torch", action="store_true", help="skip the torch.optim rows")
    bench.add_argument("--torch-threads", type=_positive_int, default=1)
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.set_defaults(run=run_bench)
    return parser


def _add_training_args(p: argparse.ArgumentParser, epochs: int, seeds: list, out: str) -> None:
    from lookahead_jax.training import MODELS

    p.add_argument("--model", choices=MODELS, default="mlp", help="cnn: digits only")
    p.add_argument("--hidden", type=_positive_int, nargs="+", default=[64, 64], help="MLP widths")
    p.add_argument("--epochs", type=_positive_int, default=epochs)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=seeds)
    p.add_argument(
        "--out", type=Path, default=Path(out), help="output folder (default: %(default)s)"
    )
    p.add_argument(
        "--checkpoint-every", type=_positive_int, default=5, help="epochs between checkpoints"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs checkpointed in --out (default: start them afresh)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
    )


def _mean_sd(values: np.ndarray) -> str:
    return f"{values.mean():.4f} ± {values.std():.4f}"


def _load_data_and_model(args: argparse.Namespace):
    from lookahead_jax.data import load_dataset
    from lookahead_jax.training import make_model

    data = load_dataset(args.dataset)
    if args.batch_size > len(data.x_train):
        raise _UsageError(
            f"--batch-size must be in [1, {len(data.x_train)}] for {args.dataset}, "
            f"got {args.batch_size}"
        )
    try:
        model = make_model(args.model, data, args.hidden)
    except ValueError as e:
        raise _UsageError(str(e).removeprefix("make_model: ")) from None
    return data, model


def _build(spec: str, **overrides: Any):
    from lookahead_jax.optimizer_specs import build_optimizer, parse_optimizer

    try:
        name, kwargs = parse_optimizer(spec)
        return build_optimizer(name, {**kwargs, **overrides})
    except (TypeError, ValueError) as e:
        raise _UsageError(
            str(e) if str(e).startswith(("unknown", "optimizer")) else f"optimizer {spec!r}: {e}"
        ) from None


def _safe_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in label)


def _train_all(args: argparse.Namespace, runs: list[tuple[str, Any]], data, model) -> list[dict]:
    """Trains each (label, optimizer) run with a progress bar and checkpoints under --out."""
    import shutil

    from lookahead_jax.training import train_classifier

    results = []
    with _progress(args.quiet or args.json) as progress:
        for label, tx in runs:
            task = progress.add_task(label, total=args.epochs)
            ckpt = args.out / "checkpoints" / _safe_name(label)
            if not args.resume and ckpt.exists():
                shutil.rmtree(ckpt)  # a fresh run must not pick up an old one's checkpoints
            history = train_classifier(
                tx,
                data,
                model=model,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seeds=args.seeds,
                on_epoch=lambda e, task=task: progress.update(task, completed=e),
                checkpoint_dir=ckpt,
                checkpoint_every=args.checkpoint_every,
            )
            results.append(
                {
                    "optimizer": label,
                    "final_train_loss": history.train_loss[:, -1].tolist(),
                    "final_test_loss": history.test_loss[:, -1].tolist(),
                    "final_test_accuracy": history.test_accuracy[:, -1].tolist(),
                    "seconds_per_epoch": history.seconds_per_epoch,
                    "train_loss": history.train_loss.tolist(),
                    "test_loss": history.test_loss.tolist(),
                    "test_accuracy": history.test_accuracy.tolist(),
                }
            )
    return results


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "dataset": args.dataset,
        "model": args.model,
        "hidden": args.hidden if args.model == "mlp" else None,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
    }


def _print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(120, Console().width)).print(table)


def _describe(args: argparse.Namespace) -> str:
    model = f"MLP {args.hidden}" if args.model == "mlp" else "CNN"
    return (
        f"{args.dataset}, {model}, {args.epochs} epochs, batch {args.batch_size}, "
        f"{len(args.seeds)} seed(s)"
    )


def run_compare(args: argparse.Namespace) -> int:
    from lookahead_jax.lookahead import lookahead
    from lookahead_jax.plots import plot_training_curves

    inners = [(spec, _build(spec)) for spec in args.optimizers]
    data, model = _load_data_and_model(args)
    runs: list[tuple[str, Any]] = []
    for spec, inner in inners:
        if args.lookahead in ("both", "off"):
            runs.append((spec, inner))
        if args.lookahead in ("both", "on"):
            runs.append(
                (f"lookahead({spec})", lookahead(inner, args.sync_period, args.slow_step_size))
            )
    results = _train_all(args, runs, data, model)
    report = {
        **_settings(args),
        "sync_period": args.sync_period,
        "slow_step_size": args.slow_step_size,
        "runs": results,
    }
    write_atomic(args.out / "results.json", json.dumps(report, indent=1))
    plot_training_curves(
        results,
        args.out / "curves.png",
        f"{_describe(args)}; Lookahead k={args.sync_period}, alpha={args.slow_step_size} "
        "(slow weights)",
    )
    if args.json:
        print(json.dumps(report))
        return 0
    _print_table(
        f"{_describe(args)}: mean ± s.d.; Lookahead evaluated on its slow weights",
        ("optimizer", "train loss", "test loss", "test accuracy", "s / epoch"),
        [
            (
                r["optimizer"],
                _mean_sd(np.asarray(r["final_train_loss"])),
                _mean_sd(np.asarray(r["final_test_loss"])),
                _mean_sd(np.asarray(r["final_test_accuracy"])),
                f"{r['seconds_per_epoch']:.3f}",
            )
            for r in results
        ],
    )
    print(f"wrote {args.out / 'results.json'} and {args.out / 'curves.png'}")
    return 0


def run_robustness(args: argparse.Namespace) -> int:
    from lookahead_jax.lookahead import lookahead
    from lookahead_jax.plots import plot_robustness

    base = args.optimizer.split(":", 1)[0]
    inners = [(lr, _build(args.optimizer, learning_rate=lr)) for lr in args.lrs]
    data, model = _load_data_and_model(args)
    configs = [(base, None)] + [
        (f"lookahead({base}, k={k}, alpha={a})", (k, a))
        for k in args.sync_periods
        for a in args.slow_step_sizes
    ]
    runs = []
    for lr, inner in inners:
        for label, la in configs:
            tx = inner if la is None else lookahead(inner, *la)
            runs.append((f"{label} lr={lr:g}", tx))
    results = _train_all(args, runs, data, model)
    by_config = {
        label: np.asarray(
            [results[i * len(configs) + j]["final_train_loss"] for i in range(len(args.lrs))]
        )
        for j, (label, _) in enumerate(configs)
    }
    report = {
        **_settings(args),
        "optimizer": args.optimizer,
        "learning_rates": args.lrs,
        "final_train_loss": {label: v.tolist() for label, v in by_config.items()},
        "runs": results,
    }
    write_atomic(args.out / "results.json", json.dumps(report, indent=1))
    plot_robustness(
        args.lrs,
        by_config,
        args.out / "robustness.png",
        f"Robustness to the learning rate: {args.optimizer} on {_describe(args)}",
    )
    if args.json:
        print(json.dumps(report))
        return 0
    _print_table(
        f"final train loss, mean ± s.d. over seeds ({_describe(args)}; nan = diverged)",
        ("learning rate", *by_config),
        [
            (f"{lr:g}", *(_mean_sd(v[i]) for v in by_config.values()))
            for i, lr in enumerate(args.lrs)
        ],
    )
    print(f"wrote {args.out / 'results.json'} and {args.out / 'robustness.png'}")
    return 0


def run_meta_train(args: argparse.Namespace) -> int:
    import time

    import orbax.checkpoint as ocp

    from lookahead_jax import schedule_eval as se
    from lookahead_jax.lstm_schedule import learned_schedule
    from lookahead_jax.meta import evaluate
    from lookahead_jax.plots import plot_meta_training

    if args.unroll_length is not None and args.horizon % args.unroll_length:
        raise _UsageError(
            f"--unroll-length must divide --horizon, got {args.unroll_length} and {args.horizon}"
        )
    family, inner, grid = se.family_setup(args.family)
    meta_lr = se.META_LR[args.family] if args.meta_lr is None else args.meta_lr
    start = time.perf_counter()
    with _progress(args.quiet or args.json) as progress:
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


def run_meta_eval(args: argparse.Namespace) -> int:
    import jax
    import orbax.checkpoint as ocp

    from lookahead_jax import schedule_eval as se
    from lookahead_jax.lstm_schedule import LSTMSchedule

    settings_path = args.checkpoint / "settings.json"
    if not settings_path.exists():
        raise _UsageError(f"{args.checkpoint} is not a meta-train output folder (no settings.json)")
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
    _print_table(
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


def run_bench(args: argparse.Namespace) -> int:
    from lookahead_jax import bench

    rows = []
    if not args.json:
        print(bench.environment(), flush=True)
    if "lookahead" in args.suites:
        part = bench.lookahead_suite(rounds=7 if args.quick else 21)
        rows += part
        if not args.json:
            print(bench.format_table(part), flush=True)
    if "optimizers" in args.suites:
        part = bench.optimizers_suite(
            rounds=5 if args.quick else 15,
            torch_variants=not args.no_torch,
            torch_threads=args.torch_threads,
        )
        rows += part
        if not args.json:
            print(bench.format_table(part), flush=True)
    if args.json:
        print(json.dumps({"environment": bench.environment(), "rows": [r._asdict() for r in rows]}))
    return 0


class _UsageError(Exception):
    """A bad value found after parsing: reported in one line with exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lookahead-jax` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except _UsageError as e:
        print(f"lookahead-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
