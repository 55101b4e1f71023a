"""Meta-trains the digits `LSTMSchedule` for the evaluation protocol: fixed meta-steps, 5 seeds.

Each seed tunes the constant rate (the schedule's base_lr) on the tuning tasks, meta-trains for a
fixed number of meta-steps (not wall-clock, so the result does not depend on the machine's load)
and keeps the meta-params of the best validation meta-loss (validation tasks, never held-out
ones): that selection rule is fixed before any held-out table is computed. Writes
`benchmarks/results/protocol/digits_seed{S}.msgpack` and `.json` (steps, wall time, inner steps).
`benchmarks/protocol_tables.py` evaluates them.

Run:  python benchmarks/protocol_train.py                      (5 seeds x 400 meta-steps, ~25 min)
      python benchmarks/protocol_train.py --seeds 0 --meta-steps 20   (a pilot)
"""

import argparse
import json
import os
import time

import flax.serialization
import numpy as np

from lookahead_jax.cli.experiment import META_LR, meta_train_family

RESULTS = os.path.join(os.path.dirname(__file__), "results", "protocol")
HORIZON, NUM_TASKS, N_TUNE, GRID = 200, 8, 32, np.logspace(-4, -0.5, 10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--meta-steps", type=int, default=400)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        schedule, result = meta_train_family(
            "digits",
            None,
            HORIZON,
            None,
            NUM_TASKS,
            META_LR["digits"],
            seed,
            GRID,
            N_TUNE,
            "final_loss",
            num_meta_steps=args.meta_steps,
        )
        stem = os.path.join(args.out, f"digits_seed{seed}")
        with open(stem + ".msgpack", "wb") as f:
            f.write(flax.serialization.to_bytes(result.meta_params["schedule"]))
        best = int(result.validation[np.argmin(result.validation[:, 1]), 0])
        meta = {
            "seed": seed,
            "base_lr": schedule.base_lr,
            "meta_steps": len(result.history),
            "best_validation_step": best,
            "validation": result.validation.tolist(),
            "meta_train_wall_s": result.wall_time_s,
            "total_wall_s": time.perf_counter() - t0,
            # Inner training steps spent: meta-training plus tuning the base rate.
            "inner_steps_meta_train": len(result.history) * NUM_TASKS * HORIZON,
            "inner_steps_tune_base_lr": len(GRID) * N_TUNE * HORIZON,
            "horizon": HORIZON,
            "num_tasks": NUM_TASKS,
            "objective": "final_loss",
        }
        with open(stem + ".json", "w") as f:
            json.dump(meta, f, indent=1)
        print(f"seed {seed}: {meta['meta_steps']} meta-steps, best at {best}", flush=True)


if __name__ == "__main__":
    main()
