"""How wide should the picked recipe look? A look at stored rows, after the fact (13, 17).

The recommended recipe (`tenth_suite.py` decided it) makes the first run at 1/3x, 1x and 3x of
the base rate and keeps, per task, the one whose held-out 20 % scores lowest. Both the tenth
suite and the second look at the 13 unseen cells (`unseen_two_runs.py --picked`) stored the two
runs at 0.1x, 0.3x, 1/3x, 0.9x, 1x, 3x and 9x of the default rate with their first runs'
validation losses, so other ways of picking can be read off those rows without running anything:

- the shipped pick, {1/3x, 1x, 3x};
- a wider fixed pick, {0.1x, 1/3x, 1x, 3x, 9x} (five first runs);
- a search: the three shipped first runs, then, while the lowest validation loss is at an end
  of the rates tried, one more first run a step further out (0.1x below 1/3x, 9x above 3x), so
  a cell that wants a larger or smaller rate can reach it; its cost is the mean number of first
  runs per task.

Reported per collection: each pick over the target-tuned warmup+cosine and warmup+linear (issue
13's 5 % and 17's 2 %), over the shipped pick, and over Adam 1e-3; the mean number of first runs;
and, for the shipped pick, the cells that carry the gap to the target-tuned warmup+cosine.

This reads rows the tenth suite used to make its decision, and the unseen cells shaped v1-v4:
**it decides nothing**. A pick it suggests becomes a candidate for a suite that has not been
computed yet, with its protocol fixed first.

Outcome (2026-12-07): on the tenth suite the wider pick and the search are 1.042 and 1.043 of
the target-tuned warmup+cosine (the shipped pick 1.068), 0.975-0.976 of the shipped pick, at 5
and 3.86 first runs per task (shipped: 3); on the 13 unseen cells 1.313 and 1.305 (shipped
1.323), 0.987-0.992 of the shipped pick. There the gap to the target-tuned schedule is mostly two
families: the noisy sines (the shipped pick 3.3x, 2.1x and 1.6x the target-tuned warmup+cosine at
1x, 5x and 10x H; their validation loss is lowest at 9x, the highest rate stored, and even 9x is
3.7x the tuned schedule at H) and iris (1.37x, 1.46x: 18 validation rows choose); the other 8
cells are 1.066 [1.033, 1.101]. So a wider pick gains about 2.5 % on a suite like the tenth and
little on the unseen cells; it does not reach issue 13's 5 % there.

Run:  python benchmarks/pick_widths.py   (seconds; reads results/tenth_suite.json and
                                          results/pretrained/two_runs.json)
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

SHIPPED = (1 / 3, 1.0, 3.0)
# The two unseen families that carry most of the shipped pick's gap to the target-tuned schedule.
HARD = ("regression (noisy sines)", "iris")
WIDER = (0.1, 1 / 3, 1.0, 3.0, 9.0)
PICKS = {
    "the shipped pick {1/3x, 1x, 3x}": "shipped",
    "a wider pick {0.1x, 1/3x, 1x, 3x, 9x}": "wider",
    "the search (1/3x, 1x, 3x, then out to 0.1x or 9x)": "search",
}
OVER = {
    "warmup+cosine tuned on each target": "warmup+cosine (target-tuned)",
    "warmup+linear tuned on each target": "warmup+linear (target-tuned)",
    "the shipped pick": "shipped",
    "Adam 1e-3": "adam 1e-3",
}


def _runs(record, mults):
    """(validation, test) losses of the two runs at `mults`, shape (len(mults), tasks); a
    non-finite validation loss never wins (as in `pick_by_validation`)."""
    val, test, _ = X.stored_runs(record, [X.MULTIPLES[m] for m in mults])
    return np.where(np.isfinite(val), val, np.inf), test


def fixed_pick(record, mults):
    """Per task, the test loss of the run whose validation loss is lowest among `mults`."""
    val, test = _runs(record, mults)
    return test[np.argmin(val, 0), np.arange(test.shape[1])], float(len(mults))


def search(record):
    """Per task: start at 1/3x, 1x, 3x; while the best validation loss is at an end of the rates
    tried and a rate lies beyond it in `WIDER`, try that one too (`eleventh_suite.search`, one
    step each way). (test losses, mean first runs)."""
    val, test = _runs(record, WIDER)
    index, runs = E.search(val, centre=2, max_steps=1)
    return test[index, np.arange(test.shape[1])], float(np.mean(runs))


def with_picks(cells, records):
    """`cells` with a row per pick added; {pick: mean first runs per task over the cells}."""
    runs = {}
    for name, cell in cells.items():
        losses = cell["per_task_test_loss"]
        for row, (loss, n) in {
            "shipped": fixed_pick(records[name], SHIPPED),
            "wider": fixed_pick(records[name], WIDER),
            "search": search(records[name]),
        }.items():
            losses[row] = loss.tolist()
            runs.setdefault(row, []).append(n)
    # The shipped pick read off the stored runs is the stored picked row, task for task.
    for name, cell in cells.items():
        np.testing.assert_allclose(
            cell["per_task_test_loss"]["shipped"], records[name]["per_task_test_loss"][X.PICKED]
        )
    return cells, {row: float(np.mean(n)) for row, n in runs.items()}


def collections():
    """{title: (cells with the picks' rows, mean first runs per pick)}."""
    tenth = json.load(open(X.OUT))["cells"]
    unseen = json.load(open(UT.OUT))["cells"]
    return {
        "the tenth suite (7 cells; it decided the shipped pick)": with_picks(
            A._suite(X.OUT)[0], tenth
        ),
        "the 13 unseen cells (they shaped v1-v4)": with_picks(UT.merged(), unseen),
    }


def main():
    readings = {}
    for title, (cells, runs) in collections().items():
        print(f"\n{title}: each pick over each row [95 %]\n")
        print("| pick | first runs per task | " + " | ".join(OVER) + " |")
        print("| --- | --- |" + " --- |" * len(OVER))
        readings[title] = {}
        for label, row in PICKS.items():
            ratios = {k: A._ratio(cells, row, v) if v != row else None for k, v in OVER.items()}
            readings[title][label] = {"first_runs": runs[row], "over": ratios}
            shown = ["-" if v == row else A._fmt(ratios[k]) for k, v in OVER.items()]
            print(f"| {label} | {runs[row]:.2f} | " + " | ".join(shown) + " |")
        print(f"\nPer cell, the shipped pick over warmup+cosine tuned on each target ({title})\n")
        for name, cell in cells.items():
            r = PTab.pooled({name: cell}, "shipped", OVER["warmup+cosine tuned on each target"])
            print(f"| {name} | {A._fmt(r)} |")
        rest = {n: c for n, c in cells.items() if not n.startswith(HARD)}
        if len(rest) < len(cells):
            r = PTab.pooled(rest, "shipped", OVER["warmup+cosine tuned on each target"])
            print(
                f"| the {len(rest)} cells of neither {' nor '.join(HARD)}, pooled | {A._fmt(r)} |"
            )
    return readings


if __name__ == "__main__":
    main()
