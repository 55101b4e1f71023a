"""Acceptance experiment: does a meta-trained LSTM schedule beat tuned baselines on held-out tasks?

For each training family (random quadratics with SGD, a digits MLP with Adam):
  1. Tune a constant rate and the peak of a cosine decay on a log-spaced grid, on training tasks,
     by the mean final full training loss at the horizon.
  2. Meta-train an `LSTMSchedule` whose base_lr is the tuned constant (so the untrained schedule is
     exactly the best constant), within a wall-time budget.
  3. Evaluate on held-out task seeds (never used in tuning or meta-training): the learned schedule,
     the untrained one, the best constant and the tuned cosine. Then the same at twice the horizon
     (baselines re-tuned at 2x), and on an unseen family (MLP regression, Adam) with the schedule
     meta-trained on digits, its base_lr set to that family's tuned constant (the one number the
     baselines also get to tune there).
Reports mean +- standard error of the final loss, and the paired difference learned - baseline
+- its standard error (same tasks for every method). Writes JSON and a PNG to benchmarks/results/.

Run:  python benchmarks/meta_evidence.py   (2 x 240 s of meta-training, ~17 min on 2 shared cores)
      python benchmarks/meta_evidence.py --objective final_log_loss --families quadratic \
          --unseen "" --tag meta_evidence_quadratic_final_log_loss
      python benchmarks/meta_evidence.py --budget 60 --heldout 20   (a quick pilot)
"""

import argparse
import json
import os
import time

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax import meta, tasks
from lookahead_jax.lstm_schedule import LSTMSchedule, learned_schedule

RESULTS = os.path.join(os.path.dirname(__file__), "results")
# Disjoint PRNG roots: tuning, held-out, validation (early stopping) and meta-training tasks.
TUNE_ROOT, HELDOUT_ROOT, VALID_ROOT, META_ROOT = 1, 2, 3, 1000
# Meta-learning rates chosen in short pilots (quadratic: 3e-3 was unstable with another objective).
META_LR = {"quadratic": 1e-3, "digits": 3e-3, "regression": 3e-3}
# Validate often where meta steps are cheap (quadratic: ~15 ms; digits: ~1 s).
VALIDATE_EVERY = {"quadratic": 200, "digits": 20, "regression": 20}

FAMILIES = {
    # name: (family, inner optimizer, lr grid)
    "quadratic": (tasks.quadratic_family(), optax.sgd(1.0), np.logspace(-1, 2, 10)),
    "digits": (
        tasks.digits_mlp_family(),
        optax.adam(1.0, eps_root=1e-8),
        np.logspace(-4, -0.5, 10),
    ),
    "regression": (
        tasks.regression_family(),
        optax.adam(1.0, eps_root=1e-8),
        np.logspace(-4, -0.5, 10),
    ),
}


def task_keys(root: int, n: int) -> jax.Array:
    return jax.random.split(jax.random.key(root), n)


def mean_final(x):
    # A diverged task counts as +inf, so a rate that diverges anywhere is never picked.
    x = np.where(np.isfinite(x), x, np.inf)
    return float(np.mean(x))


def baseline_tx(inner, lr, horizon, cosine):
    schedule = optax.cosine_decay_schedule(lr, horizon) if cosine else (lambda t: lr)
    return optax.chain(inner, optax.scale_by_schedule(schedule))


def tune(family, inner, grid, keys, horizon):
    """Best constant rate and best cosine peak (by mean final loss on the tuning tasks)."""
    means = {}
    for cosine in (False, True):

        def finals(lr, cosine=cosine):
            tx = baseline_tx(inner, lr, horizon, cosine)
            return meta.loss_curves(family, tx, keys, horizon).full_losses[:, -1]

        # One compilation for the whole grid (the rate is traced).
        f = jax.jit(lambda g: jax.lax.map(finals, g))(jnp.asarray(grid, jnp.float32))
        means[cosine] = [mean_final(row) for row in np.asarray(f)]
    const, cos = means[False], means[True]
    return float(grid[int(np.argmin(const))]), float(grid[int(np.argmin(cos))]), const, cos


def stats(x):
    x = np.asarray(x, np.float64)
    return {"mean": float(np.mean(x)), "se": float(np.std(x, ddof=1) / np.sqrt(len(x)))}


def compare(family, inner, grid, horizon, schedule, schedule_params, n_tune, n_heldout):
    """Tunes baselines at `horizon` and evaluates all methods on held-out tasks."""
    lr_c, lr_cos, const_curve, cos_curve = tune(
        family, inner, grid, task_keys(TUNE_ROOT, n_tune), horizon
    )
    keys = task_keys(HELDOUT_ROOT, n_heldout)
    methods = {
        "learned": learned_schedule(inner, schedule, schedule_params),
        "untrained": learned_schedule(inner, schedule, schedule.init_params(jax.random.key(0))),
        "best_constant": baseline_tx(inner, lr_c, horizon, cosine=False),
        "cosine": baseline_tx(inner, lr_cos, horizon, cosine=True),
    }
    evals = {name: meta.evaluate(family, tx, keys, horizon) for name, tx in methods.items()}
    final = {name: ev.full_losses[:, -1] for name, ev in evals.items()}
    out = {
        "horizon": horizon,
        "num_heldout_tasks": n_heldout,
        "grid": [float(g) for g in grid],
        "tuning_mean_final_constant": const_curve,
        "tuning_mean_final_cosine": cos_curve,
        "best_constant_lr": lr_c,
        "best_cosine_peak": lr_cos,
        "final_loss": {name: stats(v) for name, v in final.items()},
        "final_loss_median": {name: float(np.median(v)) for name, v in final.items()},
    }
    for base in ("best_constant", "cosine", "untrained"):
        diff = final["learned"] - final[base]
        d = stats(diff)
        se_unpaired = float(
            np.hypot(out["final_loss"]["learned"]["se"], out["final_loss"][base]["se"])
        )
        out[f"learned_minus_{base}"] = {
            **d,
            "paired_beats_by_2se": bool(d["mean"] < -2 * d["se"]),
            "unpaired_se": se_unpaired,
            "unpaired_beats_by_2se": bool(d["mean"] < -2 * se_unpaired),
            "tasks_won": int(np.sum(diff < 0)),
        }
    lrs = {
        "learned": evals["learned"].lrs,
        "best_constant": np.full((1, horizon), lr_c),
        "cosine": np.asarray(optax.cosine_decay_schedule(lr_cos, horizon)(np.arange(horizon)))[
            None
        ],
    }
    curves = {name: ev.full_losses for name, ev in evals.items()}
    return out, lrs, curves


def meta_train_family(
    name, budget_s, horizon, unroll_length, num_tasks, meta_lr, seed, grid, n_tune, objective
):
    validate_every = VALIDATE_EVERY[name]
    family, inner, _ = FAMILIES[name]
    lr_c, _, _, _ = tune(family, inner, grid, task_keys(TUNE_ROOT, n_tune), horizon)
    schedule = LSTMSchedule(base_lr=lr_c)
    t0 = time.perf_counter()
    result = meta.meta_train(
        family,
        schedule,
        inner,
        key=jax.random.key(META_ROOT + seed),
        num_meta_steps=10**9,
        objective=objective,
        horizon=horizon,
        unroll_length=unroll_length,
        num_tasks=num_tasks,
        meta_optimizer=optax.adam(meta_lr),
        time_budget_s=budget_s,
        # Early stopping on validation tasks drawn from the tuning set (never the held-out ones).
        validation_keys=task_keys(VALID_ROOT, 16),
        validate_every=validate_every,
    )
    print(
        f"[{name}] meta-trained {len(result.history)} steps in {time.perf_counter() - t0:.0f} s; "
        f"meta-loss {np.mean(result.history[:10]):.4g} -> {np.mean(result.history[-10:]):.4g}; "
        f"validation {result.validation[0, 1]:.4g} -> best {result.validation[:, 1].min():.4g} "
        f"at step {int(result.validation[np.argmin(result.validation[:, 1]), 0])}",
        flush=True,
    )
    return schedule, result


def fmt(s):
    return f"{s['mean']:.4g} +- {s['se']:.2g}"


def print_table(title, out):
    print(
        f"\n{title} (horizon {out['horizon']}, {out['num_heldout_tasks']} held-out tasks; "
        f"const lr {out['best_constant_lr']:.3g}, cosine peak {out['best_cosine_peak']:.3g})"
    )
    for name, s in out["final_loss"].items():
        print(f"  {name:14s} final loss {fmt(s)}")
    for base in ("best_constant", "cosine", "untrained"):
        d = out[f"learned_minus_{base}"]
        print(
            f"  learned - {base:13s} {fmt(d)}  (paired; beats by >2 s.e.: "
            f"{d['paired_beats_by_2se']}; unpaired: {d['unpaired_beats_by_2se']}; "
            f"won {d['tasks_won']}/{out['num_heldout_tasks']})"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="meta-training seconds/family")
    parser.add_argument("--horizon", type=int, default=200)
    parser.add_argument("--unroll-length", type=int, default=None)
    parser.add_argument("--num-tasks", type=int, default=8)
    parser.add_argument("--meta-lr", type=float, default=None, help="default: META_LR[family]")
    parser.add_argument("--heldout", type=int, default=200)
    parser.add_argument("--tune-tasks", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default="quadratic,digits")
    parser.add_argument("--unseen", default="regression")
    parser.add_argument("--tag", default="meta_evidence")
    parser.add_argument("--objective", default="final_loss", choices=meta.OBJECTIVES)
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    report = {"args": vars(args), "cpu_count": os.cpu_count(), "families": {}}
    plots = {}
    trained = {}
    for name in args.families.split(","):
        family, inner, grid = FAMILIES[name]
        schedule, result = meta_train_family(
            name,
            args.budget,
            args.horizon,
            args.unroll_length,
            args.num_tasks,
            META_LR[name] if args.meta_lr is None else args.meta_lr,
            args.seed,
            grid,
            args.tune_tasks,
            args.objective,
        )
        trained[name] = (schedule, result)
        with open(os.path.join(RESULTS, f"{args.tag}_{name}_schedule.msgpack"), "wb") as f:
            f.write(flax.serialization.to_bytes(result.meta_params["schedule"]))
        params = result.meta_params["schedule"]
        entry = {
            "meta_train_wall_s": result.wall_time_s,
            "meta_steps": len(result.history),
            "meta_loss_history": result.history.tolist(),
            "validation_history": result.validation.tolist(),
        }
        for label, horizon in (("horizon", args.horizon), ("twice_horizon", 2 * args.horizon)):
            out, lrs, curves = compare(
                family, inner, grid, horizon, schedule, params, args.tune_tasks, args.heldout
            )
            entry[label] = out
            print_table(f"{name} [{label}]", out)
            plots[(name, label)] = (lrs, curves)
        report["families"][name] = entry
    if args.unseen:
        source = "digits" if "digits" in trained else next(iter(trained))
        family, inner, grid = FAMILIES[args.unseen]
        src_schedule, src_result = trained[source]
        lr_c, _, _, _ = tune(
            family, inner, grid, task_keys(TUNE_ROOT, args.tune_tasks), args.horizon
        )
        schedule = LSTMSchedule(base_lr=lr_c, hidden_size=src_schedule.hidden_size)
        out, lrs, curves = compare(
            family,
            inner,
            grid,
            args.horizon,
            schedule,
            src_result.meta_params["schedule"],
            args.tune_tasks,
            args.heldout,
        )
        out["schedule_trained_on"] = source
        report["unseen"] = {args.unseen: out}
        print_table(f"unseen {args.unseen} (schedule from {source})", out)
        plots[(args.unseen, "unseen")] = (lrs, curves)
    with open(os.path.join(RESULTS, f"{args.tag}.json"), "w") as f:
        json.dump(report, f, indent=1)
    plot(plots, os.path.join(RESULTS, f"{args.tag}.png"))
    print(f"\nwrote {RESULTS}/{args.tag}.json and .png")


def plot(plots, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        ax.plot(lrs["best_constant"][0], color="C1", lw=2, label="best constant")
        ax.plot(lrs["cosine"][0], color="C2", lw=2, label="cosine (best peak)")
        ax.set_yscale("log")
        ax.set_title(f"{name} [{label}]: learning rate")
        ax.set_xlabel("step")
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
                label=method,
                ls="--" if method == "untrained" else "-",
            )
        ax.set_yscale("log")
        ax.set_title("full train loss (geometric mean)")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    jax.config.update("jax_numpy_rank_promotion", "raise")
    main()
