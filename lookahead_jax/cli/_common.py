"""What the subcommands share: argument types, one-line usage errors, tables, training runs."""

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

SEED_MAX = 2**32 - 1  # seeds become uint32 PRNG keys


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples kept as written, and every option's default shown."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit status 2, and defaults in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

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
seed = checked(int, lambda v: 0 <= v <= SEED_MAX, f"a seed in [0, {SEED_MAX}]")


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`, renamed onto it on success: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename."""
    with atomic(path) as tmp:
        tmp.write_text(text)


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (non-finite numbers as null), for files and `--json`."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """Fails fast (a UsageError) unless `path` is, or can be made, a writable folder."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path} is not a writable folder ({e.strerror})") from None


def exit_on_interrupt() -> None:
    """Ctrl-C (SIGINT) ends the command at once: one line, exit status 130.

    The handler leaves with `os._exit`, skipping interpreter shutdown: unwinding a
    KeyboardInterrupt through XLA's and orbax's threads could crash (segfault) there. Files are
    only ever renamed into place once complete, and checkpoints are committed by orbax's rename,
    so whatever was written before the signal stays valid.
    """

    def handler(signum: int, frame: Any) -> None:
        del signum, frame
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.write(2, b"lookahead-jax: interrupted\n")
        os._exit(130)

    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # an ignored SIGINT stays ignored
        signal.signal(signal.SIGINT, handler)


class UsageError(Exception):
    """A bad value found after parsing: reported in one line with exit status 2."""


def add_training_args(p: argparse.ArgumentParser, epochs: int, seeds: list, out: str) -> None:
    from lookahead_jax.cli.data import DATASETS
    from lookahead_jax.cli.training import MODELS

    p.add_argument(
        "--dataset", choices=DATASETS, default="digits", help="an embedded scikit-learn data set"
    )
    p.add_argument("--model", choices=MODELS, default="mlp", help="an MLP, or a CNN (digits only)")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[64, 64], help="MLP widths")
    p.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the data")
    p.add_argument("--batch-size", type=positive_int, default=64, help="minibatch size")
    p.add_argument("--seeds", type=seed, nargs="+", default=seeds, help="one model per seed")
    p.add_argument("--out", type=Path, default=Path(out), help="output folder")
    p.add_argument(
        "--checkpoint-every", type=positive_int, default=5, help="epochs between checkpoints"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run checkpointed in --out, started with the same settings (a longer "
        "--epochs is fine); without it a run starts afresh",
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
    """`mean ± s.d.` over seeds; one seed shows its value alone; diverged seeds are named."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return "diverged"
    shown = values[finite]
    text = f"{shown.mean():.4f}" if shown.size == 1 else f"{shown.mean():.4f} ± {shown.std():.4f}"
    if not finite.all():
        text += f" ({(~finite).sum()}/{values.size} diverged)"
    return text


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


def build_optimizer_spec(spec: str, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """`(transformation, effective settings)` of a `NAME[:KEY=VALUE,...]` spec."""
    from lookahead_jax.cli.optimizer_specs import (
        build_optimizer,
        effective_settings,
        parse_optimizer,
    )

    try:
        name, kwargs = parse_optimizer(spec)
        kwargs = {**kwargs, **overrides}
        return build_optimizer(name, kwargs), effective_settings(name, kwargs)
    except (TypeError, ValueError) as e:
        raise UsageError(
            str(e) if str(e).startswith(("unknown", "optimizer")) else f"optimizer {spec!r}: {e}"
        ) from None


def safe_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in label)


# Options that do not change what a run computes: anything else must match to --resume.
_NOT_IDENTITY = {"epochs", "out", "resume", "json", "quiet", "checkpoint_every", "run", "command"}


def identity_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that define a run's results (all options but --epochs and output ones)."""
    return json.loads(
        dumps({k: v for k, v in vars(args).items() if k not in _NOT_IDENTITY}, default=str)
    )


def prepare_run(args: argparse.Namespace) -> None:
    """Checks --out, then starts a fresh run or checks that --resume continues the same one.

    The run's settings are stored beside its checkpoints (`checkpoints/run.json`); `--resume`
    refuses a run started with other settings, naming each difference, and refuses to shorten
    it (a longer --epochs continues it). Without --resume, old checkpoints are removed.
    """
    import shutil

    root = args.out / "checkpoints"
    record = root / "run.json"
    if args.resume and not record.exists():
        raise UsageError(
            f"--resume: nothing to resume in {args.out} (no run.json in {root}); run without "
            "--resume to start"
        )
    check_out_dir(args.out)
    settings = identity_settings(args)
    if args.resume:
        try:
            saved = json.loads(record.read_text())
            saved_settings, saved_epochs = saved["settings"], int(saved["epochs"])
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"--resume: {record} is not a run record; start afresh") from None
        diffs = [
            f"--{k.replace('_', '-')} {_show(saved_settings.get(k))} (now {_show(v)})"
            for k, v in settings.items()
            if saved_settings.get(k) != v
        ]
        if diffs:
            raise UsageError(
                f"--resume: the run in {args.out} was started with other settings: "
                f"{'; '.join(diffs)}. Give the same settings, or another --out"
            )
        if args.epochs < saved_epochs:
            raise UsageError(
                f"--resume: the run in {args.out} is for {saved_epochs} epochs, got --epochs "
                f"{args.epochs}; resume with --epochs {saved_epochs} or more"
            )
    elif root.exists():
        shutil.rmtree(root)  # a fresh run must not pick up an old one's checkpoints
    write_atomic(record, dumps({"settings": settings, "epochs": args.epochs}, indent=1))


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def train_all(args: argparse.Namespace, runs: list[tuple[str, Any, dict]], data, model) -> list:
    """Trains each (label, optimizer, settings) run with a progress bar, checkpointing in --out."""
    from lookahead_jax.cli.training import train_classifier

    results = []
    with progress_bar(args.quiet or args.json) as progress:
        for label, tx, settings in runs:
            task = progress.add_task(label, total=args.epochs)
            ckpt = args.out / "checkpoints" / safe_name(label)
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
            timed = history.seconds_per_epoch
            results.append(
                {
                    "optimizer": label,
                    "settings": settings,
                    "final_train_loss": history.train_loss[:, -1].tolist(),
                    "final_test_loss": history.test_loss[:, -1].tolist(),
                    "final_test_accuracy": history.test_accuracy[:, -1].tolist(),
                    "seconds_per_epoch": timed if np.isfinite(timed) else None,
                    **(
                        {}
                        if np.isfinite(timed)
                        else {"seconds_per_epoch_note": "no epoch ran: resumed a finished run"}
                    ),
                    "diverged": (~np.isfinite(history.train_loss[:, -1])).tolist(),
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


def seeds_summary(args: argparse.Namespace) -> str:
    """How a table aggregates its seeds."""
    return "mean ± s.d. over seeds" if len(args.seeds) > 1 else "one seed"


def describe(args: argparse.Namespace) -> str:
    model = f"MLP {args.hidden}" if args.model == "mlp" else "CNN"
    return (
        f"{args.dataset}, {model}, {args.epochs} epochs, batch {args.batch_size}, "
        f"{len(args.seeds)} seed(s)"
    )
