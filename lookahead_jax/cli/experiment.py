"""Our held-out experiment: the evaluation protocol of `lookahead_jax.meta` run on our suites.

Behind `benchmarks/meta_evidence.py` and `lookahead-jax meta-train`/`meta-eval`: the suites'
constants (PRNG roots, meta-learning rates, grids) live here, the protocol in the library.
Baselines are tuned on a log-spaced grid on tuning tasks, the schedule is meta-trained on training
tasks (early-stopped on validation tasks), and everything is evaluated on held-out tasks drawn
from a PRNG root that neither tuning nor meta-training ever sees. Differences are paired over the
same tasks.
"""

import time

import jax
import numpy as np
import optax

from lookahead_jax import meta
from lookahead_jax.cli.families import digits_mlp_family
from lookahead_jax.lstm_schedule import LSTMSchedule
from lookahead_jax.meta import baseline_tx, mean_final, stats, task_keys, tune  # noqa: F401

# Disjoint PRNG roots: tuning, held-out, validation (early stopping) and meta-training tasks.
TUNE_ROOT, HELDOUT_ROOT, VALID_ROOT, META_ROOT = 1, 2, 3, 1000
# Meta-learning rates chosen in short pilots (quadratic: 3e-3 was unstable with another objective).
META_LR = {"quadratic": 1e-3, "digits": 3e-3, "regression": 3e-3}
# Validate often where meta steps are cheap (quadratic: ~15 ms; digits: ~1 s).
VALIDATE_EVERY = {"quadratic": 200, "digits": 20, "regression": 20}

FAMILY_NAMES = ("quadratic", "digits", "regression")
# How each method is named in tables and plots (its key in results.json is the dict key).
LABELS = {
    "learned": "learned",
    "untrained": "untrained",
    "best_constant": "best constant",
    "cosine": "cosine (best peak)",
}


def family_setup(name: str) -> tuple[meta.TaskFamily, optax.GradientTransformation, np.ndarray]:
    """(family, unit-rate inner optimizer, log-spaced learning-rate grid) of a named family.

    Built on demand: the digits family loads its data set.
    """
    if name == "quadratic":
        return meta.quadratic_family(), optax.sgd(1.0), np.logspace(-1, 2, 10)
    if name == "digits":
        return digits_mlp_family(), optax.adam(1.0, eps_root=1e-8), np.logspace(-4, -0.5, 10)
    if name == "regression":
        return meta.regression_family(), optax.adam(1.0, eps_root=1e-8), np.logspace(-4, -0.5, 10)
    raise ValueError(
        f"family_setup: unknown family {name!r}; choose from {', '.join(FAMILY_NAMES)}"
    )


def meta_train_family(
    name,
    budget_s,
    horizon,
    unroll_length,
    num_tasks,
    meta_lr,
    seed,
    grid,
    n_tune,
    objective,
    callback=None,
    verbose=True,
    budget_start=None,
    num_meta_steps=None,
):
    """Tunes the constant rate, then meta-trains an `LSTMSchedule` starting from it.

    With `budget_start` (a `time.perf_counter()` value), `budget_s` bounds the whole run from
    then on, tuning and compilation included; else it bounds meta-training alone. With
    `num_meta_steps` the run takes exactly that many meta-steps (evidence runs: a wall-clock
    budget would make the result depend on the machine's load); `budget_s` may then be None.
    """
    validate_every = VALIDATE_EVERY[name]
    family, inner, _ = family_setup(name)
    lr_c, _, _, _ = tune(family, inner, grid, task_keys(TUNE_ROOT, n_tune), horizon)
    schedule = LSTMSchedule(base_lr=lr_c)
    t0 = time.perf_counter()
    if budget_start is not None:
        budget_s = max(budget_s - (t0 - budget_start), 0.0)
    result = meta.meta_train(
        family,
        schedule,
        inner,
        key=jax.random.key(META_ROOT + seed),
        num_meta_steps=10**9 if num_meta_steps is None else num_meta_steps,
        objective=objective,
        horizon=horizon,
        unroll_length=unroll_length,
        num_tasks=num_tasks,
        meta_optimizer=optax.adam(meta_lr),
        time_budget_s=budget_s,
        # Early stopping on validation tasks drawn from the tuning set (never the held-out ones).
        validation_keys=task_keys(VALID_ROOT, 16),
        validate_every=validate_every,
        callback=callback,
    )
    if verbose:
        print(
            f"[{name}] meta-trained {len(result.history)} steps in "
            f"{time.perf_counter() - t0:.0f} s; "
            f"meta-loss {np.mean(result.history[:10]):.4g} -> {np.mean(result.history[-10:]):.4g}; "
            f"validation {result.validation[0, 1]:.4g} -> best {result.validation[:, 1].min():.4g} "
            f"at step {int(result.validation[np.argmin(result.validation[:, 1]), 0])}",
            flush=True,
        )
    return schedule, result


def plot(plots, path):
    """Learning-rate trajectories and loss curves of `compare` results, one column each."""
    from lookahead_jax.cli.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(2, len(plots), figsize=(4 * len(plots), 7), squeeze=False)
    for j, ((name, label), (lrs, curves)) in enumerate(plots.items()):
        ax = axes[0, j]
        for k, traj in enumerate(lrs["learned"][:8]):
            ax.plot(
                traj,
                color="C0",
                alpha=0.5,
                lw=1,
                label="learned (8 held-out tasks)" if k == 0 else None,
            )
        ax.plot(lrs["best_constant"][0], color="C1", lw=2, label=LABELS["best_constant"])
        ax.plot(lrs["cosine"][0], color="C2", lw=2, label=LABELS["cosine"])
        ax.set_yscale("log")
        ax.set_title(f"{name} [{label}]: learning rate")
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.legend(fontsize=7)
        ax = axes[1, j]
        for method, color in (
            ("learned", "C0"),
            ("best_constant", "C1"),
            ("cosine", "C2"),
            ("untrained", "C3"),
        ):
            c = curves[method]
            ax.plot(
                np.exp(np.mean(np.log(np.maximum(c, 1e-30)), axis=0)),  # float32 can reach 0
                color=color,
                label=LABELS[method],
                ls="--" if method == "untrained" else "-",
            )
        ax.set_yscale("log")
        ax.set_title("full train loss")
        ax.set_xlabel("step")
        ax.set_ylabel("full train loss (geometric mean over tasks)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)  # atomic, and the figure is closed


def compare(family, inner, grid, horizon, schedule, schedule_params, n_tune, n_heldout):
    """`lookahead_jax.meta.compare` on our suites' tuning and held-out task roots."""
    return meta.compare(
        family,
        inner,
        grid,
        horizon,
        schedule,
        schedule_params,
        task_keys(TUNE_ROOT, n_tune),
        task_keys(HELDOUT_ROOT, n_heldout),
    )
