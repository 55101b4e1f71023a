"""A ninth suite, untouched: the shipped two-run candidate's ship rule, and v6 again (13, 17).

The validation-feature pick's replay (`validation_feature.py`'s seed 2: a schedule that reads a
validation loss picks the rates on 80 % of the training rows, then Adam replays those rates over
all the rows from the same initial weights) was better than v6 on five of the six suites it was
scored on, and on the eighth, which nothing had touched, 0.913 [0.904, 0.922] of v6 and below
every row a user picks without tuning. Its params now ship in the package as a candidate
(`lj.pretrained_schedule(validation=True)`), with the two runs as library code
(`meta.protocol.final_metrics` on a `meta.ReplayedFamily`; `lj.replay_schedule` for a user's own
loop). This suite decides whether that candidate becomes the recipe the README recommends to a
user who can afford a second run.

Protocol, fixed (and committed) before any number of this suite was computed:

- Families, none used before in meta-training, validation, selection or any table (features and
  targets standardised with `pretrained_train.standardise`; a task's held-out split is every row
  it does not train on):
  - "Poisson counts": y ~ Poisson(exp(0.7 x . w + 0.5)), x in 6-D standard normal, w standard
    normal / sqrt(6) (NumPy seed 91, 900 rows), 32 tanh units, 200 training rows, batch 32;
  - "cosine product": y = cos(2 x_1) cos(2 x_2) + noise 0.1, x uniform in [-2, 2]^3 (the third
    feature irrelevant) (seed 92, 900 rows), 2x32 relu units, 250 rows, batch 32;
  - "majority of 7": bits b uniform in {-1, 1}^11, x = b + 0.6 e (e standard normal), class =
    [sum of the first 7 bits > 0] (seed 93, 1000 rows), 64 relu units, 200 rows, batch 16;
  - "anisotropic 4-class": four Gaussians in 8-D, means standard normal, each with covariance
    A A^T / 8 for its own standard normal 8x8 A, 300 points each (seed 94), 32 tanh units, 300
    rows, batch 32;
  - "sparse logistic": x in 40-D standard normal, w with 3 non-zero standard normal entries,
    class ~ Bernoulli(sigmoid(3 x . w)) (seed 95, 1500 rows), 2x64 relu units, 400 rows, batch
    64.
- Cells: each family at H = 200 steps; "Poisson counts" and "majority of 7" also at 5x H: 7
  cells, 50 held-out tasks each (PRNG root 91), 8 tuning tasks for the target-tuned oracle
  (root 92).
- Rows (`untouched_suite.run`, as the eighth suite): the third suite's (v4 and the earlier
  versions; Adam 1e-3; the four tuning-free optimizers at their defaults and calibrated;
  warmup+cosine and warmup+linear tuned on the three- and the five-family mixtures; the same two
  tuned on the cell itself, the oracle), v5 and v6 at their default rates and at 0.3x and 3x of
  them. Then, per cell, with the same tasks and test rows, the shipped candidate exactly as a
  user gets it (`lj.pretrained_schedule(horizon, validation=True)`, its default rate): one run
  with 20 % of each task's training rows kept out as its validation split, and the two runs
  (`final_metrics` on `ReplayedFamily(with the split, without)`), at its default rate and at
  0.3x and 3x of it.
- The ship rule, pooled over the 7 cells: the candidate's two runs become the recommended
  recipe if the 95 % intervals of their test loss over (a) v6, (b) Adam 1e-3 and (c)
  Schedule-Free AdamW at its defaults each lie wholly below 1. Otherwise the candidate stays in
  the package, marked experimental, with these numbers. Either way `pretrained_schedule()`
  keeps returning v6 (one run, no validation split).
- Reported beside it, not part of the rule: the two runs over every other row (the other
  tuning-free rows, the five-family-tuned and the target-tuned schedules: issue 13's and 17's
  goals for it), the one run over v6, per cell the two runs over v6 and the row that wins the
  cell, and the base-rate sensitivity of the two runs (cells whose largest change in mean test
  loss over 0.3x-3x of its rate is under 10 %); and v6 on this suite as on the eighth
  (`across_suites.version_table`).
- Geometric means of paired per-task test-loss ratios, bootstrap 95 % intervals (tasks resampled
  within cells, `pretrained_tables.pooled`), as in every suite.

Outcome (2026-12-07): the rule passes. The two runs are 0.823 [0.814, 0.831] of v6, 0.733
[0.724, 0.742] of Adam 1e-3 and 0.732 [0.723, 0.741] of Schedule-Free AdamW at its defaults;
0.45-0.63 of every other tuning-free row, 0.60 of the five-family-tuned schedules, 1.121 [1.108,
1.135] of warmup+cosine tuned on each target (warmup+linear 1.127); the one run 0.870 of v6. Per
cell 1.018 of v6 on "Poisson counts" at H, 0.60-0.97 on the other six; under 10 % over 0.3x-3x
of its rate in 3 cells of 7. v6 here: 0.891 of Adam 1e-3, 0.889 of Schedule-Free's defaults,
0.73 of the five-family-tuned schedules, 1.362 of the target-tuned warmup+cosine, 0 cells of 7
under 10 %.

Run:  python benchmarks/ninth_suite.py            (the rows, the candidate, the report; ~35 min)
      python benchmarks/ninth_suite.py --report   (the tables from the stored files)
"""

import argparse
import functools
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import across_suites as A
import pretrained_tables as PTab
import pretrained_train as T
import untouched_suite as U
import validation_feature as VF

import lookahead_jax as lj
from lookahead_jax import meta
from lookahead_jax.meta import protocol as P

HERE = os.path.dirname(__file__)
OUT = os.path.join(HERE, "results", "ninth_suite.json")
CELLS = [
    (f, 1)
    for f in (
        "Poisson counts",
        "cosine product",
        "majority of 7",
        "anisotropic 4-class",
        "sparse logistic",
    )
]
CELLS += [("Poisson counts", 5), ("majority of 7", 5)]


def families(validation=0.0):
    """{name: family}; with `validation`, that fraction of each task's training rows is kept
    out as its validation split (the test rows stay the same)."""
    regression = functools.partial(U.regression, validation=validation)
    classification = functools.partial(U.classification, validation=validation)
    relu, tanh = jax.nn.relu, jax.numpy.tanh
    rng = np.random.default_rng(91)
    x, w = rng.normal(size=(900, 6)), rng.normal(size=6) / np.sqrt(6)
    y = rng.poisson(np.exp(0.7 * x @ w + 0.5)).astype(np.float64)
    out = {"Poisson counts": regression(x, y, (32,), tanh, 200, 32)}
    rng = np.random.default_rng(92)
    x = rng.uniform(-2.0, 2.0, (900, 3))
    y = np.cos(2 * x[:, 0]) * np.cos(2 * x[:, 1]) + rng.normal(size=900) * 0.1
    out["cosine product"] = regression(x, y, (32, 32), relu, 250, 32)
    rng = np.random.default_rng(93)
    bits = rng.choice([-1.0, 1.0], size=(1000, 11))
    x, y = bits + 0.6 * rng.normal(size=bits.shape), (bits[:, :7].sum(1) > 0).astype(int)
    out["majority of 7"] = classification(x, y, (64,), relu, 200, 16)
    rng = np.random.default_rng(94)
    means, mix = rng.normal(size=(4, 8)), rng.normal(size=(4, 8, 8)) / np.sqrt(8)
    x = np.concatenate([means[k] + rng.normal(size=(300, 8)) @ mix[k].T for k in range(4)])
    y = np.repeat(np.arange(4), 300)
    out["anisotropic 4-class"] = classification(x, y, (32,), tanh, 300, 32)
    rng = np.random.default_rng(95)
    x, w = rng.normal(size=(1500, 40)), np.zeros(40)
    w[rng.choice(40, 3, replace=False)] = rng.normal(size=3)
    y = (rng.uniform(size=1500) < 1 / (1 + np.exp(-3 * x @ w))).astype(int)
    out["sparse logistic"] = classification(x, y, (64, 64), relu, 400, 64)
    return out


NINTH = U.Suite(
    families, CELLS, 91, 92, OUT, lambda horizon: U.v5_rows(horizon) | U.v6_rows(horizon)
)


ONE_RUN = "the candidate, one run (80 % of the rows)"
TWO_RUNS = "the candidate, two runs"
# The rule's rows, and the rows reported beside them (as each suite's files name them).
RULE = {
    "v6": U.V6,
    "Adam 1e-3": "adam 1e-3",
    "Schedule-Free AdamW, defaults": "schedule_free_adamw (defaults)",
}
BESIDE = {
    "warmup+cosine, tuned on the target cell": "warmup+cosine (target-tuned)",
    "warmup+linear, tuned on the target cell": "warmup+linear (target-tuned)",
    "warmup+cosine, tuned on the five families": "warmup+cosine (tuned on the wider mixture)",
    "warmup+linear, tuned on the five families": "warmup+linear (tuned on the wider mixture)",
    "Schedule-Free AdamW, calibrated on the five families": (
        "schedule_free_adamw (calibrated on the wider mixture)"
    ),
} | {name: name for name in A.OTHER_TUNING_FREE}


def candidate_rows(cell, carved, plain, keys, horizon):
    """Adds the shipped candidate's rows to `cell`, exactly as a user runs it: one run on the
    split's rows; the two runs at its default rate and at 0.3x and 3x of it."""
    losses = cell["per_task_test_loss"]
    default = lj.pretrained_info(validation=True)["base_lr"]
    for scale, suffix in zip((1.0, 0.3, 3.0), ("", *U.SENSITIVITY), strict=True):
        sched = lj.pretrained_schedule(horizon, base_lr=default * scale, validation=True)
        tx = lj.learned_schedule(T.INNER, *sched)
        if scale == 1.0 and ONE_RUN not in losses:
            VF.add_row(cell, ONE_RUN, P.final_metrics(carved, tx, keys, horizon))
        if TWO_RUNS + suffix not in losses:
            twice = meta.ReplayedFamily(carved, plain)
            metrics = P.final_metrics(twice, tx, keys, horizon, inner=T.INNER)
            VF.add_row(cell, TWO_RUNS + suffix, metrics)


def run_candidate():
    """Per cell, the candidate's rows, into the suite's own file (saved after each cell)."""
    out = json.load(open(OUT))
    split = lj.pretrained_info(validation=True)["validation_split"]
    plain, carved = families(), families(validation=split)
    keys = meta.task_keys(NINTH.heldout_root, U.NUM_HELDOUT)
    for fam, mult in CELLS:
        name = f"{fam} @ {mult}x"
        candidate_rows(out["cells"][name], carved[fam], plain[fam], keys, T.H * mult)
        json.dump(out, open(OUT, "w"), indent=1)
        print(f"{name}: the candidate's rows", flush=True)


def winner(cell, rows):
    """The row of `rows` with the lowest mean test loss in `cell`."""
    losses = cell["per_task_test_loss"]
    return min(rows, key=lambda r: np.mean(np.where(np.isfinite(losses[r]), losses[r], np.inf)))


def report():
    """v6's table (as the eighth suite's), then the candidate's rule and the rows beside it;
    both into `OUT["readings"]`."""
    print("\nv6 on the ninth suite (across_suites' rows)")
    over = A.version_table({"ninth": A._suite(OUT)}, "v6")
    cells = A._suite(OUT)[0]
    print("\nThe candidate's two runs over each row, pooled over the 7 cells [95 %]\n")
    print("| over | ratio [95 %] |\n| --- | --- |")
    ratios = {}
    for label, row in (RULE | BESIDE).items():
        ratios[label] = A._ratio(cells, TWO_RUNS, row)
        print(f"| {label}{' (the rule)' if label in RULE else ''} | {A._fmt(ratios[label])} |")
    one = A._ratio(cells, ONE_RUN, U.V6)
    print(f"| (the candidate's one run over v6) | {A._fmt(one)} |")
    passes = all(ratios[label][1][1] < 1.0 for label in RULE)
    main = {**RULE, **BESIDE, "the candidate, two runs": TWO_RUNS}
    print("\nPer cell: the two runs over v6 [95 %], and the row of lowest mean test loss\n")
    per_cell = {}
    for name, c in cells.items():
        per_cell[name] = [PTab.pooled({name: c}, TWO_RUNS, U.V6), winner(c, list(main.values()))]
        print(f"| {name} | {A._fmt(per_cell[name][0])} | {per_cell[name][1]} |")
    sens = A.sensitivity_counts(cells, (TWO_RUNS, tuple(TWO_RUNS + x for x in U.SENSITIVITY)))
    print(f"\nThe two runs: under 10 % over 0.3x-3x of its rate in {sens[0]} of {sens[1]} cells")
    print(
        "\nThe ship rule (intervals over v6, Adam 1e-3 and Schedule-Free AdamW at its defaults "
        "wholly below 1): "
        + (
            "passes: the two runs become the recommended recipe"
            if passes
            else "fails: the candidate stays experimental"
        )
    )
    out = json.load(open(OUT))
    out["readings"] = {
        "v6_over": over,
        "two_runs_over": ratios,
        "one_run_over_v6": one,
        "per_cell": per_cell,
        "sensitivity": sens,
        "passes": passes,
    }
    json.dump(out, open(OUT, "w"), indent=1)
    return out


def suite_main(suite, run_candidate, report, description):
    """A suite script's command line: the suite's rows (`untouched_suite.run`), then the
    candidate's (`run_candidate()`), then `report()`; `--rows` and `--report` run one part."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only the tables, from the files")
    parser.add_argument("--rows", action="store_true", help="only the suite's rows")
    args = parser.parse_args()
    if not args.report:
        out = U.run(suite)
        out["summary"] = U.report(suite, out)
        json.dump(out, open(suite.out, "w"), indent=1)
    if args.rows:
        return
    if not args.report:
        run_candidate()
    report()


def main():
    suite_main(NINTH, run_candidate, report, __doc__)


if __name__ == "__main__":
    main()
