"""Whole train steps (forward, backward, optimizer) with Lookahead and the learned schedule.

The digits CNN, a 200-leaf MLP and a 4-layer Transformer language model; `optax.adamw`,
`lj.lookahead(adamw)` in both layouts, `learned_schedule(adam)` with the pretrained schedule and
Lookahead around it; jitted and donated, timed interleaved in one run. Each row is a ratio to
`optax.adamw`'s step; the notes give the optimizer's share of the step, the spread of the per-round
ratios and the compiled temporary memory of every step. The harness is
`lookahead_jax.cli.train_step_timing` (also behind `lookahead-jax bench --suites train-steps`).

Run:  python benchmarks/bench_train_steps.py            (~3 minutes on 2 cores)
      python benchmarks/bench_train_steps.py --quick    (fewer rounds)
      python benchmarks/bench_train_steps.py --models "MLP 100x64 (200 leaves)" --rounds 45
"""

import argparse
import json
import os

from lookahead_jax.cli import timing, train_step_timing

RESULTS = os.path.join(os.path.dirname(__file__), "results", "bench_train_steps.json")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--models", nargs="+", choices=list(train_step_timing.STEPS_PER_ROUND), help="default all"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 15, 3 quick)")
    args = parser.parse_args()
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    print(timing.environment(), flush=True)
    rounds = args.rounds or (3 if args.quick else 15)
    rows, notes = train_step_timing.train_step_suite(rounds, args.models)
    print(timing.format_table(rows))
    print("\n".join(notes))
    if not args.quick and not args.models and args.rounds is None:
        with open(RESULTS, "w") as f:
            report = {"environment": timing.environment(), "notes": notes}
            json.dump({**report, "rows": [r._asdict() for r in rows]}, f, indent=1)
