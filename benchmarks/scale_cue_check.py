"""Does a pretrained schedule read a mis-set rate from the gradient's scale? (issues 13, 17)

`meta.rate_scaled_family` as v1-v5 were meta-trained with sets each task's effective rate s
times off by reparameterising q = theta / s, which also multiplies the gradients by s; the
schedule reads the absolute gradient norm, so in meta-training it could tell s from it. A user
whose base rate is s times off gives no such cue. This check, fixed before its run, measures
the difference on the three validation families (`pretrained_train.VALIDATION_FAMILIES`, 32
tasks, PRNG root 3, horizon H given):

- "gradients scaled": the shipped v5 at its default rate on `rate_scaled_family(f, (s, s))`
  (the meta-training situation, the cue present);
- "base rate": v5 at s x its default rate on the family itself (a user's mis-set rate);
- "gradients kept": v5 at its default rate on `rate_scaled_family(f, (s, s),
  keep_gradients=True)`, whose test losses (divided by s there) are multiplied back: it must
  equal "base rate" up to rounding, the check that `keep_gradients=True` models a mis-set rate.

For s in 0.3 and 3, the mean test loss over that at s = 1 per family and mode. If v5 corrects
a mis-set rate when the gradient's scale reveals it and not otherwise, the "gradients scaled"
ratios are nearer 1 than the "base rate" ones. With `--candidate FOLDER` the rule's pick in
that folder at its meta-training rate is checked instead of v5.

Run:  python benchmarks/scale_cue_check.py     (~3 min on 2 cores)
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import pretrained_tables as PTab
import pretrained_train as T

import lookahead_jax as lj
from lookahead_jax import meta
from lookahead_jax.meta import protocol as P

HERE = os.path.dirname(__file__)
SCALES, NUM_TASKS = (0.3, 3.0), 32


def run(schedule_at, name):
    """{family: {mode: {s: mean test loss / that at s = 1}}} and the largest relative gap
    between "gradients kept" and "base rate"."""
    keys = meta.task_keys(T.VALID_ROOT, NUM_TASKS)
    table, gap = {}, 0.0
    for fam_name, make in T.VALIDATION_FAMILIES.items():
        family = make()
        score = lambda fam, m: (
            P.final_metrics(fam, lj.learned_schedule(T.INNER, *schedule_at(m)), keys, T.H).test_loss
        )
        one = float(np.mean(score(family, 1.0)))
        rows = {"gradients scaled": {}, "base rate": {}, "gradients kept": {}}
        for s in SCALES:
            scaled = meta.rate_scaled_family(family, (s, s))
            kept = meta.rate_scaled_family(family, (s, s), keep_gradients=True)
            base = np.asarray(score(family, s))
            kept_losses = np.asarray(score(kept, 1.0)) * s
            gap = max(gap, float(np.max(np.abs(kept_losses / base - 1))))
            rows["gradients scaled"][s] = float(np.mean(score(scaled, 1.0))) / one
            rows["base rate"][s] = float(np.mean(base)) / one
            rows["gradients kept"][s] = float(np.mean(kept_losses)) / one
        table[fam_name] = rows
        print(f"{fam_name}: done", flush=True)
    print(f"\n{name}: mean test loss with the rate s times off, over that at s = 1 (horizon H)\n")
    print("| family | mode | s = 0.3 | s = 3 |")
    print("| --- | --- | --- | --- |")
    for fam_name, rows in table.items():
        for mode, r in rows.items():
            print(f"| {fam_name} | {mode} | {r[0.3]:.3f} | {r[3.0]:.3f} |")
    print(f"\nlargest per-task gap, gradients kept / base rate - 1: {gap:.2e}")
    return table, gap


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", help="a folder of seeds: check its rule's pick")
    args = parser.parse_args()
    if args.candidate:
        seed = T.rule_pick(args.candidate)["seed"]
        name = f"{os.path.basename(args.candidate)} seed {seed}"
        at = lambda m: T.pick_at(args.candidate, T.H, m)
        out_name = f"scale_cue_check_{os.path.basename(args.candidate)}.json"
    else:
        name, at, out_name = "v5", lambda m: PTab.v5_at(T.H, m), "scale_cue_check.json"
    table, gap = run(at, name)
    out = {"protocol": __doc__, "subject": name, "table": table, "kept_vs_base_gap": gap}
    json.dump(out, open(os.path.join(HERE, "results", out_name), "w"), indent=1)


if __name__ == "__main__":
    main()
