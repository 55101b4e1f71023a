"""A tenth suite, untouched: the two runs with the base rate picked on validation (13, 17).

The recommended two-run recipe (`lj.pretrained_schedule(horizon, validation=True)`: a first run
on 80 % of the training rows reading their held-out 20 %, then Adam over every row at the
recorded rates) is 1.10x and 1.12x warmup + decay tuned on each target family (eighth and ninth
suites), and its test loss changes by over 10 % across 0.3x-3x of its base rate in 4 cells of 7.
On the ninth suite its two runs at 0.3x of the default rate were better than at 1x in 5 cells
of 7. The first run already holds out rows that score it, so it can choose the rate too: run it
at three base rates, 1/3x, 1x and 3x of the one given (the default, or a user's), keep per task
the one whose first run ends with the lowest validation loss (`meta.protocol.pick_by_validation`;
no test row is read), and replay that one. Cost: three first runs and one second run, against
one and one. This suite decides whether that becomes the recommended recipe.

Protocol, fixed (and committed) before any number of this suite was computed:

- Families, none used before in meta-training, validation, selection or any table (features and
  targets standardised with `pretrained_train.standardise`; a task's held-out split is every row
  it does not train on):
  - "XOR of signs": x in 6-D standard normal, class = [x_1 x_2 > 0], 10 % of the labels flipped
    (NumPy seed 101, 1000 rows), 2x32 relu units, 300 training rows, batch 32;
  - "heteroscedastic linear": x in 5-D standard normal, y = x . w + (0.3 + 0.5 |x_1|) e, w and e
    standard normal (seed 102, 800 rows), 32 tanh units, 150 rows, batch 16;
  - "three rings": radius 1 + k + 0.3 e for class k in {0, 1, 2}, angle uniform, the 2-D point
    plus two standard normal nuisance features (seed 103, 900 rows, 300 per class), 64 tanh
    units, 240 rows, batch 32;
  - "Gaussian bump": y = 3 exp(-|x|^2 / 2) + 0.2 e, x in 4-D standard normal (seed 104, 900
    rows), 2x32 tanh units, 300 rows, batch 32;
  - "ordinal 5-class": x in 10-D standard normal, z = x . w + logistic noise, w standard normal /
    sqrt(10), cut into 5 classes at the quintiles of z (seed 105, 1200 rows), 64 relu units, 250
    rows, batch 16.
- Cells: each family at H = 200 steps; "XOR of signs" and "ordinal 5-class" also at 5x H: 7
  cells, 50 held-out tasks each (PRNG root 101), 8 tuning tasks for the target-tuned oracle
  (root 102).
- Rows: every row of the ninth suite (`untouched_suite.run`: v4 and the earlier versions, Adam
  1e-3, the four tuning-free optimizers at their defaults and calibrated, warmup+cosine and
  warmup+linear tuned on the three- and five-family mixtures and on the cell itself, v5 and v6 at
  their default rates and at 0.3x and 3x), then per cell the shipped candidate's two runs
  (`final_metrics` on `ReplayedFamily(with the 20 % split, without)`) at 0.1x, 0.3x, 1/3x, 0.9x,
  1x, 3x and 9x of its default rate, each with its first run's final validation loss. The picked
  recipe at a given rate r is `pick_by_validation` over the two runs at r/3, r and 3r: at r = the
  default (the row the rule reads), and at 0.3x and 3x of it (its sensitivity).
- The rule, pooled over the 7 cells: the picked recipe becomes the recommended recipe if the 95 %
  intervals of its test loss over (a) the current recipe (the two runs at the default rate), (b)
  Adam 1e-3 and (c) Schedule-Free AdamW at its defaults each lie wholly below 1. Otherwise the
  current recipe stays recommended and this one is documented with these numbers.
- Reported beside it, not part of the rule: both recipes over every other row (v6, the other
  tuning-free rows, the five-family-tuned and the target-tuned schedules: issue 13's 5 % and 17's
  2 % goals), per cell the picked recipe over the current one and the row that wins the cell, how
  often each of the three rates was picked, and the base-rate sensitivity of both recipes and of
  v6 (cells whose largest change in mean test loss over 0.3x-3x of the rate is under 10 %).
- Geometric means of paired per-task test-loss ratios, bootstrap 95 % intervals (tasks resampled
  within cells, `pretrained_tables.pooled`), as in every suite.

Outcome (2026-12-07): the rule passes. The picked recipe is 0.941 [0.935, 0.948] of the current
recipe, 0.672 [0.666, 0.678] of Adam 1e-3 and 0.667 [0.661, 0.672] of Schedule-Free AdamW at its
defaults; 0.771 of v6, 0.41-0.60 of every other tuning-free row, 0.62 of the five-family-tuned
schedules and 1.068 [1.059, 1.078] of warmup+cosine tuned on each target (1.067 linear; the
current recipe 1.135 and 1.133). Per cell 0.82-1.00 of the current recipe (level on the
heteroscedastic linear and the Gaussian bump). Under 10 % over 0.3x-3x of the rate in 6 cells of 7
(the current recipe 3, v6 1). v6 here: 0.872 of Adam 1e-3, 0.865 of Schedule-Free's defaults,
0.80 of the five-family-tuned schedules, 1.386 of the target-tuned warmup+cosine.

Run:  python benchmarks/tenth_suite.py            (the rows, the candidate's, the report; ~45 min)
      python benchmarks/tenth_suite.py --report   (the tables from the stored file)
"""

import functools
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import across_suites as A
import ninth_suite as N
import pretrained_tables as PTab
import pretrained_train as T
import untouched_suite as U

import lookahead_jax as lj
from lookahead_jax import meta
from lookahead_jax.meta import protocol as P

HERE = os.path.dirname(__file__)
OUT = os.path.join(HERE, "results", "tenth_suite.json")
CELLS = [
    (f, 1)
    for f in (
        "XOR of signs",
        "heteroscedastic linear",
        "three rings",
        "Gaussian bump",
        "ordinal 5-class",
    )
]
CELLS += [("XOR of signs", 5), ("ordinal 5-class", 5)]


def families(validation=0.0):
    """{name: family}; with `validation`, that fraction of each task's training rows is kept
    out as its validation split (the test rows stay the same)."""
    regression = functools.partial(U.regression, validation=validation)
    classification = functools.partial(U.classification, validation=validation)
    relu, tanh = jax.nn.relu, jax.numpy.tanh
    rng = np.random.default_rng(101)
    x = rng.normal(size=(1000, 6))
    y = ((x[:, 0] * x[:, 1] > 0) != (rng.uniform(size=1000) < 0.1)).astype(int)
    out = {"XOR of signs": classification(x, y, (32, 32), relu, 300, 32)}
    rng = np.random.default_rng(102)
    x, w = rng.normal(size=(800, 5)), rng.normal(size=5)
    y = x @ w + (0.3 + 0.5 * np.abs(x[:, 0])) * rng.normal(size=800)
    out["heteroscedastic linear"] = regression(x, y, (32,), tanh, 150, 16)
    rng = np.random.default_rng(103)
    k = np.repeat(np.arange(3), 300)
    radius, angle = 1.0 + k + 0.3 * rng.normal(size=900), rng.uniform(0, 2 * np.pi, 900)
    x = np.column_stack([radius * np.cos(angle), radius * np.sin(angle), rng.normal(size=(900, 2))])
    out["three rings"] = classification(x, k, (64,), tanh, 240, 32)
    rng = np.random.default_rng(104)
    x = rng.normal(size=(900, 4))
    y = 3.0 * np.exp(-0.5 * (x**2).sum(1)) + 0.2 * rng.normal(size=900)
    out["Gaussian bump"] = regression(x, y, (32, 32), tanh, 300, 32)
    rng = np.random.default_rng(105)
    x, w = rng.normal(size=(1200, 10)), rng.normal(size=10) / np.sqrt(10)
    z = x @ w + rng.logistic(size=1200)
    y = np.searchsorted(np.quantile(z, [0.2, 0.4, 0.6, 0.8]), z)
    out["ordinal 5-class"] = classification(x, y, (64,), relu, 250, 16)
    return out


TENTH = U.Suite(
    families, CELLS, 101, 102, OUT, lambda horizon: U.v5_rows(horizon) | U.v6_rows(horizon)
)

# The two runs at each multiple of the default rate this suite needs, by row name (0.3x, 1x and
# 3x under the ninth suite's names).
MULTIPLES = {
    0.1: f"{N.TWO_RUNS} at 0.1x its base rate",
    0.3: N.TWO_RUNS + U.SENSITIVITY[0],
    1 / 3: f"{N.TWO_RUNS} at 1/3x its base rate",
    0.9: f"{N.TWO_RUNS} at 0.9x its base rate",
    1.0: N.TWO_RUNS,
    3.0: N.TWO_RUNS + U.SENSITIVITY[1],
    9.0: f"{N.TWO_RUNS} at 9x its base rate",
}
PICKED = "the candidate, two runs, base rate picked on validation"
# The picked recipe at the default rate and at 0.3x and 3x of it: the multiples it picks among.
PICKS = {
    PICKED: (1 / 3, 1.0, 3.0),
    PICKED + U.SENSITIVITY[0]: (0.1, 0.3, 0.9),
    PICKED + U.SENSITIVITY[1]: (1.0, 3.0, 9.0),
}
RULE = {"the current recipe (two runs at the default rate)": N.TWO_RUNS} | {
    k: v for k, v in N.RULE.items() if k != "v6"
}
BESIDE = {"v6": U.V6} | N.BESIDE


def two_run_rows(cell, carved, plain, keys, horizon, multiples=MULTIPLES, picks=PICKS):
    """The candidate's two runs at each of `multiples` ({multiple of the default rate: row}),
    with their first runs' final validation loss (`per_task_validation_loss`); then the rows
    `picks` ({row: multiples it picks among}) picked from them (`pick_rows`)."""
    default = lj.pretrained_info(validation=True)["base_lr"]
    cell.setdefault("per_task_validation_loss", {})
    for mult, row in multiples.items():
        tx = lj.learned_schedule(
            T.INNER, *lj.pretrained_schedule(horizon, base_lr=default * mult, validation=True)
        )
        m = P.final_metrics(meta.ReplayedFamily(carved, plain), tx, keys, horizon, inner=T.INNER)
        cell["per_task_test_loss"][row] = m.test_loss.tolist()
        cell["per_task_test_accuracy"][row] = m.test_accuracy.tolist()
        cell["per_task_validation_loss"][row] = m.validation_loss.tolist()
    pick_rows(cell, multiples, picks)


STORED = ("per_task_validation_loss", "per_task_test_loss", "per_task_test_accuracy")


def stored_runs(cell, rows):
    """(validation loss, test loss, test accuracy) of the two runs `rows` stored in `cell`, each
    of shape (len(rows), tasks)."""
    return tuple(np.array([cell[kind][row] for row in rows], np.float64) for kind in STORED)


def rows_at(multiples, wanted):
    """The rows `multiples` ({multiple: row}) names for each of `wanted`, matched to 1e-9 (so a
    multiple read back from JSON, e.g. 1/3, finds its row)."""
    return [next(r for m, r in multiples.items() if abs(m - w) < 1e-9) for w in wanted]


def pick_rows(cell, multiples, picks):
    """`picks`' rows ({row: multiples it picks among}) from the two runs stored in `cell` (named
    by `multiples`), by `pick_by_validation`; with the multiple each task picked."""
    cell.setdefault("picked_multiple", {})
    for row, mults in picks.items():
        val, test, acc = stored_runs(cell, [multiples[m] for m in mults])
        nan = np.full_like(val[0], np.nan)  # the fields the pick does not read
        picked, index = P.pick_by_validation(
            [P.Metrics(nan, t, a, nan, v) for v, t, a in zip(val, test, acc, strict=True)]
        )
        cell["per_task_test_loss"][row] = picked.test_loss.tolist()
        cell["per_task_test_accuracy"][row] = picked.test_accuracy.tolist()
        cell["picked_multiple"][row] = [mults[i] for i in index]


def pick_counts(picks):
    """How many tasks picked each of the picked recipe's multiples (1/3x, 1x, 3x)."""
    return [sum(abs(p - m) < 1e-9 for p in picks) for m in PICKS[PICKED]]


def run_candidate():
    """Per cell, the candidate's rows, into the suite's own file (saved after each cell)."""
    out = json.load(open(OUT))
    split = lj.pretrained_info(validation=True)["validation_split"]
    plain, carved = families(), families(validation=split)
    keys = meta.task_keys(TENTH.heldout_root, U.NUM_HELDOUT)
    for fam, mult in CELLS:
        name = f"{fam} @ {mult}x"
        if PICKED not in out["cells"][name]["per_task_test_loss"]:
            two_run_rows(out["cells"][name], carved[fam], plain[fam], keys, T.H * mult)
            json.dump(out, open(OUT, "w"), indent=1)
        print(f"{name}: the candidate's rows", flush=True)


def over_tables(cells, subjects, rule, beside):
    """For each of `subjects` (the candidate first), its ratio over each row of `rule` and
    `beside` ({label: row}), pooled over `cells`, printed as a table; returns ({subject: {label:
    ratio}}, whether the candidate's intervals over every row of `rule` lie wholly below 1)."""
    ratios = {}
    for subject in subjects:
        print(f"\n{subject} over each row, pooled over the {len(cells)} cells [95 %]\n")
        print("| over | ratio [95 %] |\n| --- | --- |")
        ratios[subject] = {}
        for label, row in (rule | beside).items():
            if row == subject:
                continue
            r = ratios[subject][label] = A._ratio(cells, subject, row)
            marked = " (the rule)" if subject == subjects[0] and label in rule else ""
            print(f"| {label}{marked} | {A._fmt(r)} |")
    return ratios, all(ratios[subjects[0]][label][1][1] < 1.0 for label in rule)


def report():
    """The rule, the rows beside it, per cell, the picks and the sensitivity; into
    `OUT["readings"]`."""
    cells = A._suite(OUT)[0]
    ratios, passes = over_tables(cells, (PICKED, N.TWO_RUNS), RULE, BESIDE)
    main = {**RULE, **BESIDE, "picked": PICKED}
    print("\nPer cell: the picked recipe over the current one [95 %], the row of lowest mean")
    print("test loss, and how often each multiple of the rate was picked (1/3x, 1x, 3x)\n")
    per_cell = {}
    for name, c in cells.items():
        counts = pick_counts(json.load(open(OUT))["cells"][name]["picked_multiple"][PICKED])
        per_cell[name] = [
            PTab.pooled({name: c}, PICKED, N.TWO_RUNS),
            N.winner(c, list(main.values())),
            counts,
        ]
        print(f"| {name} | {A._fmt(per_cell[name][0])} | {per_cell[name][1]} | {counts} |")
    sens = {
        label: A.sensitivity_counts(cells, (row, tuple(row + x for x in U.SENSITIVITY)))
        for label, row in (("picked", PICKED), ("current", N.TWO_RUNS), ("v6", U.V6))
    }
    print(
        "\nUnder 10 % over 0.3x-3x of the rate: "
        + "; ".join(f"{k} {v[0]} of {v[1]} cells" for k, v in sens.items())
    )
    print(
        "\nThe rule (intervals over the current recipe, Adam 1e-3 and Schedule-Free AdamW at its "
        "defaults wholly below 1): "
        + (
            "passes: the picked recipe becomes the recommended one"
            if passes
            else "fails: the current recipe stays recommended"
        )
    )
    out = json.load(open(OUT))
    out["readings"] = {"over": ratios, "per_cell": per_cell, "sensitivity": sens, "passes": passes}
    json.dump(out, open(OUT, "w"), indent=1)
    return out


def main():
    N.suite_main(TENTH, run_candidate, report, __doc__)


if __name__ == "__main__":
    main()
