"""Step time of our `adamw` and `sgd` against optax's and against torch.optim on the same CPU.

Jitted, donated JAX steps (update + `optax.apply_updates`) and torch `optimizer.step()` on params
whose `.grad` is set, on ~10M params in 40 leaves and ~1M params in 200 leaves, timed interleaved
in one run; medians and ratios. The harness is `lookahead_jax.cli.timing` (also behind
`lookahead-jax bench`).

Run:  python benchmarks/bench_optimizers.py            (~2 minutes on 2 cores)
      python benchmarks/bench_optimizers.py --quick    (fewer rounds)
      python benchmarks/bench_optimizers.py --torch-threads 2
"""

import argparse

import optax

from lookahead_jax.cli import timing as bench
from lookahead_jax.optimizers import adamw

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared 2-core machine torch's OpenMP "
        "threads spin against XLA's and other processes)",
    )
    args = parser.parse_args()
    import torch  # the benchmark's reference; never a dependency of the library

    print(f"{bench.environment()}, torch {torch.__version__} ({args.torch_threads} thread(s))")
    rows = bench.optimizers_suite(rounds=5 if args.quick else 15, torch_threads=args.torch_threads)
    print(bench.format_table(rows))
    params = bench.make_tree(*bench.SHAPES["1M params / 200 leaves"], 0)
    print(
        "\ncompiled temp bytes (1M/200 leaves): "
        f"lj.adamw {bench.temp_bytes(adamw(bench.LR), params)}, "
        f"optax.adamw {bench.temp_bytes(optax.adamw(bench.LR, weight_decay=1e-2), params)}"
    )
