"""A third suite, untouched by every decision so far: the shipped schedule's clean check (13, 17).

Both earlier suites (the 13 unseen cells of `pretrained_tables.py` and the fresh suite of
`fresh_suite_check.py`) have decided ship rules more than once, so neither is a clean held-out
estimate of the shipped `lj.pretrained_schedule()` (v4) any more. This suite decides nothing: it
is computed once, after v4 was shipped, and reported as it comes out.

Protocol, fixed (and committed) before any number of it was computed:

- Families, none used before in meta-training, validation, selection or any table (scikit-learn
  generators with a fixed `random_state=0`; features and targets standardised with
  `pretrained_train.standardise`; the held-out split of a task is every row it does not train on):
  - "friedman2": `make_friedman2(n_samples=1000, noise=190)` (noise about half the target's
    standard deviation), `meta.data_regression_family`, 64 tanh units, 200 training rows,
    batch 32;
  - "friedman3": `make_friedman3(n_samples=1000, noise=0.17)`, 2x32 relu units, 200 rows,
    batch 32;
  - "circles": `make_circles(n_samples=600, noise=0.15, factor=0.5)`, 2 classes, 2x32 relu
    units, 100 rows, batch 16;
  - "quantiles": `make_gaussian_quantiles(n_samples=900, n_features=4, n_classes=3)`, 64 tanh
    units, 300 rows, batch 32;
  - "noisy 4-class": `make_classification(n_samples=1200, n_features=20, n_informative=6,
    n_redundant=4, n_classes=4, flip_y=0.1, class_sep=0.8)`, 2x64 relu units, 300 rows, batch 64.
- Cells: each family at H = 200 steps; "friedman3" and "circles" also at 5x H. The horizon is
  given to the schedules (and a `horizon=None` row). 50 held-out tasks per cell (PRNG root 11),
  8 tuning tasks (root 12).
- Rows, each scored on the same tasks:
  - v4, the shipped schedule, at its default base rate, horizon given and `horizon=None`, and at
    0.3x and 3x its base rate (horizon given): the sensitivity;
  - v3, v2 and v1 (the seeds their rules picked, each at its own base rate, horizon given);
  - warmup+cosine and warmup+linear on Adam tuned on the cell itself (the oracle reference;
    the grids of `pretrained_tables.py`, extended past any edge optimum);
  - the fixed rows of `pretrained_tables.py` at the cell's horizon: Adam 1e-3; warmup+cosine and
    warmup+linear tuned on v1's three-family mixture; the four tuning-free optimizers at their
    defaults and calibrated on the three families; and the same mixture-tuned and calibrated
    rows tuned on v4's five families (`wider_rows`, the same information v4 had). Their settings
    are the stored ones; nothing is tuned on this suite but the oracle.
- Figures: the geometric mean over the 7 cells of per-task test-loss ratios v4 / each row, with
  a bootstrap 95 % interval (tasks resampled within cells, `pretrained_tables.pooled`); the
  per-cell ratios, naming every cell a row wins (its interval above 1); mean test loss and
  accuracy per cell; v4's sensitivity per cell (mean test loss at 0.3x and 3x over that at 1x).
- The goals read off these figures, as issues 13 and 17 state them: v4 below each tuning-free
  row and Adam 1e-3 (interval below 1); at most the mixture-tuned schedules (interval below 1:
  better; containing 1: level); within 5 % (13) and 2 % (17) of the target-tuned ones (interval
  below 1.05 and 1.02); sensitivity under 10 %.

- Added after the first run had been seen (issue 13 asks for it; fixed before its own run):
  steps to a target loss. Per task, the target is 1.1x the final test loss of the target-tuned
  warmup+cosine on that task (its stored settings and per-task losses). Rows: v4, Adam 1e-3,
  Schedule-Free AdamW at its defaults, warmup+cosine tuned on the five families, and the
  target-tuned warmup+cosine itself (which reaches its target by the end, by construction: its
  row says how early). The held-out loss is scored every horizon / 20 steps
  (`protocol.heldout_loss_curves`, the same runs: each row's last point must reproduce its
  stored losses); per cell, the share of tasks that reach the target and the median steps
  (`protocol.steps_to_target`; "never" where fewer than half reach it).

- Added after the first run had been seen (issue 17 asks for every tuning-free row; fixed
  before its own run): the base-rate sensitivity of Adam 1e-3 and the four tuning-free
  optimizers, each at 0.3x and 3x its default rate, beside v4's; per cell, the largest change
  of the mean test loss over its value at 1x (the stored rows).

- Added after the fifth suite (`fifth_suite.py`) shipped v5: v5 at its default rate, and at
  0.3x and 3x of it, on the same tasks. This suite has decided nothing about v5.
- Added after the sixth and seventh suites (`sixth_suite.py`) shipped v6: v6 at its default
  rate, and at 0.3x and 3x of it, and v5 at v6's default rate (0.0113). This suite has decided
  nothing about v6.
- Added after the fourth suite (`fourth_suite.py`) adopted a new default base rate for v4
  (0.707x its meta-training rate): v4 at that default, and at 0.3x and 3x of it, on the same
  tasks, so the shipped default has rows here too. They decide nothing; the idea of a lower rate
  came in part from this suite's sensitivity rows, so they are not a clean held-out estimate
  (the fourth suite's decision is).

Run:  python benchmarks/untouched_suite.py           (~12 min on 2 cores; cells already in the
                                                      results file are kept, rows added since
                                                      computed into them)
      python benchmarks/untouched_suite.py --report  (the tables from the results file)
      python benchmarks/untouched_suite.py --steps-to-target   (~5 min; into the same file)
      python benchmarks/untouched_suite.py --sensitivity       (~5 min; into the same file)
"""

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(__file__))
import pretrained_tables as PTab
import pretrained_train as T
import protocol_tables as PT

import lookahead_jax as lj
from lookahead_jax import meta
from lookahead_jax.meta import protocol as P

HERE = os.path.dirname(__file__)
NUM_HELDOUT, NUM_TUNE = 50, 8
V4 = "v4 (base 0.016)"  # v4 at its meta-training rate, the default until the fourth suite
# The earlier versions: the folder each was trained into (its pick is `T.rule_pick`'s).
EARLIER = {
    "v3": T.WIDER_SEEDS,
    "v2": os.path.join(HERE, "results", "pretrained_heldout_selection"),
    "v1": T.RESULTS,
}


def regression(x, y, hidden, activation, num_train, batch_size, validation=0.0):
    """A suite's regression family: `meta.data_regression_family` of standardised x and y (a
    `validation` fraction of each task's training rows kept out as its validation split)."""
    return meta.data_regression_family(
        T.standardise(x),
        T.standardise(y),
        hidden=hidden,
        num_train=num_train,
        batch_size=batch_size,
        activation=activation,
        num_validation=T.held_out(validation, num_train),
    )


def classification(x, y, hidden, activation, num_train, batch_size, validation=0.0):
    """A suite's classification family: `meta.classification_family` of standardised x (a
    `validation` fraction of each task's training rows kept out as its validation split)."""
    return meta.classification_family(
        T.standardise(x),
        y.astype(np.int32),
        int(y.max()) + 1,
        hidden=hidden,
        num_train=num_train,
        batch_size=batch_size,
        activation=activation,
        num_validation=T.held_out(validation, num_train),
    )


_regression, _classification = regression, classification  # shadowed inside `families`


def decide(cells, candidate, reference):
    """Prints `candidate` / `reference` (pooled over the cells, and per cell) and whether a ship
    rule's interval lies wholly below 1; returns that record."""
    g, (lo, hi) = PTab.pooled(cells, candidate, reference)
    print(f"\n{candidate} / {reference}: {g:.3f} [{lo:.3f}, {hi:.3f}] over {len(cells)} cells")
    for cell in cells:
        cg, (clo, chi) = PTab.pooled({cell: cells[cell]}, candidate, reference)
        print(f"  {cell}: {cg:.3f} [{clo:.3f}, {chi:.3f}]")
    ship = hi < 1.0
    print(f"ship rule (interval wholly below 1): {'met, ship' if ship else 'not met'}")
    return {"candidate": candidate, "geomean": g, "ci": [lo, hi], "ship": ship}


def families(validation=0.0):
    """{name: family}; with `validation`, that fraction of each task's training rows is kept
    out as its validation split (the test rows stay the same)."""
    from sklearn import datasets

    regression = functools.partial(_regression, validation=validation)
    classification = functools.partial(_classification, validation=validation)
    relu, tanh = jax.nn.relu, jax.numpy.tanh
    x, y = datasets.make_friedman2(n_samples=1000, noise=190.0, random_state=0)
    out = {"friedman2": regression(x, y, (64,), tanh, 200, 32)}
    x, y = datasets.make_friedman3(n_samples=1000, noise=0.17, random_state=0)
    out["friedman3"] = regression(x, y, (32, 32), relu, 200, 32)
    x, y = datasets.make_circles(n_samples=600, noise=0.15, factor=0.5, random_state=0)
    out["circles"] = classification(x, y, (32, 32), relu, 100, 16)
    x, y = datasets.make_gaussian_quantiles(
        n_samples=900, n_features=4, n_classes=3, random_state=0
    )
    out["quantiles"] = classification(x, y, (64,), tanh, 300, 32)
    x, y = datasets.make_classification(
        n_samples=1200,
        n_features=20,
        n_informative=6,
        n_redundant=4,
        n_classes=4,
        flip_y=0.1,
        class_sep=0.8,
        random_state=0,
    )
    out["noisy 4-class"] = classification(x, y, (64, 64), relu, 300, 64)
    return out


class Suite(NamedTuple):
    """A suite of cells this script's protocol runs on (the third suite here; the fourth in
    `fourth_suite.py`)."""

    families: Callable[[], dict]  # () -> {family name: TaskFamily}
    cells: list[tuple[str, int]]  # (family name, horizon multiple of H), in table order
    heldout_root: int
    tune_root: int
    out: str  # the results file
    # horizon -> {name: transformation}: learned rows beyond v4's and the earlier versions'.
    extra_rows: Callable[[int], dict] = lambda horizon: {}


def learned_rows(horizon):
    """{name: transformation} of v4 (its sensitivity too) and the earlier versions' picks."""
    rows = {
        V4: PTab.pretrained(horizon),
        f"{V4}, horizon=None": PTab.pretrained(None),
        f"{V4} at 0.3x its base rate": PTab.pretrained(horizon, scale=0.3),
        f"{V4} at 3x its base rate": PTab.pretrained(horizon, scale=3.0),
    }
    for version, folder in EARLIER.items():
        schedule, params = T.load_seeds(folder)
        seed = T.rule_pick(folder)["seed"]
        sched = schedule.clone(horizon=horizon)
        rows[f"{version} (seed {seed})"] = lj.learned_schedule(T.INNER, sched, params[seed])
    return rows


CELLS = [(f, 1) for f in ("friedman2", "friedman3", "circles", "quantiles", "noisy 4-class")] + [
    ("friedman3", 5),
    ("circles", 5),
]
SHIPPED_DEFAULT = "v4 at its shipped default rate (0.707x, since the fourth suite)"


SENSITIVITY = (" at 0.3x its base rate", " at 3x its base rate")


def at_rate_rows(name, schedule_at):
    """{name: the learned schedule at 1x, and at 0.3x and 3x (its sensitivity)};
    `schedule_at(scale)` gives (schedule, params) at `scale` x the row's base rate."""
    rows = {}
    for scale, suffix in zip((1.0, 0.3, 3.0), ("", *SENSITIVITY), strict=True):
        rows[name + suffix] = lj.learned_schedule(T.INNER, *schedule_at(scale))
    return rows


V5 = "v5 (shipped)"


def v5_rows(horizon):
    """The shipped v5 at its default rate, and at 0.3x and 3x of it."""
    return at_rate_rows(V5, lambda s: PTab.v5_at(horizon, s))


V6 = "v6 (shipped)"


def v6_rows(horizon):
    """The shipped v6 at its default rate, and at 0.3x and 3x of it."""
    return at_rate_rows(V6, lambda s: PTab.v6_at(horizon, s))


# A diagnostic added after v6 shipped: v5's params at v6's default rate, so a difference between
# the two splits into their params' share and their default rates'.
V5_AT_V6_RATE = "v5 at v6's default rate (0.0113)"


def v5_at_v6_rate(horizon, scale=1.0):
    """(schedule, params) of v5 at `scale` x v6's default rate."""
    ratio = lj.pretrained_info()["base_lr"] / PTab.v5_at(horizon)[0].base_lr
    return PTab.v5_at(horizon, ratio * scale)


def v6_and_matched_rows(horizon):
    """v6's rows, and v5 at v6's default rate."""
    tx = lj.learned_schedule(T.INNER, *v5_at_v6_rate(horizon))
    return v6_rows(horizon) | {V5_AT_V6_RATE: tx}


def shipped_default_row(horizon):
    """v4 at the default base rate the fourth suite's ship rule adopted, and at 0.3x and 3x of
    it (added after that decision, to the third suite's cells already computed); then v5 (added
    after the fifth suite shipped it)."""
    rows = at_rate_rows(SHIPPED_DEFAULT, lambda s: PTab.v4_default_at(horizon, s))
    return rows | v5_rows(horizon)


THIRD = Suite(
    families,
    CELLS,
    11,
    12,
    os.path.join(HERE, "results", "untouched_suite.json"),
    # v6 (and v5 at its rate) after the sixth and seventh suites
    lambda horizon: shipped_default_row(horizon) | v6_and_matched_rows(horizon),
)


def add_rows(family, horizon, heldout, cell, rows, name):
    """Adds the `rows` a stored `cell` lacks ({name: transformation}), after
    `PTab.check_v4_reproduces` (the same tasks)."""
    losses = cell["per_task_test_loss"]
    missing = {k: v for k, v in rows.items() if k not in losses}
    if not missing:
        return False
    PTab.check_v4_reproduces(family, horizon, heldout, losses[V4], name)
    for k, tx in missing.items():
        m = P.final_metrics(family, tx, heldout, horizon)
        losses[k] = m.test_loss.tolist()
        cell["per_task_test_accuracy"][k] = m.test_accuracy.tolist()
    print(f"{name}: added {', '.join(missing)}", flush=True)
    return True


def run(suite):
    fams = suite.families()
    out = json.load(open(suite.out)) if os.path.exists(suite.out) else {"cells": {}}
    heldout = meta.task_keys(suite.heldout_root, NUM_HELDOUT)
    for fam, mult in suite.cells:
        name, horizon = f"{fam} @ {mult}x", T.H * mult
        learned = learned_rows(horizon) | suite.extra_rows(horizon)
        if name in out["cells"]:  # kept; only rows added since are computed
            if add_rows(fams[fam], horizon, heldout, out["cells"][name], learned, name):
                json.dump(out, open(suite.out, "w"), indent=1)
            continue
        rows = {k: P.fixed(v) for k, v in learned.items()}
        rows |= PTab.fixed_rows(horizon) | PTab.wider_rows(horizon)
        tuning = {}
        for decay in ("cosine", "linear"):
            tunable = P.schedule_baseline(
                T.INNER, horizon, decay, PTab.PEAKS, (0.0, 0.1, 0.3), (0.0, 0.1)
            )
            tuned = P.tune(
                fams[fam],
                tunable,
                meta.task_keys(suite.tune_root, NUM_TUNE),
                horizon,
                max_extensions=PTab.MAX_EXTENSIONS,
            )
            tuning[f"warmup+{decay} (target-tuned)"] = {"best": tuned.best, "where": tuned.where}
            rows[f"warmup+{decay} (target-tuned)"] = P.fixed(tunable.make(tuned.best))
        metrics = {
            k: P.final_metrics(fams[fam], r.make({}), heldout, horizon) for k, r in rows.items()
        }
        out["cells"][name] = {
            "per_task_test_loss": {k: m.test_loss.tolist() for k, m in metrics.items()},
            "per_task_test_accuracy": {k: m.test_accuracy.tolist() for k, m in metrics.items()},
            "initial_loss": metrics[V4].initial_loss.tolist(),
            "tuning": tuning,
        }
        print(
            f"{name}: tuned "
            + "; ".join(f"{k} {v['best']} ({v['where']})" for k, v in tuning.items()),
            flush=True,
        )
        json.dump(out, open(suite.out, "w"), indent=1)
    return out


def ratio_table(cells, subject, keep=lambda row: True):
    """Prints `subject` / each other row that `keep` keeps (pooled over the cells, and the cells
    each row wins) and returns {row: {"geomean", "ci", "wins"}}."""
    rows = [r for r in next(iter(cells.values()))["per_task_test_loss"] if r != subject and keep(r)]
    print(
        f"{subject} / each row: geometric mean over the {len(cells)} cells of per-task "
        "test-loss ratios [bootstrap 95 %] (< 1: it is better)\n"
    )
    print("| row | ratio | cells the row wins (its interval above 1) |")
    print("| --- | --- | --- |")
    summary = {}
    for r in rows:
        g, (lo, hi) = PTab.pooled(cells, subject, r)
        wins = []
        for cell in cells:
            _, (clo, _) = PTab.pooled({cell: cells[cell]}, subject, r)
            if clo > 1.0:
                wins.append(cell)
        summary[r] = {"geomean": g, "ci": [lo, hi], "wins": wins}
        print(f"| {r} | {g:.3f} [{lo:.3f}, {hi:.3f}] | {', '.join(wins) or 'none'} |")
    return summary


def report(suite, out):
    """Prints the suite's tables; returns v4's ratio table (and stores those of the suite's extra
    learned rows, e.g. v4's shipped default rate and v5, in `out["summary_extra"]`)."""
    cells = out["cells"]
    if [f"{f} @ {m}x" for f, m in suite.cells] != list(cells):
        raise SystemExit(
            f"{suite.out}: cells {list(cells)}, expected all of {suite.cells} in order"
        )
    summary = ratio_table(cells, V4)
    extra = [k for k in suite.extra_rows(T.H) if not k.endswith(SENSITIVITY) and k in summary]
    out.pop("summary_shipped_default", None)  # the name before v5 had a table too
    out["summary_extra"] = {}
    for subject in extra:
        print()
        out["summary_extra"][subject] = ratio_table(cells, subject)
    show = [V4, "warmup+cosine (target-tuned)", "warmup+linear (target-tuned)", "adam 1e-3"]
    print("\nMean test loss / test accuracy per cell (50 held-out tasks)\n")
    print("| cell | " + " | ".join(show) + " | target-tuned settings |")
    print("| --- |" + " --- |" * (len(show) + 1))
    for cell, v in cells.items():
        txt = []
        for k in show:
            loss = np.mean(v["per_task_test_loss"][k])
            acc = np.asarray(v["per_task_test_accuracy"][k], np.float64)
            acc_txt = "" if np.isnan(acc).all() else f" / {100 * acc.mean():.1f} %"
            txt.append(f"{loss:.4f}{acc_txt}")
        settings = "; ".join(f"{k.split()[0]} {t['best']}" for k, t in v["tuning"].items())
        print(f"| {cell} | " + " | ".join(txt) + f" | {settings} |")
    for subject in (V4, *extra):
        if subject + SENSITIVITY[1] in cells[next(iter(cells))]["per_task_test_loss"]:
            sensitivity_table(cells, subject)
    return summary


def sensitivity_table(cells, subject):
    """Prints `subject`'s mean test loss at 0.3x and 3x its base rate over that at 1x, per cell."""
    print(f"\n{subject}: base-rate sensitivity, mean test loss at 0.3x and 3x over that at 1x\n")
    print("| cell | 0.3x | 3x | largest change |")
    print("| --- | --- | --- | --- |")
    for cell, v in cells.items():
        one = np.mean(v["per_task_test_loss"][subject])
        lo, hi = (
            np.mean(v["per_task_test_loss"][f"{subject} at {s} its base rate"]) / one
            for s in ("0.3x", "3x")
        )
        print(f"| {cell} | {lo:.3f} | {hi:.3f} | {100 * max(abs(lo - 1), abs(hi - 1)):.0f} % |")


STEPS_ROWS = (V4, *PTab.STEPS_BASELINES)


def steps_to_target(suite, out):
    """Per cell and row: each task's steps to 1.1x the target-tuned final loss (into
    `out["steps_to_target"]`), every row reproducing its stored losses."""
    fams = suite.families()
    heldout = meta.task_keys(suite.heldout_root, NUM_HELDOUT)
    result = out.setdefault("steps_to_target", {})
    for fam, mult in suite.cells:
        name, horizon = f"{fam} @ {mult}x", T.H * mult
        if name in result:
            continue
        cell = out["cells"][name]
        rows = PTab.steps_rows(horizon, V4, cell["tuning"][PTab.TARGET_ROW]["best"])
        result[name] = PTab.steps_to_target_cell(
            fams[fam], horizon, heldout, rows, cell["per_task_test_loss"], name
        )
        print(f"{name}: done", flush=True)
        json.dump(out, open(suite.out, "w"), indent=1)
    PTab.print_steps_table(result, STEPS_ROWS)
    return out


def sensitivity(suite, out):
    """Per cell: each default-rate row's per-task test losses at 0.3x and 3x its default rate
    (into `out["sensitivity"]`), and the table of largest changes, v4's included."""
    fams = suite.families()
    heldout = meta.task_keys(suite.heldout_root, NUM_HELDOUT)
    makers = {"adam 1e-3": (lambda lr: optax.adam(lr), 1e-3)}
    makers |= {f"{k} (defaults)": v for k, v in PT.TUNING_FREE.items()}
    result = out.setdefault("sensitivity", {})
    for fam, mult in suite.cells:
        name, horizon = f"{fam} @ {mult}x", T.H * mult
        if name in result:
            continue
        result[name] = {
            f"{row} at {s}x": P.final_metrics(
                fams[fam], make(default * s), heldout, horizon
            ).test_loss.tolist()
            for row, (make, default) in makers.items()
            for s in (0.3, 3)
        }
        print(f"{name}: done", flush=True)
        json.dump(out, open(suite.out, "w"), indent=1)
    rows = [V4, *makers]
    print("\nLargest change of the mean test loss over 0.3x-3x of the default rate (vs 1x)\n")
    print("| cell | " + " | ".join(rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for name, cell in out["cells"].items():
        losses = cell["per_task_test_loss"] | {
            f"{V4} at {k}": cell["per_task_test_loss"][f"{V4} at {k} its base rate"]
            for k in ("0.3x", "3x")
        }
        losses |= result[name]
        txt = []
        for row in rows:
            one = PT.finite_mean(losses[row])
            change = max(
                abs(PT.finite_mean(losses[f"{row} at {k}"]) / one - 1) for k in ("0.3x", "3x")
            )
            txt.append(f"{100 * change:.0f} %")
        print(f"| {name} | " + " | ".join(txt) + " |")
    return out


def main(suite=THIRD, description=__doc__, extra_flags=()):
    """The command line; `extra_flags`: (flag, help, function) of a suite's own steps."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only the tables, from the file")
    for flag, text, _ in extra_flags:
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument(
        "--steps-to-target", action="store_true", help="steps to a target loss (after the run)"
    )
    parser.add_argument(
        "--sensitivity", action="store_true", help="the default-rate rows at 0.3x and 3x"
    )
    args = parser.parse_args()
    for flag, _, function in extra_flags:
        if getattr(args, flag.lstrip("-").replace("-", "_")):
            return function()
    if args.steps_to_target:
        return steps_to_target(suite, json.load(open(suite.out)))
    if args.sensitivity:
        return sensitivity(suite, json.load(open(suite.out)))
    out = json.load(open(suite.out)) if args.report else run(suite)
    out["summary"] = report(suite, out)
    if not args.report:
        json.dump(out, open(suite.out, "w"), indent=1)


if __name__ == "__main__":
    main()
