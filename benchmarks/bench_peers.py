"""Our Lookahead step beside timm's and pytorch-optimizer's, optax.flatten, and the bandwidth limit.

The same shapes as `bench_lookahead.py` (~10M params in 40 leaves, ~1M in 200), AdamW and SGD with
momentum, sync period 5, torch and XLA with the same thread count (the CPU count), timed
interleaved in one run. Each peer's trajectory is checked equal to ours in float64 first. The
"of BW" column is the bytes each step must move (AdamW: 4 reads + 3 writes of f32 per param;
Lookahead adds a read and a write of the slow copy per sync) over its time, as a fraction of the
bandwidth a STREAM-like triad measured in the same run. The harness is
`lookahead_jax.cli.peer_timing` (also behind `lookahead-jax bench --suites peers`).

Peers are benchmark-only extras, never dependencies of the library:
    pip install -e ".[bench]" && pip install --no-deps timm
(`import timm` needs torchvision, which would pull another torch: the benchmark loads timm's
`optim/lookahead.py` file directly.) A peer that is not installed is skipped and named.

Run:  python benchmarks/bench_peers.py            (~4 minutes on 2 cores)
      python benchmarks/bench_peers.py --quick    (fewer rounds)
"""

import argparse
import json
import os

# torch's OpenMP threads sleep between calls instead of spinning, so they do not steal the cores
# from the XLA step timed next (set before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lookahead_jax.cli import peer_timing, timing

RESULTS = os.path.join(os.path.dirname(__file__), "results", "bench_peers.json")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    print(timing.environment(), flush=True)
    rows, notes = peer_timing.peers_suite(rounds=5 if args.quick else 11)
    print(timing.format_table(rows))
    print("\n".join(notes))
    if not args.quick:
        with open(RESULTS, "w") as f:
            report = {"environment": timing.environment(), "notes": notes}
            json.dump({**report, "rows": [r._asdict() for r in rows]}, f, indent=1)
