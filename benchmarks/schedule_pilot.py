"""A pilot for a candidate schedule: does it transfer better than the first protocol's seeds?

Protocol, fixed before any number of it was seen:

- Candidate: a schedule meta-trained by `benchmarks/pretrained_train.py --out DIR` with one
  change to the first protocol (v1) (the same mixture, base rate and objective), seeds 0-2 (a pilot:
  the first protocol has 5; seeds 3-4 of the long-training candidate were trained after its
  1x pilot had been seen). Candidates so far: the alignment feature (`--alignment`,
  `results/pretrained_alignment`); 4x the meta-steps and 4x the validation tasks
  (`--meta-steps 1200 --validation-tasks 32 --validate-every 60`, `results/pretrained_long`);
  the long protocol's trajectories with snapshots and seeds selected on three families held out
  from meta-training and from the unseen suite (`--validation-families`,
  `results/pretrained_heldout_selection`, run after `benchmarks/selection_check.py` had found
  that their loss ranks the stored seeds by transfer, so its figures are not a clean held-out
  estimate: the check itself looked at these cells); the wider mixture (`--wider`,
  `results/pretrained_wider`, shipped as v3) and the same at 5H (`--wider --horizon-mult 5`,
  `results/pretrained_wider_5x`, shipped as v4), whose ship rules are fixed in
  `pretrained_train.py`. Each candidate is also compared, paired, with the schedule shipped
  when the cells were last refreshed ("pretrained (horizon given)").
- Cells: the seven unseen 1x cells of `benchmarks/pretrained_tables.py` (horizon H = 200, given),
  on the same 50 held-out tasks; with `--cells all` also its six 5x and 10x cells (added after
  the first two pilots had been seen at 1x; the horizon is given to the schedules there too, as
  in the stored rows). The baselines' per-task test losses are read from that run's results
  (`benchmarks/results/pretrained/unseen_*.json`), not recomputed; in every cell the first
  protocol's lowest-numbered seed is recomputed first and must reproduce its stored losses, so
  the cells are the same tasks.
- Figures: per seed, the geometric mean over the cells of per-task test-loss ratios
  candidate / baseline with its bootstrap 95 % interval (the protocol's aggregate), against
  every stored baseline and against the first protocol's seed of the same number (paired).

Run:  python benchmarks/pretrained_train.py --alignment --seeds 0,1,2 \\
          --out benchmarks/results/pretrained_alignment
      python benchmarks/schedule_pilot.py --candidate benchmarks/results/pretrained_alignment
      python benchmarks/pretrained_train.py --seeds 0,1,2,3,4 --meta-steps 1200 \\
          --validation-tasks 32 --validate-every 60 --out benchmarks/results/pretrained_long
      python benchmarks/schedule_pilot.py --candidate benchmarks/results/pretrained_long \\
          --cells all
      python benchmarks/schedule_pilot.py \\
          --candidate benchmarks/results/pretrained_heldout_selection --cells all
      python benchmarks/schedule_pilot.py --candidate benchmarks/results/pretrained_wider \\
          --cells all
      python benchmarks/schedule_pilot.py --candidate benchmarks/results/pretrained_wider_5x \\
          --cells all
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import pretrained_tables as PTab
import pretrained_train as T
import protocol_tables as PT

import lookahead_jax as lj
from lookahead_jax import meta
from lookahead_jax.meta import protocol as P

SHIPPED = "pretrained (horizon given)"


def _v1(losses, s):
    """The stored row of the first protocol's seed `s` ("v1 "-prefixed once v2 was shipped)."""
    name = f"seed {s} (horizon given)"
    return f"v1 {name}" if f"v1 {name}" in losses else name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", required=True, help="a pretrained_train.py --out folder")
    parser.add_argument("--heldout", type=int, default=50)
    parser.add_argument(
        "--cells",
        choices=["1x", "all"],
        default="1x",
        help="the seven 1x cells, or all thirteen (5x and 10x too)",
    )
    args = parser.parse_args()
    stored = json.load(open(os.path.join(T.RESULTS, "unseen_1x.json")))["result"]
    if args.cells == "all":
        stored |= json.load(open(os.path.join(T.RESULTS, "unseen_long.json")))["result"]
    cand_schedule, cand = T.load_seeds(args.candidate)
    ref_schedule, ref = T.load_seeds(T.RESULTS, alignment=False)
    if not cand:
        sys.exit(f"no candidate seeds in {args.candidate}: run pretrained_train.py --out there")
    keys = meta.task_keys(PT.HELDOUT_ROOT, args.heldout)
    cells = {}
    for cell, data in stored.items():
        family = PT.FAMILIES[cell.split(" @ ")[0]]()
        losses = dict(data["per_task_test_loss"])
        horizon = int(data["horizon"])  # the schedules are told it, as the stored rows were
        for s in cand:
            if s == min(cand):  # the same tasks: a stored seed reproduces its stored losses
                m = P.final_metrics(
                    family,
                    lj.learned_schedule(T.INNER, ref_schedule.clone(horizon=horizon), ref[s]),
                    keys,
                    horizon,
                )
                PTab.require_same_tasks(
                    m.test_loss,
                    losses[_v1(losses, s)],
                    f"{cell}: seed {s} does not reproduce its stored losses",
                )
            m = P.final_metrics(
                family,
                lj.learned_schedule(T.INNER, cand_schedule.clone(horizon=horizon), cand[s]),
                keys,
                horizon,
            )
            losses[f"candidate seed {s}"] = m.test_loss.tolist()
        cells[cell] = {"per_task_test_loss": losses, "initial_loss": data["initial_loss"]}
        print(
            f"{cell}: mean test loss "
            + ", ".join(
                f"seed {s} {np.mean(losses[_v1(losses, s)]):.4f} -> "
                f"{np.mean(losses[f'candidate seed {s}']):.4f}"
                for s in cand
            ),
            flush=True,
        )
    baselines = [b for b in stored[next(iter(stored))]["tuning"]]
    print(
        f"\nGeometric mean over the {len(cells)} unseen cells of per-task test-loss ratios, "
        "candidate seed / baseline [bootstrap 95 % CI]\n"
    )
    print("| baseline | " + " | ".join(f"candidate seed {s}" for s in cand) + " |")
    print("| --- |" + " --- |" * len(cand))
    rows = {}
    same = "the first protocol's (v1) same seed"
    # The shipped schedules, current ("pretrained ...") and earlier ("v1 pretrained ...", ...).
    shipped = [k for k in cells[next(iter(cells))]["per_task_test_loss"] if k.endswith(SHIPPED)]
    for b in [same, *shipped, *baselines]:
        row = []
        for s in cand:
            base = _v1(cells[next(iter(cells))]["per_task_test_loss"], s) if b == same else b
            g, (lo, hi) = PTab.pooled(cells, f"candidate seed {s}", base)
            row.append(f"{g:.3f} [{lo:.3f}, {hi:.3f}]")
            rows.setdefault(b, {})[s] = [g, lo, hi]
        label = (
            f"the shipped schedule ({lj.pretrained_info()['trained_in']})" if b == SHIPPED else b
        )
        print(f"| {label} | " + " | ".join(row) + " |")
    json.dump(
        {"pooled": rows, "cells": cells},
        open(os.path.join(args.candidate, f"pilot_{args.cells}.json"), "w"),
    )


if __name__ == "__main__":
    main()
