"""Figures the command line writes: readable on their own (titles, units, log scales, legends)."""

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Saves a figure through a temporary file and a rename, so a PNG is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        _pyplot().close(fig)


def plot_training_curves(runs: Sequence[Mapping], path: Path, title: str) -> None:
    """Train loss, test loss and test accuracy per epoch: mean over seeds, shaded +- s.d.

    Args:
      runs: dicts with `optimizer` and `[seeds, epochs]` lists `train_loss`, `test_loss`,
        `test_accuracy` (the `runs` of `lookahead-jax compare --json`).
      path: the PNG to write.
      title: the figure title.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = [
        ("train_loss", "train loss (cross-entropy, nats)", True),
        ("test_loss", "test loss (cross-entropy, nats)", True),
        ("test_accuracy", "test accuracy (fraction correct)", False),
    ]
    for ax, (key, label, log) in zip(axes, panels, strict=True):
        for run in runs:
            values = np.asarray(run[key], np.float64)
            epochs = np.arange(1, values.shape[1] + 1)
            mean, sd = values.mean(0), values.std(0)
            style = "-" if run["optimizer"].startswith("lookahead(") else "--"
            (line,) = ax.plot(epochs, mean, style, label=run["optimizer"])
            ax.fill_between(epochs, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    save_figure(fig, path)


def plot_robustness(
    learning_rates: Sequence[float],
    final_losses: Mapping[str, np.ndarray],
    path: Path,
    title: str,
) -> None:
    """Final train loss against the inner learning rate, one line per configuration.

    Args:
      learning_rates: the swept learning rates (x axis, log scale).
      final_losses: configuration label -> `[lrs, seeds]` final train losses; the line is the
        mean, the error bar the s.d. over seeds. Non-finite losses (diverged runs) are drawn at the
        top of the axis as crosses.
      path: the PNG to write.
      title: the figure title.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lrs = np.asarray(learning_rates, np.float64)
    finite_max = max(
        (
            float(np.nanmax(np.where(np.isfinite(v), v, np.nan)))
            for v in final_losses.values()
            if np.isfinite(v).any()
        ),
        default=1.0,
    )
    for label, losses in final_losses.items():
        losses = np.asarray(losses, np.float64)
        ok = np.isfinite(losses).all(axis=1)
        mean, sd = losses.mean(1), losses.std(1)
        style = "-o" if label.startswith("lookahead") else "--s"
        line = ax.errorbar(lrs[ok], mean[ok], yerr=sd[ok], fmt=style, capsize=3, label=label)
        if (~ok).any():
            ax.plot(
                lrs[~ok],
                np.full((~ok).sum(), finite_max * 2),
                "x",
                ms=10,
                color=line[0].get_color(),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inner learning rate")
    ax.set_ylabel("final train loss (cross-entropy, nats)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", title="x = diverged")
    ax.set_title(title)
    save_figure(fig, path)
