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
  lookahead-jax compare --json --quiet > results.json""",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _build_parser() -> argparse.ArgumentParser:
    from lookahead_jax.data import DATASETS
    from lookahead_jax.optimizer_specs import OPTIMIZERS

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
    compare.add_argument("--epochs", type=_positive_int, default=20)
    compare.add_argument("--batch-size", type=_positive_int, default=64)
    compare.add_argument(
        "--hidden", type=_positive_int, nargs="+", default=[64, 64], help="hidden widths"
    )
    compare.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    compare.add_argument("--out", type=Path, default=None, help="folder for results.json")
    compare.add_argument("--json", action="store_true", help="print the results as JSON")
    compare.add_argument("--quiet", action="store_true", help="no progress bars")
    compare.set_defaults(run=run_compare)
    return parser


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


def run_compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lookahead_jax.data import load_dataset
    from lookahead_jax.lookahead import lookahead
    from lookahead_jax.optimizer_specs import build_optimizer, parse_optimizer
    from lookahead_jax.training import train_classifier

    try:
        parsed = [parse_optimizer(spec) for spec in args.optimizers]
    except ValueError as e:
        raise _UsageError(str(e)) from None
    data = load_dataset(args.dataset)
    if args.batch_size > len(data.x_train):
        raise _UsageError(
            f"--batch-size must be in [1, {len(data.x_train)}] for {args.dataset}, "
            f"got {args.batch_size}"
        )
    runs: list[tuple[str, Any]] = []
    for (name, kwargs), spec in zip(parsed, args.optimizers, strict=True):
        try:
            inner = build_optimizer(name, kwargs)
        except (TypeError, ValueError) as e:
            raise _UsageError(f"optimizer {spec!r}: {e}") from None
        if args.lookahead in ("both", "off"):
            runs.append((spec, inner))
        if args.lookahead in ("both", "on"):
            tx = lookahead(inner, args.sync_period, args.slow_step_size)
            runs.append((f"lookahead({spec})", tx))

    results = []
    with _progress(args.quiet or args.json) as progress:
        for label, tx in runs:
            task = progress.add_task(label, total=args.epochs)
            history = train_classifier(
                tx,
                data,
                hidden=args.hidden,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seeds=args.seeds,
                on_epoch=lambda e, task=task: progress.update(task, completed=e),
            )
            results.append({"optimizer": label, "history": history})

    report = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "hidden": args.hidden,
        "seeds": args.seeds,
        "sync_period": args.sync_period,
        "slow_step_size": args.slow_step_size,
        "runs": [
            {
                "optimizer": r["optimizer"],
                "final_train_loss": r["history"].train_loss[:, -1].tolist(),
                "final_test_loss": r["history"].test_loss[:, -1].tolist(),
                "final_test_accuracy": r["history"].test_accuracy[:, -1].tolist(),
                "seconds_per_epoch": r["history"].seconds_per_epoch,
                "train_loss": r["history"].train_loss.tolist(),
                "test_loss": r["history"].test_loss.tolist(),
                "test_accuracy": r["history"].test_accuracy.tolist(),
            }
            for r in results
        ],
    }
    if args.out is not None:
        write_atomic(args.out / "results.json", json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
        return 0
    table = Table(
        title=f"{args.dataset}: {args.epochs} epochs, batch {args.batch_size}, MLP {args.hidden}, "
        f"{len(args.seeds)} seed(s), mean ± s.d.; Lookahead evaluated on its slow weights"
    )
    for column in ("optimizer", "train loss", "test loss", "test accuracy", "s / epoch"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for r in results:
        h = r["history"]
        table.add_row(
            r["optimizer"],
            _mean_sd(h.train_loss[:, -1]),
            _mean_sd(h.test_loss[:, -1]),
            _mean_sd(h.test_accuracy[:, -1]),
            f"{h.seconds_per_epoch:.3f}",
        )
    Console(width=max(120, Console().width)).print(table)
    if args.out is not None:
        print(f"wrote {args.out / 'results.json'}")
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
