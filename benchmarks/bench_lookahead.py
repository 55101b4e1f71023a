"""Step time of `lookahead(adamw)` against `optax.adamw` alone and `optax.lookahead(adamw)`.

Jitted, donated steps (update + `optax.apply_updates`) on ~10M params in 40 leaves and ~1M params
in 200 leaves, sync period 5, timed interleaved in one run; medians and ratios. The harness is
`lookahead_jax.cli.timing` (also behind `lookahead-jax bench`).

Run:  python benchmarks/bench_lookahead.py            (~1 minute on 2 cores)
      python benchmarks/bench_lookahead.py --quick    (fewer rounds)
"""

import argparse

from lookahead_jax.cli import timing as bench
from lookahead_jax.lookahead import lookahead

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    print(bench.environment())
    print(bench.format_table(bench.lookahead_suite(rounds=7 if args.quick else 21)))
    import optax

    params = bench.make_tree(*bench.SHAPES["1M params / 200 leaves"], 0)
    inner = optax.adamw(bench.LR)
    print(
        "\ncompiled temp bytes (1M/200 leaves): "
        f"optax.adamw {bench.temp_bytes(inner, params)}, "
        f"lj.lookahead(adamw) {bench.temp_bytes(lookahead(inner), params)}, "
        f"lj.lookahead(adamw, tree) {bench.temp_bytes(lookahead(inner, slow_layout='tree'), params)}"  # noqa: E501
    )
