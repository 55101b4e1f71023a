"""What does choosing the base rate on held-out rows cost the recipe? Stored runs (13, 17).

`searched_baselines.py --diagnose` found that choosing a peak per task on 30-80 held-out rows
costs even the target-tuned warmup+cosine 3-10 %. The recipe's two runs are stored at every
multiple of the base rate the searches read (the eleventh suite and the 13 unseen cells at
1/81x-81x, the tenth at 0.1x-9x), each with its first run's validation loss and its replay's test
loss, so other choice rules can be read off them without running anything:

- the shipped search (`lj.search_base_rate`) and the shipped pick (1/3x, 1x, 3x), as stored;
- a margin rule: the pick, but leaving 1x only where another rate's validation loss is lower
  by more than 2 % (a choice that moves only on clear evidence);
- the oracle ceilings: per task, the multiple whose replay has the lowest *test* loss, among
  1/3x, 1x and 3x, and among 1/27x-27x (the search's reach); no user can choose this way.

Reported per collection: each rule over the target-tuned warmup+cosine (issue 13's 5 % and 17's
2 %) and over the shipped search (the pick on the tenth, where the search's reach is not
stored). This reads rows that made decisions and shaped v1-v4: **it decides nothing**. The
oracles pick the lowest of several noisy test losses, so they are optimistic ceilings.

Outcome (2026-12-08), over the target-tuned warmup+cosine: the margin rule is the pick within
0.2 % everywhere (1.327 eleventh, 1.070 tenth, 1.321 unseen): no help. The oracle among 1/3x,
1x and 3x: 1.263 (eleventh), 1.053 (tenth), 1.152 (unseen); among 1/27x-27x: 1.103 (eleventh)
and 0.966 [0.933, 0.996] (unseen). So on the two suites even a perfect choice of rate leaves
5-10 % to the schedule itself; on the 13 unseen cells (small tables, 18-20 held-out rows) the
choice is what costs: a perfect one would be below the target-tuned schedule.

Run:  python benchmarks/choice_rules.py   (seconds; reads the stored results of
      eleventh_suite.py, tenth_suite.py and unseen_two_runs.py)
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import across_suites as A
import eleventh_suite as E
import pretrained_tables as PTab
import tenth_suite as X
import unseen_two_runs as UT

MARGIN = 0.02
ORACLE_3 = "oracle among 1/3x, 1x, 3x (by test loss)"
ORACLE_7 = "oracle among 1/27x-27x (by test loss)"
MARGIN_ROW = f"the pick, leaving 1x only by a {MARGIN:.0%} margin"


def add_rules(cells, raw, multiples, reach):
    """Adds the margin rule's and the oracles' rows to `cells` from the stored runs `raw`."""
    for name, c in cells.items():
        val, test, _ = X.stored_runs(raw[name], X.rows_at(multiples, (1 / 3, 1.0, 3.0)))
        val = np.where(np.isfinite(val), val, np.inf)
        best = np.argmin(val, axis=0)
        moves = val[best, np.arange(val.shape[1])] < (1 - MARGIN) * val[1]
        choice = np.where(moves, best, 1)
        losses = c["per_task_test_loss"]
        losses[MARGIN_ROW] = test[choice, np.arange(val.shape[1])].tolist()
        safe = np.where(np.isfinite(test), test, np.inf)
        losses[ORACLE_3] = safe.min(axis=0).tolist()
        if reach:
            _, wide, _ = X.stored_runs(raw[name], X.rows_at(multiples, reach))
            losses[ORACLE_7] = np.where(np.isfinite(wide), wide, np.inf).min(axis=0).tolist()


def collections():
    """(label, cells with every row, the stored-runs cells, their multiples, the shipped row)."""
    reach = tuple(3.0**k for k in range(-3, 4))
    eleventh = A._suite(E.OUT)[0]
    add_rules(eleventh, json.load(open(E.OUT))["cells"], E.MULTIPLES, reach)
    tenth = A._suite(X.OUT)[0]
    add_rules(tenth, json.load(open(X.OUT))["cells"], X.MULTIPLES, None)
    unseen = UT.merged()
    add_rules(unseen, json.load(open(UT.OUT))["cells"], E.MULTIPLES, reach)
    return [
        ("eleventh suite", eleventh, E.SEARCH),
        ("tenth suite", tenth, X.PICKED),
        ("13 unseen cells", unseen, E.SEARCH),
    ]


def main():
    for label, cells, shipped in collections():
        print(f"\n{label}, pooled over {len(cells)} cells [95 %]\n")
        print(f"| rule | over {PTab.TARGET_ROW} | over {shipped} |\n| --- | --- | --- |")
        rows = [E.SEARCH, X.PICKED, MARGIN_ROW, ORACLE_3, ORACLE_7]
        for row in (r for r in rows if all(r in c["per_task_test_loss"] for c in cells.values())):
            over = "" if row == shipped else A._fmt(PTab.pooled(cells, row, shipped))
            print(f"| {row} | {A._fmt(PTab.pooled(cells, row, PTab.TARGET_ROW))} | {over} |")


if __name__ == "__main__":
    main()
