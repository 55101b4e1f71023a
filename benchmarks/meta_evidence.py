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
import gzip
import json
import os

import flax.serialization
import jax

from lookahead_jax import LSTMSchedule, meta
from lookahead_jax.cli.experiment import (
    META_LR,
    TUNE_ROOT,
    compare,
    family_setup,
    meta_train_family,
    plot,
    task_keys,
    tune,
)

RESULTS = os.path.join(os.path.dirname(__file__), "results")


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
        family, inner, grid = family_setup(name)
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
        family, inner, grid = family_setup(args.unseen)
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
    write_results(report, args.tag)
    plot(plots, os.path.join(RESULTS, f"{args.tag}.png"))
    print(f"\nwrote {RESULTS}/{args.tag}.json, _raw.json.gz and .png")


def _split(tree):
    """(summary, raw): the per-step histories go to the raw part, everything else stays."""
    if not isinstance(tree, dict):
        return tree, None
    summary, raw = {}, {}
    for key, value in tree.items():
        if key.endswith("history"):
            raw[key] = value
            continue
        summary[key], sub = _split(value)
        if sub:
            raw[key] = sub
    return summary, raw


def write_results(report, tag):
    """A readable summary `TAG.json`, and the per-step histories gzipped in `TAG_raw.json.gz`."""
    summary, raw = _split(report)
    with open(os.path.join(RESULTS, f"{tag}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with gzip.open(os.path.join(RESULTS, f"{tag}_raw.json.gz"), "wt") as f:
        json.dump(raw, f)


if __name__ == "__main__":
    jax.config.update("jax_numpy_rank_promotion", "raise")
    main()
