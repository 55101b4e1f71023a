"""The evaluation protocol's tables for the shipped `lj.pretrained_schedule()` (issues 13, 17).

Protocol, fixed before any table was computed (training: `benchmarks/pretrained_train.py`):

- Unseen families: the seven of `benchmarks/protocol_tables.py` other than digits (wine,
  breast_cancer, iris; the digits MLP at 2x64 tanh, 32 relu and 128 tanh; the sines regression
  with label noise 0.3, a variant of the noise-0.1 training family). Horizons 1x H = 200 on all
  seven; 5x H on the four small ones (wine, breast_cancer, iris, regression) and 10x H on wine
  and regression: compute (a 10x cell costs ~15 min on the 2-core machine).
- Per cell: 8 tuning tasks (PRNG root 1), 50 held-out tasks (root 2); metric: held-out test
  loss of the final params, per-task log-ratios against each baseline (`protocol.run`).
- The pretrained schedule needs no tuned input: its shipped base rate and params, with the
  horizon given (`horizon=T`) and not (`horizon=None`). All 5 meta-training seeds (horizon
  given) are rows too, for the spread; the shipped one is chosen by validation meta-loss.
- Baselines:
  - warmup+cosine and warmup+linear on Adam tuned on the target family (peak x warmup x floor,
    peaks a factor 2 apart from 1e-3, warmup 0/0.1/0.3, floor 0/0.1, grids extended past any
    edge optimum): the oracle reference (issue 17: within 2 %);
  - the same two tuned on the meta-training mixture at the cell's horizon (one setting for the
    three families, same grids; warmup 0/0.1 and floor 0/0.1 at 5x and 10x: compute) and carried
    to the family: the same information the pretrained schedule had;
  - Adam at its default rate 1e-3, constant;
  - schedule_free_adamw, prodigy, dadapt_adamw, mechanize(adam): at their published defaults,
    and with their rate calibrated on the mixture at H (factor-2 grid), carried.
- Aggregation: geometric mean over all cells of per-task test-loss ratios (equal tasks per cell),
  bootstrap 95 % interval resampling tasks within cells; the per-cell table names every cell a
  baseline wins.
- Sensitivity: mean test loss of the pretrained schedule and the tuning-free optimizers at 0.3x,
  1x and 3x their default rate, on each unseen family at H.

Run:  python benchmarks/pretrained_tables.py --table unseen --horizons 1 --tag _1x
      python benchmarks/pretrained_tables.py --table unseen --horizons 5 --tag _long \
          --families "wine,breast_cancer,iris,regression (noisy sines)"
      python benchmarks/pretrained_tables.py --table unseen --horizons 10 --tag _long \
          --families "wine,regression (noisy sines)"
                   (cells already in the file are kept; ~75 min in all; --report merges them)
      python benchmarks/pretrained_tables.py --table sensitivity \
          --families "wine,breast_cancer,iris,regression (noisy sines)"
      python benchmarks/pretrained_tables.py --table sensitivity
      python benchmarks/pretrained_tables.py --table unseen --heldout 8 --tune-tasks 2 \
          --families wine --horizons 1 --tag _pilot                (a pilot)
      python benchmarks/pretrained_tables.py --table ablations \
          --families "wine,breast_cancer,iris,regression (noisy sines)"
      python benchmarks/pretrained_tables.py --table rates         (the shipped rates per family)
      python benchmarks/pretrained_tables.py --table wider_rows
          (the same-information rows of v3 and v4: the mixture-tuned and calibrated baselines
          tuned on their wider mixture, on the stored unseen cells' tasks)
      python benchmarks/pretrained_tables.py --table steps_to_target
          (steps to 1.1x the target-tuned warmup+cosine's final test loss, on the stored unseen
          cells: the shipped schedule, Adam 1e-3, Schedule-Free at its defaults, warmup+cosine
          tuned on the wider mixture and the target-tuned one; the shipped schedule's curve must
          reproduce its stored final losses, the others' drift is recorded, and the targets come
          from the target-tuned curve as recomputed)
      python benchmarks/pretrained_tables.py --table shipped_default
          (added after `fourth_suite.py` changed v4's default base rate to 0.707x of 0.016: the
          shipped default, horizon given and not, and at 0.3x and 3x of it, on the stored unseen
          cells' tasks; every "pretrained" row of the other tables is v4 at 0.016)
      python benchmarks/pretrained_tables.py --table v5
          (added after `fifth_suite.py` shipped v5: the same four rows for v5 at its default
          rate; the tables' other "pretrained" and seed rows stay v4's)
      python benchmarks/pretrained_tables.py --table v6
          (added after `sixth_suite.py` shipped v6: the same four rows for v6)
      python benchmarks/pretrained_tables.py --report             (markdown: README)
      python benchmarks/pretrained_tables.py --table unseen --tag _1x --refresh
      python benchmarks/pretrained_tables.py --table unseen --tag _long --refresh
      python benchmarks/pretrained_tables.py --table sensitivity --refresh \
          --families "wine,breast_cancer,iris,regression (noisy sines)"
          (after shipping new params (v2, v3, v4): the pretrained rows anew, the shipped
          protocol's seed rows from its `schedule_pilot.py` run, the baselines as stored; the
          previous version's rows stay, prefixed "v1 ", "v2 " or "v3 "; then --table ablations and
          --table rates again, and --report)
"""

import argparse
import functools
import json
import os
import re
import sys
import time

import numpy as np
import optax

sys.path.insert(0, os.path.dirname(__file__))
import pretrained_train as T
import protocol_tables as PT

import lookahead_jax as lj
from lookahead_jax import LSTMSchedule, meta
from lookahead_jax.cli import experiment
from lookahead_jax.meta import protocol as P

RESULTS = T.RESULTS
H, INNER = T.H, T.INNER
PEAKS = [1e-3 * 2**k for k in range(6)]
SMALL = ("wine", "breast_cancer", "iris", "regression (noisy sines)")
UNSEEN = tuple(f for f in PT.FAMILIES if f != "digits")
# Grid extensions past an edge optimum (protocol.tune's default is 4; several dimensions can
# extend at once, and the mixture's floor ran out of them at 4).
MAX_EXTENSIONS = 8


def seeds():
    """(seed, params) of each seed of v4's protocol, and v4's seed number (the tables' seed rows
    are v4's)."""
    _, params = T.load_seeds(T.V4_SEEDS, alignment=False)
    return list(params.items()), T.rule_pick(T.V4_SEEDS)["seed"]


V4_DEFAULT_SCALE = 2.0**-0.5  # v4's default rate from the fourth suite on: 0.707 x 0.016


@functools.cache
def _v4():
    """v4's schedule and params, read once from the folder it was trained in."""
    return T.pick_at(T.V4_SEEDS, None)


def v4_schedule(horizon, scale=1.0):
    """(schedule, params) of v4 (shipped 2026-12-06 until v5; its seed, read from the folder it
    was trained in, not from the package) at `scale` x the rate most stored v4 rows were measured
    at: its meta-training rate 0.016 (its default until `fourth_suite.py`'s calibrated 0.707x,
    `V4_DEFAULT_SCALE`, replaced it)."""
    schedule, params = _v4()
    return schedule.clone(horizon=horizon, base_lr=schedule.base_lr * scale), params


def v4_default_at(horizon, scale=1.0):
    """v4 at `scale` x the default rate the fourth suite adopted (0.707 x 0.016)."""
    return v4_schedule(horizon, V4_DEFAULT_SCALE * scale)


@functools.cache
def _v5():
    """v5's schedule at its default rate (its meta-training rate times the multiple the fifth
    suite's calibration chose) and its params, read once from the folder it was trained in."""
    return T.pick_at(T.V5_SEEDS, None, json.load(open(T.V5_CALIBRATION))["best"])


def v5_at(horizon, scale=1.0):
    """(schedule, params) of v5 (shipped 2026-12-06 until v6; read from the folder it was
    trained in, not from the package) at `scale` x its default rate (0.0226)."""
    schedule, params = _v5()
    return schedule.clone(horizon=horizon, base_lr=schedule.base_lr * scale), params


def v6_at(horizon, scale=1.0):
    """(schedule, params) of the shipped v6 at `scale` x its default rate."""
    return lj.pretrained_schedule(horizon, base_lr=lj.pretrained_info()["base_lr"] * scale)


def pretrained(horizon, params=None, scale=1.0):
    """The shipped v4 (or a seed's `params`) at `scale` x its meta-training rate (`v4_schedule`)."""
    schedule, shipped = v4_schedule(horizon, scale)
    return lj.learned_schedule(INNER, schedule, shipped if params is None else params)


def _cache(name, compute):
    path = os.path.join(RESULTS, f"{name}.json")
    if os.path.exists(path):
        return json.load(open(path))
    out = compute()
    json.dump(out, open(path, "w"), indent=1)
    return out


def mixture_tuned(horizon, wider=False):
    """Warmup+cosine/linear tuned on the meta-training mixture at `horizon` (cached); `wider`:
    on the wider mixture (`T.WIDER` too), the information v3 and v4 had."""

    def compute():
        warm = (0.0, 0.1, 0.3) if horizon == H else (0.0, 0.1)
        out = {}
        for decay in ("cosine", "linear"):
            t = P.tune(
                T.mixture(scaled=False, wider=wider),
                P.schedule_baseline(INNER, horizon, decay, PEAKS, warm, (0.0, 0.1)),
                meta.task_keys(PT.TUNE_ROOT, 8),
                horizon,
                max_extensions=MAX_EXTENSIONS,
            )
            out[f"warmup+{decay}"] = {
                "best": t.best,
                "where": t.where,
                "inner_steps": t.inner_steps,
                "seconds": t.seconds,
            }
            print(f"  mixture-tuned warmup+{decay} at {horizon}: {t.best} {t.where}", flush=True)
        return out

    return _cache(f"mixture_tuning{'_wider' if wider else ''}_{horizon}", compute)


def calibrated_on_mixture(wider=False):
    """Tuning-free optimizers' rate calibrated on the mixture at H (cached); `wider`: on the
    wider mixture of v3 and v4."""

    def compute():
        out = {}
        for name, (make, default) in PT.TUNING_FREE.items():
            t = P.tune(
                T.mixture(scaled=False, wider=wider),
                P.Tunable(
                    lambda hp, make=make: make(hp["lr"]),
                    {"lr": [default * 2.0**k for k in range(-3, 4)]},
                    {"lr": (0.0, np.inf)},
                    frozenset({"lr"}),
                ),
                meta.task_keys(PT.TUNE_ROOT, 8),
                H,
            )
            out[name] = {"lr": t.best["lr"], "where": t.where["lr"], "seconds": t.seconds}
            print(f"  {name} calibrated on the mixture: {out[name]}", flush=True)
        return out

    return _cache(f"mixture_calibration{'_wider' if wider else ''}", compute)


def _mixture_rows(horizon, wider):
    """The warmup+decay rows tuned on a mixture, and each tuning-free optimizer's row calibrated
    there ({name: row}), named as the tables name them."""
    tuned, calibrated = (
        ("tuned on the wider mixture", "calibrated on the wider mixture")
        if wider
        else ("mixture-tuned", "calibrated on mixture")
    )
    rows = {}
    for decay, t in mixture_tuned(horizon, wider=wider).items():
        b = t["best"]
        tunable = P.schedule_baseline(INNER, horizon, decay.split("+")[1], [b["peak"]])
        rows[f"{decay} ({tuned})"] = P.fixed(tunable.make(b))
    calib = calibrated_on_mixture(wider=wider)
    for name, (make, _) in PT.TUNING_FREE.items():
        rows[f"{name} ({calibrated})"] = P.fixed(make(calib[name]["lr"]))
    return rows


def fixed_rows(horizon):
    mixture = _mixture_rows(horizon, wider=False)
    rows = {"adam 1e-3": P.fixed(optax.adam(1e-3))}
    rows |= {k: v for k, v in mixture.items() if k.startswith("warmup+")}
    for name, (make, default) in PT.TUNING_FREE.items():
        rows[f"{name} (defaults)"] = P.fixed(make(default))
        rows[f"{name} (calibrated on mixture)"] = mixture[f"{name} (calibrated on mixture)"]
    return rows


def wider_rows(horizon):
    """The mixture-tuned and calibrated rows, tuned on the wider mixture of v3 and v4 (the same
    information they had)."""
    return _mixture_rows(horizon, wider=True)


def run_wider_rows(args):
    """`wider_rows` on the stored unseen cells' held-out tasks, per-task test losses."""
    out = _load(args) or {}
    keys = meta.task_keys(PT.HELDOUT_ROOT, args.heldout)
    cells = {}
    for tag in ("_1x", "_long"):
        cells |= json.load(open(os.path.join(RESULTS, f"unseen{tag}.json")))["result"]
    for mult in (1, 5, 10):  # a horizon's tuning once, its cells after
        for cell in cells:
            fam_name, m = cell.split(" @ ")
            if int(m[:-1]) != mult or cell in out:
                continue
            family, horizon = PT.FAMILIES[fam_name](), H * mult
            out[cell] = {
                name: P.final_metrics(family, row.make({}), keys, horizon).test_loss.tolist()
                for name, row in wider_rows(horizon).items()
            }
            print(f"  {cell}: " + ", ".join(f"{k} {np.mean(v):.4g}" for k, v in out[cell].items()))
            _save(args, out, partial=True)
    return out


# Rows added to the stored unseen cells after a decision elsewhere: table -> (row label, the
# schedule at (horizon, scale x the row's default rate)). "shipped default" is v4 at the default
# rate the fourth suite adopted (0.707x of 0.016); "v5" the schedule the fifth suite shipped.
EXTRA_TABLES = {
    "shipped_default": ("shipped default", v4_default_at),
    "v5": ("v5", v5_at),
    "v6": ("v6", v6_at),
}


def extra_rows(label):
    """{row name: (horizon given, scale of its default rate)} of an `EXTRA_TABLES` label."""
    return {
        f"{label} (horizon given)": (True, 1.0),
        f"{label} (horizon=None)": (False, 1.0),
        f"{label} at 0.3x (horizon given)": (True, 0.3),
        f"{label} at 3x (horizon given)": (True, 3.0),
    }


def check_v4_reproduces(family, horizon, keys, stored, what):
    """Recomputes v4 at 0.016 (`pretrained`) on `keys` and exits unless it matches its `stored`
    per-task losses on most tasks: the median relative difference under 1e-3 (the same tasks; a
    chaotic task may drift on another day's CPU). Returns the largest relative difference."""
    new = np.asarray(P.final_metrics(family, pretrained(horizon), keys, horizon).test_loss)
    drift = np.abs(new - np.asarray(stored)) / np.abs(np.asarray(stored))
    if np.median(drift) > 1e-3:
        raise SystemExit(f"{what}: v4 at 0.016 does not reproduce its stored losses")
    return float(drift.max())


def run_extra_rows(args):
    """The rows of `EXTRA_TABLES[args.table]` on the stored unseen cells' held-out tasks,
    per-task test losses, after `check_v4_reproduces` in each cell."""
    label, schedule_at = EXTRA_TABLES[args.table]
    out = _load(args) or {}
    keys = meta.task_keys(PT.HELDOUT_ROOT, args.heldout)
    cells = {}
    for tag in ("_1x", "_long"):
        cells |= json.load(open(os.path.join(RESULTS, f"unseen{tag}.json")))["result"]
    for cell, stored in cells.items():
        if cell in out:
            continue
        fam_name, m = cell.split(" @ ")
        family, horizon = PT.FAMILIES[fam_name](), H * int(m[:-1])
        want = stored["per_task_test_loss"]["pretrained (horizon given)"]
        drift = check_v4_reproduces(family, horizon, keys, want, cell)
        out[cell] = {"v4 at 0.016, largest relative drift": drift}
        for name, (given, scale) in extra_rows(label).items():
            schedule, params = schedule_at(horizon if given else None, scale)
            tx = lj.learned_schedule(INNER, schedule, params)
            out[cell][name] = P.final_metrics(family, tx, keys, horizon).test_loss.tolist()
        print(f"  {cell}: " + ", ".join(f"{k} {np.mean(v):.4g}" for k, v in out[cell].items()))
        _save(args, out, partial=True)
    return out


TARGET_ROW = "warmup+cosine (target-tuned)"
# The rows the steps-to-target tables score beside the shipped schedule.
STEPS_BASELINES = (
    "adam 1e-3",
    "schedule_free_adamw (defaults)",
    "warmup+cosine (tuned on the wider mixture)",
    TARGET_ROW,
)


def steps_rows(horizon, shipped, best):
    """{name: transformation} for the steps-to-target tables: the shipped schedule (named
    `shipped`, first), then `STEPS_BASELINES`, the target-tuned one at its stored `best`."""
    rows = {shipped: pretrained(horizon)}
    baselines = fixed_rows(horizon) | wider_rows(horizon)
    rows |= {k: v.make({}) for k, v in baselines.items() if k in STEPS_BASELINES}
    rows[TARGET_ROW] = P.schedule_baseline(INNER, horizon, "cosine", [best["peak"]]).make(best)
    return rows


def steps_to_target_cell(family, horizon, heldout, rows, stored, what, strict=True):
    """Per-task steps to 1.1x the target-tuned warmup+cosine's final test loss, for each row.

    `rows` maps a name to a transformation or `P.Method` (`TARGET_ROW` among them); `stored`
    maps the same names to their stored per-task final test losses. Each row's held-out curve is
    scored every horizon / 20 steps. `strict`: every row's last point must reproduce its stored
    losses, and the targets are the stored ones. Otherwise only the first row must (the same
    tasks): rows stored on another day can drift (XLA:CPU rounding moves a chaotic run), so the
    targets come from the target-tuned curve as recomputed, and each row's largest relative
    drift from its stored losses is recorded. `what` names the cell in an error.
    """
    every = horizon // 20
    out = {"every": every, "drift": {}}
    curves = {}
    for i, (name, method) in enumerate(rows.items()):
        curves[name] = P.heldout_loss_curves(family, method, heldout, horizon, every)
        last, want = curves[name][:, -1], stored[name]
        if strict or i == 0:
            require_same_tasks(last, want, f"{what}: {name} does not reproduce its stored losses")
        out["drift"][name] = relative_drift(last, want)
    targets = 1.1 * (np.asarray(stored[TARGET_ROW]) if strict else curves[TARGET_ROW][:, -1])
    for name, c in curves.items():
        out[name] = [float(x) for x in P.steps_to_target(c, every, targets)]
    return out


def print_steps_table(result, rows):
    """Per cell and row: the share of tasks that reach the target, and their median steps."""
    print("Steps to 1.1x the target-tuned warmup+cosine's final test loss, per task: the share")
    print("of the tasks that reach it, and the median steps (never: fewer than half reach it)\n")
    print("| cell | " + " | ".join(rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for cell, r in result.items():
        txt = []
        for row in rows:
            steps = np.asarray(r[row])
            median = np.median(steps)
            share = f"{100 * np.isfinite(steps).mean():.0f} %, "
            txt.append(share + ("never" if not np.isfinite(median) else f"{median:.0f}"))
        print(f"| {cell} | " + " | ".join(txt) + " |")


def run_steps_to_target(args):
    """`steps_to_target_cell` on the stored unseen cells, for the shipped schedule and four rows."""
    out = _load(args) or {}
    keys = meta.task_keys(PT.HELDOUT_ROOT, args.heldout)
    wider = json.load(open(os.path.join(RESULTS, "wider_rows.json")))["result"]
    cells = {}
    for tag in ("_1x", "_long"):
        cells |= json.load(open(os.path.join(RESULTS, f"unseen{tag}.json")))["result"]
    shipped = "pretrained (horizon given)"  # first: it must reproduce its stored losses
    for cell, stored in cells.items():
        if cell in out:
            continue
        fam_name, m = cell.split(" @ ")
        family, horizon = PT.FAMILIES[fam_name](), H * int(m[:-1])
        rows = steps_rows(horizon, shipped, stored["tuning"][TARGET_ROW]["best"])
        losses = stored["per_task_test_loss"] | wider[cell]
        out[cell] = steps_to_target_cell(family, horizon, keys, rows, losses, cell, strict=False)
        print(f"  {cell}: done", flush=True)
        _save(args, out, partial=True)
    print_steps_table(out, [shipped, *STEPS_BASELINES])
    return out


def run_unseen(args):
    seed_params, shipped = seeds()
    out = _load(args) or {}
    for mult in (int(m) for m in args.horizons.split(",")):
        horizon = H * mult
        for fam_name in args.families.split(","):
            if mult > 1 and fam_name not in SMALL:
                continue
            cell = f"{fam_name} @ {mult}x"
            if cell in out:
                continue
            family = PT.FAMILIES[fam_name]()
            candidates = {
                "pretrained (horizon given)": pretrained(horizon),
                "pretrained (horizon=None)": pretrained(None),
            }
            for s, params in seed_params:
                candidates[f"seed {s} (horizon given)"] = pretrained(horizon, params)
            warm = (0.0, 0.1, 0.3)
            baselines = {
                f"warmup+{d} (target-tuned)": P.schedule_baseline(
                    INNER, horizon, d, PEAKS, warm, (0.0, 0.1)
                )
                for d in ("cosine", "linear")
            } | fixed_rows(horizon)
            t0 = time.perf_counter()
            res = P.run(
                family,
                candidates,
                baselines,
                tune_keys=meta.task_keys(PT.TUNE_ROOT, args.tune_tasks),
                heldout_keys=meta.task_keys(PT.HELDOUT_ROOT, args.heldout),
                horizon=horizon,
                max_extensions=MAX_EXTENSIONS,
            )
            summary = experiment.summarise(res)
            summary["per_task_test_loss"] = {
                k: np.asarray(m.test_loss).tolist() for k, m in res.metrics.items()
            }
            summary["initial_loss"] = np.asarray(
                next(iter(res.metrics.values())).initial_loss
            ).tolist()
            summary["wall_s"] = time.perf_counter() - t0
            summary["shipped_seed"] = shipped
            print(f"\n=== {cell} ({summary['wall_s']:.0f} s)", flush=True)
            print(experiment.format_summary(summary), flush=True)
            out[cell] = summary
            _save(args, out, partial=True)
    return out


def relative_drift(new, stored):
    """The largest relative difference between per-task losses recomputed now and stored."""
    stored = np.asarray(stored)
    return float(np.max(np.abs(np.asarray(new) - stored) / np.abs(stored)))


def require_same_tasks(new, stored, what):
    """Exits unless per-task losses recomputed now match the stored ones to 1e-3 (relative):
    the same tasks, the rounding aside; `what` names the row and the cell in the message."""
    drift = relative_drift(new, stored)
    if drift > 1e-3:
        raise SystemExit(f"{what} ({drift:.2g})")


def _versioned(name):
    """A row of an earlier shipped version ("v1 pretrained (horizon given)", ...)."""
    return re.match(r"v\d+ ", name) is not None


def refresh_unseen(args):
    """After shipping new params: the stored cells' pretrained rows computed anew, the rest kept.

    The baselines keep their stored per-task losses (re-running them on another CPU moves single
    chaotic tasks by up to ~20 %, the rounding, not the tasks); the seed rows of the shipped
    protocol are its pilot's rows on the same tasks (`schedule_pilot.py`), checked against the
    shipped seed recomputed here; the previous shipped rows stay, prefixed with its version
    (`T.PREVIOUS_VERSION`), and older prefixed rows as they are.
    """
    out = _load(args)
    if out is None:
        raise SystemExit(f"nothing stored for --table {args.table} --tag {args.tag!r}")
    pilot = json.load(open(os.path.join(T.SHIPPED_SEEDS, "pilot_all.json")))["cells"]
    prev = lambda k: f"{T.PREVIOUS_VERSION} {k}"
    shipped = lj.pretrained_info()["seed"]
    keys = meta.task_keys(PT.HELDOUT_ROOT, args.heldout)
    eps = np.finfo(np.float32).eps
    for cell, stored in out.items():
        losses = stored["per_task_test_loss"]
        seeds_here = pilot[cell]["per_task_test_loss"]
        seed_rows = {
            f"seed {k.split()[-1]} (horizon given)": v
            for k, v in seeds_here.items()
            if k.startswith("candidate seed ")
        }
        if any(k.startswith(prev("")) for k in losses):
            losses |= seed_rows  # refreshed before: only seeds the pilot has added since
            continue
        fam_name, mult = cell.split(" @ ")
        horizon = H * int(mult[:-1])
        family = PT.FAMILIES[fam_name]()
        metrics, seconds = {}, {}
        for name, h in (
            ("pretrained (horizon given)", horizon),
            ("pretrained (horizon=None)", None),
        ):
            t0 = time.perf_counter()
            metrics[name] = P.final_metrics(family, pretrained(h), keys, horizon)
            seconds[name] = time.perf_counter() - t0
        given = metrics["pretrained (horizon given)"].test_loss
        ref = seeds_here[f"candidate seed {shipped}"]
        require_same_tasks(given, ref, f"{cell}: the pilot's seed {shipped} is not the shipped")
        baselines = list(stored["tuning"])
        floor = eps * np.asarray(stored["initial_loss"])
        comparisons = {
            (c, b): P.paired_log_ratios(m.test_loss, np.asarray(losses[b]), floor=floor)
            for c, m in metrics.items()
            for b in baselines
        }
        fresh = experiment.summarise(
            P.ProtocolResult(metrics, {}, comparisons, None, horizon, seconds)
        )
        old = [k for k in losses if k not in baselines and not _versioned(k)]
        stored["per_task_test_loss"] = (
            {b: losses[b] for b in baselines}
            | {k: v for k, v in losses.items() if _versioned(k)}
            | {prev(k): losses[k] for k in old}
            | {k: m.test_loss.tolist() for k, m in metrics.items()}
            | seed_rows
        )
        stored["methods"] = {
            (prev(k) if k in old else k): v for k, v in stored["methods"].items()
        } | fresh["methods"]
        stored["comparisons"] = {
            (prev(k) if k.split(" vs ")[0] in old else k): v
            for k, v in stored["comparisons"].items()
        } | fresh["comparisons"]
        stored["shipped_seed"] = shipped
        stored["refreshed"] = {
            "seconds": sum(seconds.values()),
            "seed_rows_from": f"{os.path.basename(T.SHIPPED_SEEDS)}/pilot_all.json",
        }
        print(f"{cell}: refreshed ({sum(seconds.values()):.0f} s)", flush=True)
        _save(args, out, partial=True)
    return out


def run_sensitivity(args):
    rows = {}
    makers = {"pretrained (horizon given)": (lambda s: pretrained(H, scale=s), 1.0)}
    makers["pretrained (horizon=None)"] = (lambda s: pretrained(None, scale=s), 1.0)
    for name, (make, default) in PT.TUNING_FREE.items():
        makers[name] = (lambda s, make=make, default=default: make(default * s), default)
    makers["adam (constant, default 1e-3)"] = (lambda s: optax.adam(1e-3 * s), 1e-3)
    heldout = meta.task_keys(PT.HELDOUT_ROOT, args.heldout)
    stored = (_load(args) or {}) if args.refresh else {}
    for fam_name in args.families.split(","):
        family = PT.FAMILIES[fam_name]()
        rows[fam_name] = {}
        if any(k.startswith(f"{T.PREVIOUS_VERSION} ") for k in stored.get(fam_name, {})):
            raise SystemExit(f"sensitivity: {fam_name} was refreshed before; refresh it once")
        for name, row in stored.get(fam_name, {}).items():  # --refresh: keep the old rows
            if name.startswith("pretrained"):
                rows[fam_name][f"{T.PREVIOUS_VERSION} {name}"] = row
            elif _versioned(name):
                rows[fam_name][name] = row
        for name, (make, _) in makers.items():
            if name in stored.get(fam_name, {}) and not name.startswith("pretrained"):
                rows[fam_name][name] = stored[fam_name][name]  # --refresh: kept as measured
                continue
            r = {}
            for s in (0.3, 1.0, 3.0):
                m = P.final_metrics(family, make(s), heldout, H)
                r[f"{s}x"] = PT.finite_mean(m.test_loss)
            r["max_change"] = max(abs(r["0.3x"] / r["1.0x"] - 1), abs(r["3.0x"] / r["1.0x"] - 1))
            rows[fam_name][name] = r
            print(
                f"  {fam_name:26s} {name:34s} " + "  ".join(f"{k} {v:.4g}" for k, v in r.items()),
                flush=True,
            )
    return rows


def run_ablations(args):
    """The shipped schedule against itself with a feature group zeroed, and its own base rate."""
    schedule, params = v4_schedule(H)
    heldout = meta.task_keys(PT.HELDOUT_ROOT, args.heldout)
    variants = {"constant at its base rate": optax.adam(schedule.base_lr)}
    for group in ("loss", "grad_norm", "time", "progress"):
        s = LSTMSchedule(
            base_lr=schedule.base_lr,
            hidden_size=schedule.hidden_size,
            progress_features=True,
            horizon=H,
            drop_features=(group,),
        )
        variants[f"without {group}"] = lj.learned_schedule(INNER, s, params)
    out = {}
    for fam_name in args.families.split(","):
        family = PT.FAMILIES[fam_name]()
        ref = P.final_metrics(family, pretrained(H), heldout, H)
        floor = np.finfo(np.float32).eps * ref.initial_loss
        out[fam_name] = {}
        for name, tx in variants.items():
            m = P.final_metrics(family, tx, heldout, H)
            c = P.paired_log_ratios(m.test_loss, ref.test_loss, floor=floor)
            out[fam_name][name] = {"geomean_ratio": c.geomean_ratio, "geomean_ci": c.geomean_ci}
            lo, hi = c.geomean_ci
            print(f"  {fam_name:26s} {name:28s} {c.geomean_ratio:.3f} [{lo:.3f}, {hi:.3f}]")
    return out


def run_rates(args):
    """The shipped schedule's mean rate (16 held-out tasks) at a few steps, on each family at H."""
    keys = meta.task_keys(PT.HELDOUT_ROOT, 16)
    steps = (0, 5, 10, 25, 50, 100, 150, H - 1)
    out = {}
    for fam_name in args.families.split(","):
        lrs = meta.evaluate(PT.FAMILIES[fam_name](), pretrained(H), keys, H).lrs
        out[fam_name] = {str(t): float(np.mean(lrs[:, t])) for t in steps}
        print(f"  {fam_name:26s} " + "  ".join(f"{t}: {v:.3g}" for t, v in out[fam_name].items()))
    return out


def pooled(out, cand, base, num_bootstrap=2000, seed=0):
    """Geomean over all cells of per-task ratios cand/base, bootstrap CI within cells."""
    eps = float(np.finfo(np.float32).eps)
    rs = []
    for cell in out.values():
        c = np.asarray(cell["per_task_test_loss"][cand], np.float64)
        b = np.asarray(cell["per_task_test_loss"][base], np.float64)
        fl = eps * np.asarray(cell["initial_loss"], np.float64)
        c = np.where(np.isfinite(c), c, P.DIVERGED_LOSS)
        b = np.where(np.isfinite(b), b, P.DIVERGED_LOSS)
        rs.append(np.log(np.maximum(c, fl)) - np.log(np.maximum(b, fl)))
    rng = np.random.default_rng(seed)
    boot = np.zeros(num_bootstrap)
    for r in rs:
        boot += r[rng.integers(0, len(r), size=(num_bootstrap, len(r)))].sum(axis=1)
    n = sum(len(r) for r in rs)
    mean = np.concatenate(rs).mean()
    lo, hi = np.quantile(boot / n, [0.025, 0.975])
    return float(np.exp(mean)), (float(np.exp(lo)), float(np.exp(hi)))


def report():
    _report_ablations()
    out = {}
    for tag in ("_1x", "_long"):
        path = os.path.join(RESULTS, f"unseen{tag}.json")
        if os.path.exists(path):
            out |= json.load(open(path))["result"]
    wider_path = os.path.join(RESULTS, "wider_rows.json")
    wider = json.load(open(wider_path))["result"] if os.path.exists(wider_path) else {}
    # The same-information rows of v3 and v4 (`--table wider_rows`).
    for cell, rows in wider.items():
        if cell in out:
            out[cell]["per_task_test_loss"] |= rows
    labels = []  # `--table shipped_default`, `--table v5`, `--table v6`
    for table, (label, _) in EXTRA_TABLES.items():
        path = os.path.join(RESULTS, f"{table}.json")
        if os.path.exists(path):
            labels.append(label)
            for cell, rows in json.load(open(path))["result"].items():
                if cell in out:
                    out[cell]["per_task_test_loss"] |= {k: rows[k] for k in extra_rows(label)}
    if out:
        cells = list(out)
        first = out[cells[0]]
        baselines = list(first["tuning"]) + list(wider.get(cells[0], {}))
        cands = [c for c in first["per_task_test_loss"] if c not in baselines]
        print(
            f"All {len(cells)} unseen cells pooled: geometric mean of per-task test-loss ratios "
            "candidate / baseline [bootstrap 95 % CI] (< 1: the candidate is better)\n"
        )
        show = ["pretrained (horizon given)", "pretrained (horizon=None)"]
        for label in labels:
            show += [f"{label} (horizon given)", f"{label} (horizon=None)"]
        print("| baseline | " + " | ".join(show) + " | seeds, horizon given (range) |")
        print("| --- |" + " --- |" * (len(show) + 1))
        for b in baselines:
            row = []
            for c in show:
                g, (lo, hi) = pooled(out, c, b)
                row.append(f"{g:.3f} [{lo:.3f}, {hi:.3f}]")
            g_seeds = [pooled(out, c, b)[0] for c in cands if c.startswith("seed ")]
            row.append(f"{min(g_seeds):.3f}-{max(g_seeds):.3f}")
            print(f"| {b} | " + " | ".join(row) + " |")
        print(
            "\nPer cell: geometric-mean ratio of the pretrained schedule (horizon given) / "
            "baseline [95 % CI]; **bold** where the baseline wins (interval above 1)\n"
        )
        short = [b for b in baselines]
        print("| cell | " + " | ".join(short) + " |")
        print("| --- |" + " --- |" * len(short))
        wins = {}
        for cell in cells:
            row = []
            for b in short:
                c = out[cell]["comparisons"].get(f"pretrained (horizon given) vs {b}")
                if c is None:  # a wider row: no stored comparison, the pooled ratio of one cell
                    g, (lo, hi) = pooled({cell: out[cell]}, "pretrained (horizon given)", b)
                    c = {"geomean_ratio": g, "geomean_ci": (lo, hi)}
                lo, hi = c["geomean_ci"]
                txt = f"{c['geomean_ratio']:.3f} [{lo:.3f}, {hi:.3f}]"
                if lo > 1.0:
                    txt = f"**{txt}**"
                    wins.setdefault(b, []).append(cell)
                row.append(txt)
            print(f"| {cell} | " + " | ".join(row) + " |")
        for label in labels:
            _report_extra_rows(out, short, label)
        print("\nCells each baseline wins (its interval above 1):\n")
        for b in short:
            print(f"- {b}: {', '.join(wins.get(b, [])) or 'none'}")
        print("\nMean test loss / test accuracy per cell (50 held-out tasks)\n")
        keys = ["pretrained (horizon given)", "pretrained (horizon=None)", *first["tuning"]]
        print("| cell | " + " | ".join(keys) + " |")
        print("| --- |" + " --- |" * len(keys))
        for cell in cells:
            row = []
            for k in keys:
                m = out[cell]["methods"][k]
                acc = m["test_accuracy_mean"]
                row.append(
                    f"{m['test_loss_mean']:.4f}" + ("" if acc is None else f" / {100 * acc:.1f} %")
                )
            print(f"| {cell} | " + " | ".join(row) + " |")
        print("\nTuned settings (target-tuned, per cell; mixture-tuned in mixture_tuning_*.json)\n")
        for cell in cells:
            t = out[cell]["tuning"]
            txt = "; ".join(
                f"{b.split(' ')[0]}: "
                + ", ".join(f"{k} {v:.3g} ({t[b]['where'][k]})" for k, v in t[b]["best"].items())
                for b in t
                if "target" in b
            )
            print(f"- {cell}: {txt}")
    path = os.path.join(RESULTS, "sensitivity.json")
    if os.path.exists(path):
        r = json.load(open(path))["result"]
        print(
            "\nBase-rate sensitivity at H: mean test loss at 0.3x / 1x / 3x the default rate, and "
            "the largest change from 1x\n"
        )
        print("| family | method | 0.3x | 1x | 3x | max change |")
        print("| --- | --- | --- | --- | --- | --- |")
        for fam, rows in r.items():
            for name, row in rows.items():
                print(
                    f"| {fam} | {name} | {row['0.3x']:.4f} | {row['1.0x']:.4f} | "
                    f"{row['3.0x']:.4f} | {100 * row['max_change']:.1f} % |"
                )


def _report_extra_rows(out, baselines, label):
    """An `EXTRA_TABLES` row (horizon given): per cell, its ratio to each baseline and its
    base-rate sensitivity (mean test loss at 0.3x and 3x over that at 1x)."""
    given = f"{label} (horizon given)"
    print(f"\nPer cell: {given} / baseline [95 % CI]; **bold** where the baseline wins\n")
    print("| cell | " + " | ".join(baselines) + " | 0.3x / 1x | 3x / 1x |")
    print("| --- |" + " --- |" * (len(baselines) + 2))
    for cell, v in out.items():
        row = []
        for b in baselines:
            g, (lo, hi) = pooled({cell: v}, given, b)
            txt = f"{g:.3f} [{lo:.3f}, {hi:.3f}]"
            row.append(f"**{txt}**" if lo > 1.0 else txt)
        losses = v["per_task_test_loss"]
        one = np.mean(losses[given])
        for k in ("0.3x", "3x"):
            row.append(f"{np.mean(losses[f'{label} at {k} (horizon given)']) / one:.3f}")
        print(f"| {cell} | " + " | ".join(row) + " |")


def _report_ablations():
    path = os.path.join(RESULTS, "ablations.json")
    if not os.path.exists(path):
        return
    r = json.load(open(path))["result"]
    print(
        "\nAblations at H: geometric-mean test-loss ratio variant / the shipped schedule "
        "[95 % CI] (> 1: the variant is worse, so what it removes helps)\n"
    )
    names = list(next(iter(r.values())))
    print("| family | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for fam, row in r.items():
        cells = [
            f"{row[n]['geomean_ratio']:.3f} [{row[n]['geomean_ci'][0]:.3f}, "
            f"{row[n]['geomean_ci'][1]:.3f}]"
            for n in names
        ]
        print(f"| {fam} | " + " | ".join(cells) + " |")


def _load(args):
    path = os.path.join(RESULTS, f"{args.table}{args.tag}.json")
    return json.load(open(path))["result"] if os.path.exists(path) else None


def _save(args, out, partial=False, wall_s=None):
    return PT._save(args, out, partial=partial, wall_s=wall_s, results=RESULTS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table",
        choices=[
            "unseen",
            "sensitivity",
            "ablations",
            "rates",
            "wider_rows",
            "steps_to_target",
            "shipped_default",
            "v5",
            "v6",
        ],
    )
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--heldout", type=int, default=50)
    parser.add_argument("--tune-tasks", type=int, default=8)
    parser.add_argument("--families", default=",".join(UNSEEN))
    parser.add_argument("--horizons", default="1,5,10")
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="after shipping new params: recompute the pretrained rows of the stored cells "
        "(unseen, sensitivity), keep the baselines' stored rows, and keep the old rows, prefixed "
        "with the previous version",
    )
    args = parser.parse_args()
    if args.report:
        return report()
    if args.table is None:
        parser.error("give --table or --report")
    t0 = time.perf_counter()
    run = {
        "unseen": run_unseen,
        "sensitivity": run_sensitivity,
        "ablations": run_ablations,
        "rates": run_rates,
        "wider_rows": run_wider_rows,
        "steps_to_target": run_steps_to_target,
        "shipped_default": run_extra_rows,
        "v5": run_extra_rows,
        "v6": run_extra_rows,
    }
    if args.refresh and args.table == "unseen":
        run["unseen"] = refresh_unseen
    out = run[args.table](args)
    wall_s = time.perf_counter() - t0
    print(f"\nwrote {_save(args, out, wall_s=wall_s)} ({wall_s:.0f} s)")


if __name__ == "__main__":
    main()
