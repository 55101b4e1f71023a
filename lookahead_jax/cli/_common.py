"""What the subcommands share: argument types, one-line usage errors, tables, training runs."""

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def checked(cast, accept, what: str):
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


positive_int = checked(int, lambda v: v >= 1, "a positive integer")
positive_float = checked(float, lambda v: v > 0.0 and np.isfinite(v), "a positive number")
fraction = checked(float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")


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


class UsageError(Exception):
    """A bad value found after parsing: reported in one line with exit status 2."""


def add_training_args(p: argparse.ArgumentParser, epochs: int, seeds: list, out: str) -> None:
    from lookahead_jax.cli.training import MODELS

    p.add_argument("--model", choices=MODELS, default="mlp", help="cnn: digits only")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[64, 64], help="MLP widths")
    p.add_argument("--epochs", type=positive_int, default=epochs)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=seeds)
    p.add_argument(
        "--out", type=Path, default=Path(out), help="output folder (default: %(default)s)"
    )
    p.add_argument(
        "--checkpoint-every", type=positive_int, default=5, help="epochs between checkpoints"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs checkpointed in --out (default: start them afresh)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def progress_bar(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
    )


def mean_sd(values: np.ndarray) -> str:
    return f"{values.mean():.4f} ± {values.std():.4f}"


def load_data_and_model(args: argparse.Namespace):
    from lookahead_jax.cli.data import load_dataset
    from lookahead_jax.cli.training import make_model

    data = load_dataset(args.dataset)
    if args.batch_size > len(data.x_train):
        raise UsageError(
            f"--batch-size must be in [1, {len(data.x_train)}] for {args.dataset}, "
            f"got {args.batch_size}"
        )
    try:
        model = make_model(args.model, data, args.hidden)
    except ValueError as e:
        raise UsageError(str(e).removeprefix("make_model: ")) from None
    return data, model


def build_optimizer_spec(spec: str, **overrides: Any):
    from lookahead_jax.cli.optimizer_specs import build_optimizer, parse_optimizer

    try:
        name, kwargs = parse_optimizer(spec)
        return build_optimizer(name, {**kwargs, **overrides})
    except (TypeError, ValueError) as e:
        raise UsageError(
            str(e) if str(e).startswith(("unknown", "optimizer")) else f"optimizer {spec!r}: {e}"
        ) from None


def safe_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in label)


def train_all(args: argparse.Namespace, runs: list[tuple[str, Any]], data, model) -> list[dict]:
    """Trains each (label, optimizer) run with a progress bar and checkpoints under --out."""
    import shutil

    from lookahead_jax.cli.training import train_classifier

    results = []
    with progress_bar(args.quiet or args.json) as progress:
        for label, tx in runs:
            task = progress.add_task(label, total=args.epochs)
            ckpt = args.out / "checkpoints" / safe_name(label)
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


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "dataset": args.dataset,
        "model": args.model,
        "hidden": args.hidden if args.model == "mlp" else None,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
    }


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(120, Console().width)).print(table)


def describe(args: argparse.Namespace) -> str:
    model = f"MLP {args.hidden}" if args.model == "mlp" else "CNN"
    return (
        f"{args.dataset}, {model}, {args.epochs} epochs, batch {args.batch_size}, "
        f"{len(args.seeds)} seed(s)"
    )
