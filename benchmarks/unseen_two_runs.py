"""The two-run recipe on the 13 unseen cells, at 1x, 5x and 10x H: a look, not a decision (13, 17).

The ninth suite made the two-run recipe (`lj.pretrained_schedule(horizon, validation=True)`, its
rates replayed over all the rows by `lj.replay_schedule`) the recommendation on cells at H and 5x
H. Issue 13 asks for 1x, 5x and 10x its meta-training horizon; only the 13 unseen cells of
`pretrained_tables.py` go to 10x (wine and the noisy sines). Those cells shaped v1-v4, so this is
a look at the shipped recipe there, reported as it comes; nothing is decided by it.

Protocol, fixed (and committed) before it ran:

- Cells: the 13 stored unseen cells (`results/pretrained/unseen_{1x,long}.json`): seven families
  at H = 200, four at 5x H, two at 10x H; their 50 held-out tasks (`protocol_tables.HELDOUT_ROOT`)
  and stored rows (v6 from `pretrained_tables.py --table v6`, the same-information rows from
  `--table wider_rows`).
- Rows added per cell (`ninth_suite.candidate_rows`, unchanged): the shipped candidate at its
  default rate in one run with 20 % of each task's training rows held out, and its two runs at
  its default rate and at 0.3x and 3x of it. Each cell first checks that the two runs start from
  the stored tasks (their initial training loss equal to the stored one, relative 1e-5).
- Reported: the two runs over v6 (horizon given), Adam 1e-3, Schedule-Free AdamW at its
  defaults, every other tuning-free row, warmup+cosine and warmup+linear tuned on the five
  families and on each target, pooled over the 13 cells and over each horizon group (1x: 7
  cells, 5x: 4, 10x: 2); per cell, the two runs over v6; the sensitivity count (cells under 10 %
  over 0.3x-3x of its rate). Geometric means of paired per-task test-loss ratios with bootstrap
  95 % intervals (`pretrained_tables.pooled`).

Outcome (2026-12-07): over the 13 cells the two runs are 1.032 [1.006, 1.060] of v6 (1x 1.046,
5x 1.017, 10x 1.013, the last two with intervals around 1); better on breast_cancer (0.86, 0.80)
and the digits at 2x64 tanh (0.96), worse on wine at H and 5x (1.26, 1.11), iris (1.13, 1.24)
and the digits at 32 relu (1.06). 0.551 of Adam 1e-3, 0.645 of Schedule-Free at its defaults,
0.50-0.83 of Prodigy, D-Adaptation and Mechanic (defaults and calibrated), level with
Schedule-Free calibrated on the five families (1.021 [0.983, 1.062]) and warmup+linear tuned
there (1.030 [0.991, 1.071]), 1.047 of warmup+cosine tuned there, 1.39 of warmup+cosine tuned
on each target; at 10x the five-family-tuned rows are 1.43-1.46x better. The one run 1.118 of
v6. Under 10 % over 0.3x-3x of its rate in 4 of 13 cells (v6: 4).

A second look, after the tenth suite made the two runs with the base rate picked on validation
the recommended recipe (`tenth_suite.py`), fixed (and committed) before it ran: per cell,
`tenth_suite.two_run_rows` (the two runs at 0.1x, 0.3x, 1/3x, 0.9x, 1x, 3x and 9x of the default
rate, each with its first run's final validation loss; the picked recipe at the default rate and
at 0.3x and 3x of it); reported as above for the picked recipe, plus its ratio over the two runs
at the default rate alone (pooled and per cell) and how often each multiple was picked. Nothing
is decided by it.

Outcome of the second look (2026-12-07): over the 13 cells the picked recipe is 0.950 [0.928,
0.970] of the two runs at the default rate (1x 0.988, 5x 0.936, 10x 0.852) and 0.980 [0.951,
1.010] of v6 (1x 1.034, 5x 0.952, 10x 0.864); 0.523 of Adam 1e-3, 0.613 of Schedule-Free at its
defaults, 0.47-0.79 of Prodigy, D-Adaptation and Mechanic; level with Schedule-Free calibrated
on the five families (0.970 [0.935, 1.007]) and warmup+decay tuned there (0.979-0.995), which
beat it at 10x by 22-24 % and lose to it at 5x (0.80-0.81); 1.323 of warmup+cosine tuned on each
target (1.250 linear). Per cell over v6: worse on iris (1.32 at H, 1.42 at 5x; there it is also
1.15-1.17 of the two runs at one rate), better on breast_cancer (0.86, 0.78), the noisy sines at
5x and 10x (0.72) and the digits at 2x64 tanh (0.97). Under 10 % over 0.3x-3x of its rate in 5
of 13 cells (the two runs at one rate 4, v6 4).

A third look, after the eleventh suite made the search the recommended recipe
(`eleventh_suite.py`: first runs at 1/3x, 1x and 3x of the rate, then up to two 3x steps each
way while the best is at an end), fixed (and committed) before it ran: per cell, the two runs at
the multiples of `eleventh_suite.GRID` (1/81x-81x of the default rate) that the second look did
not store (1/81x, 1/27x, 1/9x, 27x, 81x), each with its first run's validation loss; then the
search at the default rate, 1/3x and 3x of it (`eleventh_suite.search_rows`) and the shipped
pick at 1/3x of it (over 1/9x, 1/3x, 1x; `tenth_suite.pick_rows`). Reported as above for the
search, plus its ratio over the shipped pick (pooled, per horizon group and per cell), its first
runs per task, and the sensitivity of the search and of the shipped pick over 1/3x-3x of the
rate. Nothing is decided by it.

Outcome of the third look (2026-12-07): over the 13 cells the search is **1.012 [0.981, 1.043]
of the shipped pick** (1x 1.030, 5x 0.980, 10x 1.014) and 0.992 [0.951, 1.034] of v6 (1x 1.065,
5x 0.932, 10x 0.876): level with both. Per cell over the shipped pick: worse on the small tables
where 18-20 held-out rows choose, wine (1.14-1.18 at 1x, 5x and 10x) and iris (1.05, 1.12), and
on two digits cells (1.02-1.04); better on the noisy sines (0.93, 0.70, 0.87), which want larger
rates. 0.529 of Adam 1e-3, 0.620 of Schedule-Free at its defaults, 0.48-0.80 of Prodigy,
D-Adaptation and Mechanic; level with Schedule-Free calibrated on the five families and warmup +
decay tuned there (0.98-1.01), which beat it at 10x by 24-26 % and lose to it at 5x (0.79-0.80);
1.339 of warmup+cosine tuned on each target (1.265 linear; the shipped pick 1.323 and 1.250).
4.08 first runs per task. Under 10 % over 1/3x-3x of its rate in 8 of 13 cells (the shipped
pick 5).

Run:  python benchmarks/unseen_two_runs.py            (the rows, then the report)
      python benchmarks/unseen_two_runs.py --picked   (the second look's rows, then the report)
      python benchmarks/unseen_two_runs.py --searched (the third look's rows, then the report)
      python benchmarks/unseen_two_runs.py --report   (the report from the stored file)
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import across_suites as A
import eleventh_suite as E
import ninth_suite as NS
import pretrained_tables as PTab
import pretrained_train as T
import protocol_tables as PT
import tenth_suite as X
import untouched_suite as U

import lookahead_jax as lj
from lookahead_jax import meta

OUT = os.path.join(os.path.dirname(__file__), "results", "pretrained", "two_runs.json")
GROUPS = {"1x": "@ 1x", "5x": "@ 5x", "10x": "@ 10x"}


def run():
    """Per stored unseen cell, the candidate's rows into `OUT` (saved after each cell)."""
    out = json.load(open(OUT)) if os.path.exists(OUT) else {"cells": {}}
    split = lj.pretrained_info(validation=True)["validation_split"]
    keys = meta.task_keys(PT.HELDOUT_ROOT, U.NUM_HELDOUT)
    stored = A._unseen()[0]
    for name, cell in stored.items():
        if name in out["cells"]:
            continue
        fam, mult = name.split(" @ ")
        carved, plain = PT.FAMILIES[fam](validation=split), PT.FAMILIES[fam]()
        horizon = T.H * int(mult[:-1])
        twice = meta.protocol.final_metrics(
            meta.ReplayedFamily(carved, plain),
            lj.learned_schedule(T.INNER, *lj.pretrained_schedule(horizon, validation=True)),
            keys[:2],
            1,
            inner=T.INNER,
        )
        want = np.asarray(cell["initial_loss"][:2])
        if not np.allclose(twice.initial_loss, want, rtol=1e-5):
            raise SystemExit(f"{name}: the two runs do not start from the stored tasks")
        record = {"per_task_test_loss": {}, "per_task_test_accuracy": {}}
        NS.candidate_rows(record, carved, plain, keys, horizon)
        out["cells"][name] = record
        json.dump(out, open(OUT, "w"), indent=1)
        print(f"{name}: the candidate's rows", flush=True)
    return out


def _lacking(row):
    """Per cell in `OUT` without `row`: (all cells as stored, name, its record, the family with
    the validation split carved out, the plain family, the held-out keys, the horizon)."""
    out = json.load(open(OUT))
    split = lj.pretrained_info(validation=True)["validation_split"]
    keys = meta.task_keys(PT.HELDOUT_ROOT, U.NUM_HELDOUT)
    for name, record in out["cells"].items():
        if row not in record["per_task_test_loss"]:
            fam, mult = name.split(" @ ")
            carved, plain = PT.FAMILIES[fam](validation=split), PT.FAMILIES[fam]()
            yield out, name, record, carved, plain, keys, T.H * int(mult[:-1])


def run_picked():
    """Per cell already in `OUT`, the second look's rows (`tenth_suite.two_run_rows`)."""
    for out, name, record, carved, plain, keys, horizon in _lacking(X.PICKED):
        kept = dict(record["per_task_test_loss"])
        X.two_run_rows(record, carved, plain, keys, horizon)
        for row, losses in kept.items():  # the same runs as the first look's, recomputed
            if not np.allclose(record["per_task_test_loss"][row], losses, rtol=1e-5):
                raise SystemExit(f"{name}: {row} does not reproduce the first look's losses")
        json.dump(out, open(OUT, "w"), indent=1)
        print(f"{name}: the picked recipe's rows", flush=True)


def run_searched():
    """Per cell already in `OUT`, the third look's rows: the two runs at the multiples of
    `eleventh_suite.GRID` the cell lacks, then the search's and the shipped pick's rows."""
    for out, name, record, carved, plain, keys, horizon in _lacking(E.SEARCH):
        lacks = {m: r for m, r in E.MULTIPLES.items() if r not in record["per_task_test_loss"]}
        X.two_run_rows(record, carved, plain, keys, horizon, lacks, {})
        X.pick_rows(record, E.MULTIPLES, {E.SHIPPED + E.BAND[0]: E.PICKS[E.SHIPPED + E.BAND[0]]})
        E.search_rows(record)
        json.dump(out, open(OUT, "w"), indent=1)
        print(f"{name}: the search's rows", flush=True)


def merged():
    """The stored unseen cells with the candidate's rows added (in memory)."""
    cells = A._unseen()[0]
    for name, record in json.load(open(OUT))["cells"].items():
        cells[name]["per_task_test_loss"].update(record["per_task_test_loss"])
    return cells


def report():
    cells = merged()
    rows = {"v6 (horizon given)": "v6 (horizon given)"} | dict(list(NS.RULE.items())[1:])
    rows |= NS.BESIDE
    groups = {g: {n: c for n, c in cells.items() if n.endswith(tag)} for g, tag in GROUPS.items()}
    picked = all(X.PICKED in c["per_task_test_loss"] for c in cells.values())
    searched = all(E.SEARCH in c["per_task_test_loss"] for c in cells.values())
    subjects = {"the two runs": NS.TWO_RUNS} | ({"the picked recipe": X.PICKED} if picked else {})
    subjects |= {"the search": E.SEARCH} if searched else {}
    readings = {}
    for title, subject in subjects.items():
        over = rows | ({"the two runs at the default rate": NS.TWO_RUNS} if picked else {})
        over |= {"the shipped pick": X.PICKED} if searched else {}
        over = {k: v for k, v in over.items() if v != subject}
        print(f"\n{title} over each row: geometric mean of per-task test-loss ratios [95 %]\n")
        print("| over | all 13 cells | " + " | ".join(f"{g} ({len(c)})" for g, c in groups.items()))
        print("| --- |" + " --- |" * (1 + len(groups)))
        table = {}
        for label, row in over.items():
            table[label] = {"all": A._ratio(cells, subject, row)}
            table[label] |= {g: A._ratio(c, subject, row) for g, c in groups.items()}
            print(f"| {label} | " + " | ".join(A._fmt(r) for r in table[label].values()) + " |")
        if subject == NS.TWO_RUNS:
            one = A._ratio(cells, NS.ONE_RUN, "v6 (horizon given)")
            print(f"| (the one run over v6) | {A._fmt(one)} |")
            table["one_run_over_v6"] = one
        print(f"\nPer cell, {title} over v6 (horizon given) [95 %]\n")
        per_cell = {}
        for name, c in cells.items():
            per_cell[name] = PTab.pooled({name: c}, subject, "v6 (horizon given)")
            print(f"| {name} | {A._fmt(per_cell[name])} |")
        sens = A.sensitivity_counts(cells, (subject, tuple(subject + x for x in U.SENSITIVITY)))
        if sens is not None:
            print(f"\n{title}: under 10 % over 0.3x-3x of its rate in {sens[0]} of {sens[1]} cells")
        readings[title] = {"over": table, "per_cell": per_cell, "sens": sens}
    if picked:
        print("\nPer cell, the picked recipe over the two runs at the default rate [95 %], and")
        print("how often each multiple was picked (1/3x, 1x, 3x)\n")
        stored = json.load(open(OUT))["cells"]
        for name, c in cells.items():
            counts = X.pick_counts(stored[name]["picked_multiple"][X.PICKED])
            r = PTab.pooled({name: c}, X.PICKED, NS.TWO_RUNS)
            readings["the picked recipe"]["per_cell"][name] = [per_cell[name], r, counts]
            print(f"| {name} | {A._fmt(r)} | {counts} |")
    if searched:
        print("\nPer cell, the search over the shipped pick [95 %], its first runs per task, and")
        print("its tasks beyond 1/3x-3x of the rate\n")
        stored = json.load(open(OUT))["cells"]
        for name, c in cells.items():
            runs, beyond = E.search_cost(stored[name])
            r = PTab.pooled({name: c}, E.SEARCH, X.PICKED)
            readings["the search"]["per_cell"][name] = [per_cell[name], r, runs, beyond]
            print(f"| {name} | {A._fmt(r)} | {runs:.2f} | {beyond} of 50 |")
        runs = float(np.mean([stored[n]["search"][E.SEARCH]["first_runs"] for n in cells]))
        print(f"\nThe search's first runs per task, over the cells: {runs:.2f}")
        sens = {
            label: A.sensitivity_counts(cells, (row, tuple(row + x for x in E.BAND)))
            for label, row in (("the search", E.SEARCH), ("the shipped pick", X.PICKED))
        }
        print(
            "Under 10 % over 1/3x-3x of the rate: "
            + "; ".join(f"{k} {v[0]} of {v[1]} cells" for k, v in sens.items())
        )
        readings["the search"] |= {"first_runs": runs, "sens_third_to_3x": sens}
    out = json.load(open(OUT))
    out["report"] = readings
    json.dump(out, open(OUT, "w"), indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only the report, from the file")
    parser.add_argument("--picked", action="store_true", help="the second look's rows too")
    parser.add_argument("--searched", action="store_true", help="and the third look's")
    args = parser.parse_args()
    if not args.report:
        run()
        if args.picked or args.searched:
            run_picked()
        if args.searched:
            run_searched()
    report()


if __name__ == "__main__":
    main()
