"""The evaluation protocol's tables for the shipped digits schedule (issues 12 and 17).

Protocol, fixed before any table was computed:

- Training family: the digits MLP (32 tanh units, 512 training rows and the other 1285 as its test
  split, batches of 128), Adam with unit rate (`eps_root=1e-8`), horizon H = 200 steps.
- Learned schedules: `benchmarks/protocol_train.py`, 5 meta-training seeds x 400 meta-steps; each
  keeps its best-validation snapshot (validation tasks, never held-out ones).
- Tuning: 16 tuning tasks (PRNG root 1) per family and horizon, by mean log test loss. Baselines:
  warmup + constant, cosine and linear decay over peak x warmup x floor, peaks a factor 2 apart,
  each grid extended automatically past any edge optimum (printed: inside / natural bound / edge).
  Tuning-free optimizers (`optax.contrib`): at their published defaults, and with their one
  setting (the learning rate, or the base Adam's for Mechanic) calibrated over a factor-2 grid.
- Held-out: 100 tasks (PRNG root 2) per family, never used for tuning or meta-training.
- Metric: test loss of the final params; per-task log-ratios learned / baseline aggregated by
  median and geometric mean with bootstrap 95 % intervals; ties at the float32 floor excluded and
  counted. Test accuracy and final training loss are reported beside it.
- Unseen families: the schedule's base rate is the family's tuned constant (one number, tuned
  like the baselines' on the tuning tasks); baselines start from a coarser grid (warmup 0/0.1/0.3,
  floor 0/0.1), still extended past any edge optimum; tuning-free rows at their defaults.
- Horizons 5x and 10x H: warmup + cosine and + linear tuned at that horizon (warmup 0/0.05/0.2,
  floor 0/0.03/0.3, extended past edges) on 8 tuning tasks, 50 held-out tasks (compute); the
  schedule is the one meta-trained at H. Tuning-free rows at their defaults and at the rates
  calibrated on digits at H (unseen families too).

Run:  python benchmarks/protocol_tables.py --table main          (digits at H; ~25 min on 2 cores)
      python benchmarks/protocol_tables.py --table unseen        (other data sets/architectures)
      python benchmarks/protocol_tables.py --table horizons --tune-tasks 8 --heldout 50
                                                    (5x and 10x H on digits; fewer tasks: compute)
      python benchmarks/protocol_tables.py --table sensitivity   (0.3x / 1x / 3x base rates)
      python benchmarks/protocol_tables.py --table main --heldout 10 --tune-tasks 4  (a pilot)
      python benchmarks/protocol_tables.py --table overhead      (per-step time of the schedule)
      python benchmarks/protocol_tables.py --report     (markdown of the saved tables: README)
"""

import argparse
import functools
import glob
import json
import os
import time

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax import LSTMSchedule, learned_schedule, meta
from lookahead_jax.cli import experiment
from lookahead_jax.cli.data import load_arrays
from lookahead_jax.meta import protocol as P

RESULTS = os.path.join(os.path.dirname(__file__), "results", "protocol")
TUNE_ROOT, HELDOUT_ROOT = 1, 2
H = 200
INNER = optax.adam(1.0, eps_root=1e-8)
PEAKS = [1e-3 * 2**k for k in range(6)]  # 1e-3 .. 3.2e-2, extended past an edge optimum
WARMUPS = (0.0, 0.05, 0.1, 0.2, 0.4)
FLOORS = (0.0, 0.03, 0.1, 0.3)
FEATURE_GROUPS = ("loss", "grad_norm", "time")


def load_schedules():
    """(seed, base_lr, params) of each meta-trained digits schedule."""
    out = []
    for path in sorted(glob.glob(os.path.join(RESULTS, "digits_seed*.json"))):
        info = json.load(open(path))
        schedule = LSTMSchedule(base_lr=info["base_lr"])
        template = schedule.init_params(jax.random.key(0))
        with open(path[: -len(".json")] + ".msgpack", "rb") as f:
            params = flax.serialization.from_bytes(template, f.read())
        out.append((info["seed"], info["base_lr"], params, info))
    if not out:
        raise SystemExit(f"no schedules in {RESULTS}: run benchmarks/protocol_train.py first")
    return out


def _table_family(name, num_train, batch_size, hidden=(32,), activation=jnp.tanh, validation=0.0):
    x, y = load_arrays(name)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    return meta.classification_family(
        x,
        y,
        int(y.max()) + 1,
        hidden=hidden,
        num_train=num_train,
        batch_size=batch_size,
        activation=activation,
        num_validation=round(validation * num_train),
    )


def _digits(hidden=(32,), activation=jnp.tanh, validation=0.0):
    x, y = load_arrays("digits")
    return meta.classification_family(
        x / np.float32(16.0),
        y,
        10,
        hidden=hidden,
        num_train=512,
        batch_size=128,
        activation=activation,
        num_validation=round(validation * 512),
    )


def _noisy_sines(validation=0.0):
    return meta.regression_family(noise=0.3, num_validation=round(validation * 256))


# name -> family; with `validation=f`, that fraction of each task's training rows is kept out as
# its validation split (the same tasks, initial params and test rows).
FAMILIES = {
    "digits": _digits,
    "digits 2x64 tanh": functools.partial(_digits, (64, 64)),
    "digits 32 relu": functools.partial(_digits, activation=jax.nn.relu),
    "digits 128 tanh": functools.partial(_digits, (128,)),
    "wine": functools.partial(_table_family, "wine", 100, 32),
    "breast_cancer": functools.partial(_table_family, "breast_cancer", 300, 64),
    "iris": functools.partial(_table_family, "iris", 90, 32),
    "regression (noisy sines)": _noisy_sines,
}


def finite_mean(losses):
    """The mean of per-task losses, infinite where a task diverged (the sensitivity tables')."""
    losses = np.asarray(losses, np.float64)
    return float(np.mean(np.where(np.isfinite(losses), losses, np.inf)))


def _sf_eval(params, state):
    return optax.contrib.schedule_free_eval_params(state, params)


# name -> (rate -> Method, the published default rate).
TUNING_FREE = {
    "schedule_free_adamw": (
        lambda lr: P.Method(optax.contrib.schedule_free_adamw(lr), _sf_eval),
        2.5e-3,
    ),
    "prodigy": (lambda lr: P.Method(optax.contrib.prodigy(lr)), 1.0),
    "dadapt_adamw": (lambda lr: P.Method(optax.contrib.dadapt_adamw(lr)), 1.0),
    "mechanize(adam)": (lambda lr: P.Method(optax.contrib.mechanize(optax.adam(lr))), 1.0),
}


def tuning_free(calibrate=True, calibrated_on=None):
    """The tuning-free optimizers at their defaults and, if `calibrate`, calibrated here.

    `calibrated_on`: a saved main table whose calibrated rates (tuned on the digits tuning tasks,
    the meta-training family) are added as fixed rows: the same information the learned schedule
    had.
    """
    out = {}
    for name, (make, default) in TUNING_FREE.items():
        out[f"{name} (defaults)"] = P.fixed(make(default))
        if calibrate:
            out[f"{name} (calibrated)"] = P.Tunable(
                lambda hp, make=make: make(hp["lr"]),
                {"lr": [default * 2.0**k for k in range(-3, 4)]},
                {"lr": (0.0, np.inf)},
                frozenset({"lr"}),
            )
        if calibrated_on is not None:
            lr = calibrated_on["tuning"][f"{name} (calibrated)"]["best"]["lr"]
            out[f"{name} (calibrated on digits)"] = P.fixed(make(lr))
    return out


def _main_table():
    path = os.path.join(RESULTS, "main.json")
    return json.load(open(path))["result"] if os.path.exists(path) else None


def schedule_baselines(horizon, warmups=WARMUPS, floors=FLOORS):
    return experiment.schedule_baselines(INNER, PEAKS, horizon, warmups, floors)


def learned(params, base_lr, **schedule_kwargs):
    return learned_schedule(INNER, LSTMSchedule(base_lr=base_lr, **schedule_kwargs), params)


def mean_lr_curve(family, tx, keys, horizon):
    return np.nanmean(meta.evaluate(family, tx, keys, horizon).lrs, axis=0)


def summarise(res: P.ProtocolResult, extra=None):
    """`experiment.summarise` plus `extra`, printed."""
    out = experiment.summarise(res) | (extra or {})
    print(experiment.format_summary(out), flush=True)
    return out


def run_main(args):
    family = FAMILIES["digits"]()
    schedules = load_schedules()
    tune_keys, heldout = (
        meta.task_keys(TUNE_ROOT, args.tune_tasks),
        meta.task_keys(HELDOUT_ROOT, args.heldout),
    )
    candidates = {}
    for seed, base, params, _ in schedules:
        candidates[f"learned s{seed}"] = learned(params, base)
        candidates[f"replay of mean curve s{seed}"] = P.replay_schedule(
            INNER, mean_lr_curve(family, learned(params, base), tune_keys, H)
        )
        for g in FEATURE_GROUPS:
            candidates[f"learned s{seed} without {g}"] = learned(params, base, drop_features=(g,))
    candidates["untrained (constant base_lr)"] = learned(
        LSTMSchedule(base_lr=schedules[0][1]).init_params(jax.random.key(0)), schedules[0][1]
    )
    baselines = schedule_baselines(H) | tuning_free()
    oracle = P.schedule_baseline(INNER, H, "constant", [*PEAKS, 6.4e-2, 1.28e-1], warmups=[0.0])
    res = P.run(
        family,
        candidates,
        baselines,
        tune_keys=tune_keys,
        heldout_keys=heldout,
        horizon=H,
        oracle=oracle,
    )
    meta_info = [info for *_, info in schedules]
    return summarise(
        res,
        {
            "meta_training": [
                {
                    k: i[k]
                    for k in (
                        "seed",
                        "base_lr",
                        "meta_steps",
                        "best_validation_step",
                        "meta_train_wall_s",
                        "inner_steps_meta_train",
                        "inner_steps_tune_base_lr",
                    )
                }
                for i in meta_info
            ],
        },
    )


def run_unseen(args):
    schedules = load_schedules()
    out = {}
    for fam_name in args.families.split(","):
        family = FAMILIES[fam_name]()
        tune_keys, heldout = (
            meta.task_keys(TUNE_ROOT, args.tune_tasks),
            meta.task_keys(HELDOUT_ROOT, args.heldout),
        )
        # A coarser starting grid than the main table's (compute); edges still extend.
        baselines = schedule_baselines(H, warmups=(0.0, 0.1, 0.3), floors=(0.0, 0.1))
        # The learned schedules' one number: the family's tuned constant rate (no warmup).
        const = P.tune(
            family, P.schedule_baseline(INNER, H, "constant", PEAKS, warmups=[0.0]), tune_keys, H
        )
        base = const.best["peak"]
        candidates = {f"learned s{seed}": learned(params, base) for seed, _, params, _ in schedules}
        res = P.run(
            family,
            candidates,
            baselines | tuning_free(calibrate=False, calibrated_on=_main_table()),
            tune_keys=tune_keys,
            heldout_keys=heldout,
            horizon=H,
        )
        print(f"\n=== {fam_name} (learned base_lr {base:.3g}, {const.where})")
        out[fam_name] = summarise(res, {"learned_base_lr": base, "base_lr_where": const.where})
        _save(args, out, partial=True)  # each family as it finishes: the run is long
    return out


def run_horizons(args):
    family = FAMILIES["digits"]()
    schedules = load_schedules()
    out = {}
    for mult in (5, 10):
        h = H * mult
        tune_keys, heldout = (
            meta.task_keys(TUNE_ROOT, args.tune_tasks),
            meta.task_keys(HELDOUT_ROOT, args.heldout),
        )
        candidates = {
            f"learned s{seed}": learned(params, base) for seed, base, params, _ in schedules
        }
        baselines = schedule_baselines(h, warmups=(0.0, 0.05, 0.2), floors=(0.0, 0.03, 0.3))
        del baselines["warmup+constant"]  # compute: the two decays issue 13 names
        baselines |= tuning_free(calibrate=False, calibrated_on=_main_table())
        res = P.run(
            family, candidates, baselines, tune_keys=tune_keys, heldout_keys=heldout, horizon=h
        )
        print(f"\n=== digits at {mult}x H")
        out[f"{mult}x"] = summarise(res)
    return out


def run_sensitivity(args):
    family = FAMILIES["digits"]()
    schedules = load_schedules()
    heldout = meta.task_keys(HELDOUT_ROOT, args.heldout)
    rows = {}
    makers = dict(TUNING_FREE)
    makers["adam (constant)"] = (lambda lr: P.Method(optax.adam(lr)), 1e-3)
    for seed, base, params, _ in schedules[:1]:
        makers[f"learned s{seed}"] = (lambda lr, params=params: P.Method(learned(params, lr)), base)
    for name, (make, default) in makers.items():
        rows[name] = {"default": default}
        for mult in (0.3, 1.0, 3.0):
            m = P.final_metrics(family, make(default * mult), heldout, H)
            rows[name][f"{mult}x"] = finite_mean(m.test_loss)
        print(
            f"  {name:24s} default {default:.3g}: "
            + "  ".join(f"{k} {v:.4g}" for k, v in rows[name].items() if k != "default")
        )
    return rows


def run_overhead(args):
    """Per-step wall time of a jitted digits train step: the learned schedule vs fixed ones."""
    from lookahead_jax.cli import timing

    family = FAMILIES["digits"]()
    task = family(meta.task_keys(HELDOUT_ROOT, 1)[0])
    _, base, params, _ = load_schedules()[0]
    txs = {
        "adam, constant rate": optax.adam(base),
        "adam, warmup+linear": optax.chain(
            INNER, optax.scale_by_schedule(P.warmup_decay_schedule(base, 0.1, 0.1, H, "linear"))
        ),
        "adam, learned schedule": learned(params, base),
    }

    class Runner:
        def __init__(self, tx):
            tx = optax.with_extra_args_support(tx)

            def step(p, s, key):
                loss, g = jax.value_and_grad(task.loss)(p, task.sample_batch(key))
                u, s = tx.update(g, s, p, value=loss)
                return optax.apply_updates(p, u), s

            self.step = jax.jit(step, donate_argnums=(0, 1))
            p0 = task.init_params(jax.random.key(0))
            self.carry = (p0, tx.init(p0))
            self.key = jax.random.key(1)

        def __call__(self, steps):
            p, s = self.carry
            for _ in range(steps):
                p, s = self.step(p, s, self.key)
            jax.block_until_ready((p, s))
            self.carry = (p, s)

    medians = timing.time_interleaved(
        {name: Runner(tx) for name, tx in txs.items()}, rounds=15, steps_per_round=200
    )
    ref = medians["adam, constant rate"]
    out = {name: {"ms": t * 1e3, "ratio": t / ref} for name, t in medians.items()}
    for name, row in out.items():
        print(f"  {name:26s} {row['ms']:.4f} ms/step  {row['ratio']:.2f}x")
    return out


def _ci(c):
    lo, hi = c["geomean_ci"]
    return f"{c['geomean_ratio']:.3f} [{lo:.3f}, {hi:.3f}]"


def _seeds(result):
    return sorted(
        {
            k.split(" vs ")[0]
            for k in result["comparisons"]
            if k.startswith("learned s") and " without " not in k.split(" vs ")[0]
        }
    )


def report():
    """Markdown tables of the saved results (what the README quotes)."""
    load = lambda name: json.load(open(os.path.join(RESULTS, f"{name}.json")))["result"]
    if os.path.exists(os.path.join(RESULTS, "main.json")):
        r = load("main")
        seeds = _seeds(r)
        print(
            "Digits, H = 200: geometric mean of per-task test-loss ratios learned / baseline "
            "[bootstrap 95 % CI], one column per meta-training seed (< 1: learned better)\n"
        )
        print("| baseline | tuned | " + " | ".join(seeds) + " |")
        print("| --- | --- |" + " --- |" * len(seeds))
        for b, t in r["tuning"].items():
            tuned = ", ".join(f"{k} {v:.3g} ({t['where'][k]})" for k, v in t["best"].items())
            row = [_ci(r["comparisons"][f"{sd} vs {b}"]) for sd in seeds]
            print(f"| {b} | {tuned or 'defaults'} | " + " | ".join(row) + " |")
        print("\nHeld-out metrics (100 tasks; mean over tasks)\n")
        print("| method | test loss (geomean) | test loss (mean) | test accuracy | train loss |")
        print("| --- | --- | --- | --- | --- |")
        for name, m in r["methods"].items():
            if " without " in name or name.startswith("replay"):
                continue
            acc = (
                "" if m["test_accuracy_mean"] is None else f"{100 * m['test_accuracy_mean']:.2f} %"
            )
            print(
                f"| {name} | {m['test_loss_geomean']:.4f} | {m['test_loss_mean']:.4f} | {acc} | "
                f"{m['train_loss_mean']:.2e} |"
            )
        o = r["oracle_per_task_best_constant"]
        print(
            f"| oracle: per-task best constant | {o['test_loss_geomean']:.4f} | "
            f"{o['test_loss_mean']:.4f} | | |"
        )
        print("\nAblations: each variant / warmup+linear, as above\n")
        variants = [
            "learned {}",
            "replay of mean curve {}",
            "learned {} without loss",
            "learned {} without grad_norm",
            "learned {} without time",
        ]
        print("| variant | " + " | ".join(seeds) + " |")
        print("| --- |" + " --- |" * len(seeds))
        for v in variants:
            row = [
                _ci(r["comparisons"][f"{v.format(sd.split()[1])} vs warmup+linear"]) for sd in seeds
            ]
            print(f"| {v.format('sN')} | " + " | ".join(row) + " |")
        steps = {b: t["inner_steps"] for b, t in r["tuning"].items()}
        print(
            f"\nTuning compute (inner steps): {steps}; meta-training per seed: "
            f"{r['meta_training'][0]['inner_steps_meta_train']} + "
            f"{r['meta_training'][0]['inner_steps_tune_base_lr']} (base rate)"
        )
    for name, title in (("unseen", "Unseen families"), ("horizons", "Digits at longer horizons")):
        if not os.path.exists(os.path.join(RESULTS, f"{name}.json")):
            continue
        r = load(name)
        print(
            f"\n{title}: geometric-mean test-loss ratio learned / baseline [95 % CI], "
            "median over the 5 seeds' point estimates (range)\n"
        )
        cells = list(r)
        baselines = sorted(
            {k.split(" vs ")[1] for c in cells for k in r[c]["comparisons"]},
            key=lambda b: (not b.startswith("warmup"), b),
        )
        print("| cell | " + " | ".join(baselines) + " |")
        print("| --- |" + " --- |" * len(baselines))
        for c in cells:
            row = []
            for b in baselines:
                vals = [v for k, v in r[c]["comparisons"].items() if k.endswith(f" vs {b}")]
                g = sorted(v["geomean_ratio"] for v in vals)
                below = sum(v["geomean_ci"][1] < 1.0 for v in vals)
                above = sum(v["geomean_ci"][0] > 1.0 for v in vals)
                row.append(
                    f"{np.median(g):.3f} ({g[0]:.3f}-{g[-1]:.3f}); {below} win, {above} lose"
                )
            print(f"| {c} | " + " | ".join(row) + " |")
    if os.path.exists(os.path.join(RESULTS, "overhead.json")):
        print("\nPer-step time of a jitted digits train step (batch 128)\n")
        print("| step | ms | vs constant |")
        print("| --- | --- | --- |")
        for name, row in load("overhead").items():
            print(f"| {name} | {row['ms']:.4f} | {row['ratio']:.2f}x |")
    if os.path.exists(os.path.join(RESULTS, "sensitivity.json")):
        r = load("sensitivity")
        print(
            "\nBase-rate sensitivity, digits H = 200: mean test loss at 0.3x / 1x / 3x the "
            "default rate\n"
        )
        print("| method | default | 0.3x | 1x | 3x |")
        print("| --- | --- | --- | --- | --- |")
        for name, row in r.items():
            print(
                f"| {name} | {row['default']:.3g} | {row['0.3x']:.4f} | {row['1.0x']:.4f} | "
                f"{row['3.0x']:.4f} |"
            )


def _save(args, out, partial=False, wall_s=None, results=RESULTS):
    """Writes `out` with the run's args and versions to `results`/{table}{tag}.json, atomically."""
    record = {
        "args": vars(args),
        "partial": partial,
        "wall_s": wall_s,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "result": out,
    }
    path = os.path.join(results, f"{args.table}{args.tag}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1, default=float)
    os.replace(path + ".tmp", path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table", choices=["main", "unseen", "horizons", "sensitivity", "overhead"]
    )
    parser.add_argument("--report", action="store_true", help="markdown of the saved results")
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument("--tune-tasks", type=int, default=16)
    parser.add_argument("--families", default=",".join(f for f in FAMILIES if f != "digits"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    if args.report:
        return report()
    if args.table is None:
        parser.error("give --table or --report")
    t0 = time.perf_counter()
    out = {
        "main": run_main,
        "unseen": run_unseen,
        "horizons": run_horizons,
        "sensitivity": run_sensitivity,
        "overhead": run_overhead,
    }[args.table](args)
    wall_s = time.perf_counter() - t0
    print(f"\nwrote {_save(args, out, wall_s=wall_s)} ({wall_s:.0f} s)")


if __name__ == "__main__":
    main()
