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
from lookahead_jax.learned_schedule import learned_schedule
from lookahead_jax.lstm_schedule import LSTMSchedule
from lookahead_jax.meta import baseline_tx, mean_final, protocol, stats, task_keys, tune  # noqa: F401

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
        # Early stopping on validation tasks from their own PRNG root (VALID_ROOT): neither the
        # tuning nor the held-out tasks.
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


# Where the protocol's schedule baselines start (each grid extends past an edge optimum).
WARMUPS, FLOORS = (0.0, 0.1, 0.3), (0.0, 0.1)


def schedule_baselines(inner, peaks, horizon, warmups=WARMUPS, floors=FLOORS):
    """Warmup + constant / cosine / linear decay on `inner`, tuned over peak x warmup x floor."""
    return {
        f"warmup+{d}": protocol.schedule_baseline(inner, horizon, d, list(peaks), warmups, floors)
        for d in protocol.DECAYS
    }


def summarise(res: protocol.ProtocolResult) -> dict:
    """A JSON-able summary of a `protocol.run` result."""
    out = {"horizon": res.horizon, "methods": {}, "tuning": {}, "comparisons": {}}
    for name, m in res.metrics.items():
        acc = m.test_accuracy
        out["methods"][name] = {
            "test_loss_mean": float(np.mean(m.test_loss)),
            "test_loss_median": float(np.median(m.test_loss)),
            "test_loss_geomean": float(np.exp(np.mean(np.log(np.maximum(m.test_loss, 1e-38))))),
            "test_accuracy_mean": float(np.nanmean(acc)) if np.isfinite(acc).any() else None,
            "train_loss_mean": float(np.mean(m.train_loss)),
            "eval_seconds": res.seconds[name],
        }
    for name, t in res.tuning.items():
        out["tuning"][name] = {
            "best": t.best,
            "where": t.where,
            "grid": t.grid,
            "inner_steps": t.inner_steps,
            "seconds": t.seconds,
        }
    for (c, b), cmp in res.comparisons.items():
        out["comparisons"][f"{c} vs {b}"] = cmp._asdict()
    if res.oracle is not None:
        out["oracle_per_task_best_constant"] = {
            "test_loss_mean": float(np.mean(res.oracle)),
            "test_loss_geomean": float(np.exp(np.mean(np.log(np.maximum(res.oracle, 1e-38))))),
        }
    return out


def format_summary(out: dict) -> str:
    """The tables of a `summarise` result as text."""
    lines = [f"horizon {out['horizon']}"]
    for name, t in out["tuning"].items():
        best = ", ".join(f"{k} {v:.3g}" for k, v in t["best"].items())
        where = ", ".join(f"{k}: {v}" for k, v in t["where"].items())
        lines.append(
            f"  tuned {name:32s} {best}  ({where}; {t['inner_steps']:.3g} inner steps, "
            f"{t['seconds']:.0f} s)"
        )
    lines.append(
        f"  {'method':34s} {'test loss mean / geomean':>26s} {'test acc':>9s} {'train loss':>11s}"
    )
    for name, m in out["methods"].items():
        acc = "" if m["test_accuracy_mean"] is None else f"{100 * m['test_accuracy_mean']:.2f}%"
        lines.append(
            f"  {name:34s} {m['test_loss_mean']:12.4g} / {m['test_loss_geomean']:<11.4g} "
            f"{acc:>9s} {m['train_loss_mean']:11.4g}"
        )
    if "oracle_per_task_best_constant" in out:
        o = out["oracle_per_task_best_constant"]
        lines.append(
            f"  {'oracle: per-task best constant':34s} {o['test_loss_mean']:12.4g} / "
            f"{o['test_loss_geomean']:<11.4g}"
        )
    for key, c in out["comparisons"].items():
        lo, hi = c["geomean_ci"]
        mlo, mhi = c["median_ci"]
        lines.append(
            f"  {key:60s} geomean ratio {c['geomean_ratio']:.3f} [{lo:.3f}, {hi:.3f}]  median "
            f"log-ratio {c['median_log_ratio']:+.3f} [{mlo:+.3f}, {mhi:+.3f}]  won "
            f"{c['wins']}/{c['num_tasks']}, ties {c['ties']}, diverged {tuple(c['diverged'])}"
        )
    return "\n".join(lines)


def evaluate_schedule(family, inner, peaks, horizon, schedule, params, n_tune, n_heldout):
    """The protocol on our suites' roots: the learned and untrained schedule against baselines.

    Returns:
      ``(summary, lrs)``: `summarise`'s dict, and rate curves for `plot_rates` (the learned
      schedule's on 8 held-out tasks, each tuned baseline's schedule).
    """
    candidates = {
        "learned": learned_schedule(inner, schedule, params),
        "untrained": learned_schedule(inner, schedule, schedule.init_params(jax.random.key(0))),
    }
    baselines = schedule_baselines(inner, peaks, horizon)
    heldout = task_keys(HELDOUT_ROOT, n_heldout)
    res = protocol.run(
        family,
        candidates,
        baselines,
        tune_keys=task_keys(TUNE_ROOT, n_tune),
        heldout_keys=heldout,
        horizon=horizon,
    )
    lrs = {"learned": meta.evaluate(family, candidates["learned"], heldout[:8], horizon).lrs}
    summary = summarise(res)
    # Families without held-out data (the quadratics) are scored on their training loss.
    summary["test_split"] = family(heldout[0]).test_loss is not None
    for name, t in res.tuning.items():
        decay = name.split("+", 1)[1]
        sched = protocol.warmup_decay_schedule(
            t.best["peak"], t.best["warmup"], t.best.get("floor", 0.0), horizon, decay
        )
        lrs[name] = np.asarray(sched(np.arange(horizon)))  # element-wise: one call
    return summary, lrs


def plot_rates(lrs, title, path):
    """The learned schedule's rate on held-out tasks beside the tuned baselines' schedules."""
    from lookahead_jax.cli.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, traj in enumerate(lrs["learned"]):
        label = "learned (8 held-out tasks)" if k == 0 else None
        ax.plot(traj, color="C0", alpha=0.5, lw=1, label=label)
    for j, (name, curve) in enumerate((n, c) for n, c in lrs.items() if n != "learned"):
        ax.plot(curve, color=f"C{j + 1}", lw=2, label=f"{name} (tuned)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)  # atomic, and the figure is closed
