"""Does a validation loss on held-out *families* rank meta-trained seeds by how they transfer?

The second pilot (README, "The pretrained schedule on problems it never saw") found that the
validation meta-loss on held-out tasks of the *training* families does not rank seeds by their
test loss on unseen families. `meta_train(validation_families=...)` can select on families left
out of meta-training instead. This checks, before any meta-training with it, whether such a loss
would have ranked the 13 schedules already trained and scored (the first protocol's 5 seeds, "v1",
shipped until this check; the long protocol's 5; the alignment candidate's 3).

Protocol, fixed before any number of it was computed:

- Validation families (in neither the training mixture nor the unseen suite; generated, so no
  data set is reused):
  - "small blobs": Gaussian blobs through a fixed tanh warp, 600 rows, 12 features, 4 classes,
    centres at scale 0.8 (overlapping), 120 training rows per task, batch 32, 32 tanh units (a
    small, noisy table that overfits, like wine and iris);
  - "wide blobs, relu": 1000 rows, 32 features, 3 classes, centres at scale 1.0, 300 training
    rows, batch 64, 64 relu units;
  - "sines, 2 frequencies": `meta.regression_family(num_frequencies=2, num_train=128,
    batch_size=32, noise=0.2, hidden=(64,))`, a variant of the sines regression (the training
    mixture has noise 0.1 with 4 frequencies, the unseen cell noise 0.3), named as such.
- Score of a seed: the mean over the families of the mean log test loss after H = 200 steps,
  horizon given, on 32 tasks per family (PRNG root 5). The same score on the training mixture
  (its three rate-scaled families, the meta-training distribution) is computed beside it.
- Transfer of a seed: the geometric mean over the unseen cells of its per-task test-loss ratios
  to warmup+cosine tuned on the target family (the stored per-task losses): over the seven 1x
  cells for all 13 seeds, and over all 13 cells for the 10 seeds scored there.
- Figures: Spearman's rank correlation between each score and the transfer, and the transfer of
  the seed each score would pick within each protocol's seeds.
- Decision, fixed here: meta-train with `validation_families` (a third pilot) only if the
  held-out-family score's correlation over the 13 seeds at 1x is at least 0.5 and above the
  training mixture's.

Run:  python benchmarks/selection_check.py        (~15 min on 2 cores)
"""

import json
import os
import sys

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, os.path.dirname(__file__))
import pretrained_tables as PTab
import pretrained_train as T

import lookahead_jax as lj
from lookahead_jax import meta
from lookahead_jax.meta import protocol as P

HERE = os.path.dirname(__file__)
ROOT, NUM_TASKS = 5, 32
TARGET = "warmup+cosine (target-tuned)"
GROUPS = {
    "v1": (T.RESULTS, "v1 seed {s} (horizon given)"),
    "long": (os.path.join(HERE, "results", "pretrained_long"), "candidate seed {s}"),
    "alignment": (os.path.join(HERE, "results", "pretrained_alignment"), "alignment seed {s}"),
}


def score(schedule, params, families):
    """Mean over families of the mean log test loss after H steps (horizon given)."""
    keys = meta.task_keys(ROOT, NUM_TASKS)
    tx = lj.learned_schedule(T.INNER, schedule.clone(horizon=T.H), params)
    logs = [np.mean(np.log(P.final_metrics(f, tx, keys, T.H).test_loss)) for f in families]
    return float(np.mean(logs)), [float(v) for v in logs]


def transfer(group, seed, cells):
    _, name = GROUPS[group]
    return PTab.pooled(cells, name.format(s=seed), TARGET)[0]


def stored_cells(group, which):
    """The per-task losses of every cell scored for `group`, at 1x or at all horizons."""
    if group == "v1":
        out = json.load(open(os.path.join(T.RESULTS, "unseen_1x.json")))["result"]
        if which == "all":
            out |= json.load(open(os.path.join(T.RESULTS, "unseen_long.json")))["result"]
        return out
    # A pilot scored at all horizons holds the 1x cells too (and every seed it scored).
    names = ["pilot_all.json"] if which == "all" else ["pilot_all.json", "pilot_1x.json"]
    paths = [os.path.join(GROUPS[group][0], n) for n in names]
    paths = [p for p in paths if os.path.exists(p)]
    if not paths:
        return None
    cells = json.load(open(paths[0]))["cells"]
    return {c: v for c, v in cells.items() if which == "all" or c.endswith("@ 1x")}


def _picks(group_rows, group):
    """A table row: the transfer of the seed each score picks, and of the best and worst."""
    t = "transfer_all" if group_rows[0]["transfer_all"] is not None else "transfer_1x"
    by = lambda key: min(group_rows, key=lambda r: r[key])
    cell = lambda r: f"seed {r['seed']}: {r[t]:.3f}"
    best, worst = min(group_rows, key=lambda r: r[t]), max(group_rows, key=lambda r: r[t])
    return (
        f"| {group} ({t}) | {cell(by('held_out_families'))} | {cell(by('mixture'))} | "
        f"{cell(best)} | {cell(worst)} |"
    )


def main():
    held_out = [make() for make in T.VALIDATION_FAMILIES.values()]
    mixture = T.mixture()
    rows, partial = [], os.path.join(HERE, "results", "selection_check.partial.jsonl")
    cached = [json.loads(line) for line in open(partial)] if os.path.exists(partial) else []
    for group, (results, _) in GROUPS.items():
        schedule, params = T.load_seeds(results)
        cells_1x, cells_all = stored_cells(group, "1x"), stored_cells(group, "all")
        for s, p in params.items():
            row = {"group": group, "seed": s}
            done = [r for r in cached if r["group"] == group and r["seed"] == s]
            if done:  # the scores of an interrupted run (they depend only on the params)
                row |= {k: done[0][k] for k in ("held_out_families", "per_family", "mixture")}
            else:
                row["held_out_families"], row["per_family"] = score(schedule, p, held_out)
                row["mixture"], _ = score(schedule, p, mixture)
            row["transfer_1x"] = transfer(group, s, cells_1x)
            row["transfer_all"] = None if cells_all is None else transfer(group, s, cells_all)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not done:
                with open(partial, "a") as f:
                    f.write(json.dumps(row) + "\n")
    out = {"protocol": __doc__, "rows": rows}
    print("\n| score | Spearman vs transfer, 13 seeds, 1x cells | 10 seeds, all 13 cells |")
    print("| --- | --- | --- |")
    for key, label in (("held_out_families", "held-out families"), ("mixture", "training mixture")):
        r1 = spearmanr([r[key] for r in rows], [r["transfer_1x"] for r in rows])
        both = [r for r in rows if r["transfer_all"] is not None]
        r2 = spearmanr([r[key] for r in both], [r["transfer_all"] for r in both])
        out[f"spearman_{key}"] = {"1x": [r1.statistic, r1.pvalue], "all": [r2.statistic, r2.pvalue]}
        print(
            f"| {label} | {r1.statistic:.2f} (p {r1.pvalue:.2g}) | "
            f"{r2.statistic:.2f} (p {r2.pvalue:.2g}) |"
        )
    print("\n| protocol | picked by held-out families | picked by mixture | best | worst |")
    print("| --- | --- | --- | --- | --- |")
    for group in GROUPS:
        print(_picks([r for r in rows if r["group"] == group], group))
    json.dump(out, open(os.path.join(HERE, "results", "selection_check.json"), "w"), indent=1)
    os.remove(partial)


if __name__ == "__main__":
    main()
