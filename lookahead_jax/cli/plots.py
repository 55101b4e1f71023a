"""Figures the command line writes: readable on their own (titles, units, log scales, legends)."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lookahead_jax.cli._common import atomic


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Saves a figure through a temporary file and a rename (never half-written), and closes it."""
    try:
        with atomic(path) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        pyplot().close(fig)


def plot_training_curves(runs: Sequence[Mapping], path: Path, title: str) -> None:
    """Train loss, test loss and test accuracy per epoch: mean over seeds, shaded +- s.d.

    Args:
      runs: dicts with `optimizer` and `[seeds, epochs]` lists `train_loss`, `test_loss`,
        `test_accuracy` (the `runs` of `lookahead-jax compare --json`).
      path: the PNG to write.
      title: the figure title.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = [
        ("train_loss", "train loss (cross-entropy, nats)", True),
        ("test_loss", "test loss (cross-entropy, nats)", True),
        ("test_accuracy", "test accuracy (fraction correct)", False),
    ]
    for ax, (key, label, log) in zip(axes, panels, strict=True):
        drawn = False
        for run in runs:
            values = np.asarray(run[key], np.float64)
            values = np.where(np.isfinite(values), values, np.nan)  # None/NaN: diverged
            epochs = np.arange(1, values.shape[1] + 1)
            finite = np.isfinite(values)
            style = "-" if run["optimizer"].startswith("lookahead(") else "--"
            name = run["optimizer"] + ("" if finite.all() else " (diverged)")
            if not finite.any():
                ax.plot([], [], style, label=name)  # in the legend, with nothing to draw
                continue
            with np.errstate(all="ignore"):
                mean, sd = np.nanmean(values, 0), np.nanstd(values, 0)
            (line,) = ax.plot(epochs, mean, style, label=name)
            ax.fill_between(epochs, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
            drawn = True
        if log and drawn:
            ax.set_yscale("log")
        if not drawn:
            ax.text(
                0.5, 0.5, "every run diverged", ha="center", va="center", transform=ax.transAxes
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    # One legend below the panels: it covers no curve, however many optimizers there are.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize="small")
    fig.suptitle(title)
    fig.subplots_adjust(bottom=0.12 + 0.05 * ((len(labels) + 3) // 4))
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
    plt = pyplot()
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


def plot_meta_training(
    meta_losses: np.ndarray, lrs: np.ndarray, base_lr: float, path: Path, title: str
) -> None:
    """Meta-loss per meta step, and the learned rates on a few validation tasks.

    Args:
      meta_losses: `[meta_steps]` meta-losses.
      lrs: `[tasks, horizon]` learning rates the learned schedule chose.
      base_lr: the untrained schedule's constant rate (the tuned constant), drawn for reference.
      path: the PNG to write.
      title: the figure title.
    """
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.2))
    steps = np.arange(1, len(meta_losses) + 1)
    ax0.plot(steps, meta_losses, alpha=0.4, label="per meta step")
    window = max(1, len(meta_losses) // 20)
    if len(meta_losses) >= window:
        smooth = np.convolve(meta_losses, np.ones(window) / window, mode="valid")
        ax0.plot(steps[window - 1 :], smooth, label=f"moving mean ({window})")
    ax0.set_xlabel("meta step")
    ax0.set_ylabel("meta-loss (objective, mean over tasks)")
    ax0.legend(fontsize="small")
    ax0.grid(True, alpha=0.3)
    for i, traj in enumerate(np.asarray(lrs)):
        ax1.plot(
            np.arange(len(traj)),
            traj,
            color="C0",
            alpha=0.6,
            label="learned (validation tasks)" if i == 0 else None,
        )
    ax1.axhline(base_lr, color="C1", ls="--", label=f"untrained = tuned constant ({base_lr:.3g})")
    ax1.set_yscale("log")
    ax1.set_xlabel("inner step")
    ax1.set_ylabel("learning rate")
    ax1.legend(fontsize="small")
    ax1.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)
