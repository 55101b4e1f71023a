"""The shipped schedule against every suite's main rows, one table over the suites (13, 17).

Reads the stored per-task test losses of the suites (nothing is recomputed):

- the 13 unseen cells (`pretrained_tables.py`: `results/pretrained/unseen_{1x,long}.json`, with
  `wider_rows.json` and the `--table v5` / `--table v6` rows);
- the fresh suite (`fresh_suite_check.py`: `results/pretrained_wider_5x/fresh_suite.json`);
- the third (`untouched_suite.py`), fourth, fifth, sixth and seventh suites (`results/*.json`);
- the eighth (`eighth_suite.py`), the ninth (`ninth_suite.py`), the tenth (`tenth_suite.py`) and
  the eleventh (`eleventh_suite.py`), once each has run.

For each suite: the geometric mean over its cells of the per-task test-loss ratios subject /
row, with a bootstrap 95 % interval (`pretrained_tables.pooled`), for v5 and v6 at their
default rates against each other and against the rows a user would pick instead; and the
number of cells whose largest change of mean test loss over 0.3x-3x of the default rate is
under 10 % (issue 17's sensitivity goal), where those rows were run. A suite that decided a
version is marked: its column is not a clean estimate of that version.

The seeds of v6's protocol (`sixth_suite.py --seeds` adds their rows) get a table of their own:
each seed over v6 and over v5 on every suite where their rows were run; and, with v5's protocol's
seeds, both protocols at v6's default rate over v5's pick at that rate.

Run:  python benchmarks/across_suites.py           (seconds; the tables from the stored files)
      python benchmarks/across_suites.py --seeds   (the seeds' tables only)
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import fifth_suite as F5
import pretrained_tables as PTab
import pretrained_train as T
import sixth_suite as S
import untouched_suite as U

HERE = os.path.dirname(__file__)
RESULTS = os.path.join(HERE, "results")
EIGHTH = os.path.join(RESULTS, "eighth_suite.json")  # `eighth_suite.py`'s, once it has run
NINTH = os.path.join(RESULTS, "ninth_suite.json")  # `ninth_suite.py`'s, once it has run
TENTH = os.path.join(RESULTS, "tenth_suite.json")  # `tenth_suite.py`'s, once it has run
ELEVENTH = os.path.join(RESULTS, "eleventh_suite.json")  # `eleventh_suite.py`'s

# Canonical row -> its name in the suites' files (the unseen cells' and the fresh suite's
# learned rows are named differently; the baselines are named alike everywhere).
ROWS = [
    "v5",
    "v6",
    U.V5_AT_V6_RATE,
    "warmup+cosine (target-tuned)",
    "warmup+cosine (tuned on the wider mixture)",
    "warmup+linear (tuned on the wider mixture)",
    "adam 1e-3",
    "schedule_free_adamw (defaults)",
    "schedule_free_adamw (calibrated on the wider mixture)",
]
OTHER_TUNING_FREE = [
    f"{name} ({how})"
    for name in ("prodigy", "dadapt_adamw", "mechanize(adam)")
    for how in ("defaults", "calibrated on mixture", "calibrated on the wider mixture")
]
# Which suite decided which version (its column is not a clean estimate of it).
DECIDED = {"fifth": "v5", "sixth": "v6", "seventh": "v6"}


def _unseen():
    cells = {}
    for tag in ("_1x", "_long"):
        cells |= json.load(open(os.path.join(RESULTS, "pretrained", f"unseen{tag}.json")))["result"]
    extra = {}
    for name in ("wider_rows", "v5", "v6"):
        path = os.path.join(RESULTS, "pretrained", f"{name}.json")
        if os.path.exists(path):
            for cell, rows in json.load(open(path))["result"].items():
                extra.setdefault(cell, {}).update(rows)
    names = {"v5": "v5 (horizon given)", "v6": "v6 (horizon given)"}
    sens = {v: (f"{v} at 0.3x (horizon given)", f"{v} at 3x (horizon given)") for v in names}
    return _cells(cells, extra), names, sens


def _cells(cells, extra=None):
    out = {}
    for cell, stored in cells.items():
        losses = dict(stored["per_task_test_loss"]) | (extra or {}).get(cell, {})
        out[cell] = {"per_task_test_loss": losses, "initial_loss": stored["initial_loss"]}
    return out


def _suite(path, v5_name=U.V5, v6_name=U.V6):
    cells = json.load(open(path))["cells"]
    names = {"v5": v5_name, "v6": v6_name}
    sens = {v: tuple(n + s for s in U.SENSITIVITY) for v, n in names.items()}
    return _cells(cells), names, sens


LATER = {
    "eighth": EIGHTH,
    "ninth": NINTH,
    "tenth": TENTH,
    "eleventh": ELEVENTH,
}  # suites that joined after v6 shipped


def suites():
    """{suite: (cells, {version: row name}, {version: (0.3x row, 3x row)})}."""
    fresh = json.load(open(os.path.join(RESULTS, "pretrained_wider_5x", "fresh_suite.json")))
    return {
        "13 unseen": _unseen(),
        "fresh": (_cells(fresh["cells"]), {"v5": "v5 (shipped)", "v6": "v6 (shipped)"}, {}),
        "third": _suite(os.path.join(RESULTS, "untouched_suite.json")),
        "fourth": _suite(os.path.join(RESULTS, "fourth_suite.json")),
        "fifth": _suite(F5.OUT, F5.candidate_name()),  # v5 was its candidate
        "sixth": _suite(S.SIXTH.out, v6_name=S.candidate_name()),
        "seventh": _suite(S.SEVENTH.out, v6_name=S.candidate_name()),
    } | {name: _suite(path) for name, path in LATER.items() if os.path.exists(path)}


def _ratio(cells, subject, row):
    have = all(
        subject in c["per_task_test_loss"] and row in c["per_task_test_loss"]
        for c in cells.values()
    )
    if not have:
        return None
    return PTab.pooled(cells, subject, row)


def _fmt(r):
    return "(not run)" if r is None else f"{r[0]:.3f} [{r[1][0]:.3f}, {r[1][1]:.3f}]"


def sensitivity_counts(cells, rows):
    """Cells whose largest change of mean test loss over 0.3x-3x of the rate is under 10 %."""
    if not rows or not all(r in c["per_task_test_loss"] for c in cells.values() for r in rows[1]):
        return None
    one, (low, high) = rows
    under = 0
    for c in cells.values():
        losses = c["per_task_test_loss"]
        base = np.mean(losses[one])
        change = max(abs(np.mean(losses[r]) / base - 1) for r in (low, high))
        under += int(change < 0.10)
    return under, len(cells)


def sensitivity_table(data):
    """Per suite and learned row: cells under 10 % and the sensitivity score, where its 0.3x
    and 3x rows were run."""
    print("\nBase-rate sensitivity: cells whose mean test loss changes under 10 % over 0.3x-3x")
    print("of the row's rate; in brackets the sensitivity score (lower: less sensitive)\n")
    print("| row | " + " | ".join(data) + " |")
    print("| --- |" + " --- |" * len(data))
    table = {}
    for subject in ("v6", "v5", U.V5_AT_V6_RATE):
        txt = []
        for suite, (cells, names, sens) in data.items():
            one = names.get(subject, subject)
            rows = sens.get(subject, tuple(one + s for s in U.SENSITIVITY))
            have = all(r in c["per_task_test_loss"] for c in cells.values() for r in (one, *rows))
            if not have:
                txt.append("(not run)")
                continue
            under, n = sensitivity_counts(cells, (one, rows))
            score = S.sensitivity_score(cells, one, rows)
            table.setdefault(subject, {})[suite] = [under, n, score]
            txt.append(f"{under} of {n} ({score:.3f})")
        print(f"| {subject} | " + " | ".join(txt) + " |")
    return table


def _seed_rows(folder, name):
    """(the rule's pick, {seed: its row name}) for the seeds trained in `folder`; the pick's row
    is None, since each table names it as it is stored."""
    pick = T.rule_pick(folder)["seed"]
    return pick, {k: None if k == pick else name.format(k) for k in sorted(T.load_seeds(folder)[1])}


def _with_rows(data, rows):
    """The suites of `data` whose every cell has each of `rows`."""
    return {
        suite: d
        for suite, d in data.items()
        if all(r in c["per_task_test_loss"] for c in d[0].values() for r in rows if r)
    }


def seed_table(data):
    """Each seed of v6's protocol over v6 and over v5 on every suite that has their rows, and
    how many seeds are level with or better than v5 there (the 95 % interval's upper end below
    1.01, the ship rule's clause). Returns {suite: {seed: [over v6, over v5]}}."""
    pick, rows = _seed_rows(S.CANDIDATE, S.SEED_ROW)
    data = _with_rows(data, rows.values())
    out = {}
    for ref in ("v6", "v5"):
        print(f"\nEach seed of v6's protocol at v6's default rate / {ref} (seed {pick} is v6):")
        print("geometric mean over each suite's cells of per-task test-loss ratios [95 %]\n")
        heads = [s + (" (decided v6)" if DECIDED.get(s) == "v6" else "") for s in data]
        print("| seed | " + " | ".join(heads) + " |")
        print("| --- |" + " --- |" * len(data))
        for k, row in rows.items():
            txt = []
            for suite, (cells, names, _) in data.items():
                r = _ratio(cells, row or names["v6"], names[ref])
                out.setdefault(suite, {}).setdefault(k, []).append(r)
                txt.append(_fmt(r))
            print(f"| {k}{' (v6)' if k == pick else ''} | " + " | ".join(txt) + " |")
    level = [sum(r[1][1][1] < 1.01 for r in out[suite].values()) for suite in data]
    counts = " | ".join(f"{n} of {len(rows)}" for n in level)
    print(f"| seeds level with v5 or better (upper end below 1.01) | {counts} |")
    return out


def protocol_table(data):
    """Every seed of v6's and of v5's protocols at v6's default rate over v5's pick at that rate
    (`U.V5_AT_V6_RATE`), and each protocol's geometric mean over its seeds' ratios, on the suites
    in `data` that have the v5 seeds' rows. Returns {row: {suite: ratio}}."""
    seeds = {"v6": _seed_rows(S.CANDIDATE, S.SEED_ROW), "v5": _seed_rows(T.V5_SEEDS, S.V5_SEED_ROW)}
    data = _with_rows(data, seeds["v5"][1].values())
    print("\nBoth protocols' seeds at v6's default rate / v5's pick at that rate: geometric mean")
    print("over each suite's cells of per-task test-loss ratios [95 %]\n")
    print("| seed | " + " | ".join(data) + " |")
    print("| --- |" + " --- |" * len(data))
    out = {}
    for version, (pick, rows) in seeds.items():
        logs = {suite: [] for suite in data}
        for k, row in rows.items():
            label = f"{version}'s protocol, seed {k}" + (" (the pick)" if k == pick else "")
            txt = []
            for suite, (cells, names, _) in data.items():
                picked = names["v6"] if version == "v6" else U.V5_AT_V6_RATE
                r = _ratio(cells, row or picked, U.V5_AT_V6_RATE)
                out.setdefault(label, {})[suite] = r
                logs[suite].append(np.log(r[0]))
                txt.append(_fmt(r))
            print(f"| {label} | " + " | ".join(txt) + " |")
        mean = {suite: float(np.exp(np.mean(v))) for suite, v in logs.items()}
        out[f"{version}'s protocol, geometric mean over its seeds"] = mean
        cells = " | ".join(f"{g:.3f}" for g in mean.values())
        print(f"| {version}'s protocol, geometric mean over its {len(rows)} seeds | {cells} |")
    return out


def version_table(data, subject):
    """Prints `subject` ("v5" or "v6") at its default rate over each row, per suite, with the
    other tuning-free rows' range and the sensitivity counts; returns {row: {suite: ratio}}."""
    print(f"\n{subject} at its default rate / each row: geometric mean over each suite's cells")
    print("of per-task test-loss ratios [bootstrap 95 %] (< 1: it is better)\n")
    heads = [s + (" (decided it)" if DECIDED.get(s) == subject else "") for s in data]
    print("| row | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(data))
    table = {}
    for row in [r for r in ROWS if r != subject]:
        txt = []
        for suite, (cells, names, _) in data.items():
            r = _ratio(cells, names[subject], names.get(row, row))
            table.setdefault(row, {})[suite] = r
            txt.append(_fmt(r))
        print(f"| {row} | " + " | ".join(txt) + " |")
    txt = []
    for cells, names, _ in data.values():
        gs = [_ratio(cells, names[subject], r) for r in OTHER_TUNING_FREE]
        gs = [g[0] for g in gs if g is not None]
        txt.append(f"{min(gs):.2f}-{max(gs):.2f}" if gs else "(not run)")
    print(
        "| Prodigy, D-Adaptation, Mechanic: defaults and calibrated (range) | "
        + " | ".join(txt)
        + " |"
    )
    txt = []
    for cells, names, sens in data.values():
        c = sensitivity_counts(cells, (names[subject], sens[subject]) if subject in sens else None)
        txt.append("(not run)" if c is None else f"{c[0]} of {c[1]}")
    print("| cells under 10 % over 0.3x-3x of its rate | " + " | ".join(txt) + " |")
    return table


def main():
    data = suites()
    if "--seeds" in sys.argv:
        return seed_table(data), protocol_table(data)
    out = {subject: version_table(data, subject) for subject in ("v6", "v5")}
    out["sensitivity"] = sensitivity_table(data)
    out["seeds"] = seed_table(data)
    out["protocols at equal rates"] = protocol_table(data)
    json.dump(
        {"protocol": __doc__, "tables": out},
        open(os.path.join(RESULTS, "across_suites.json"), "w"),
        indent=1,
    )


if __name__ == "__main__":
    main()
