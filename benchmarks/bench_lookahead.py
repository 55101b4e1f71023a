"""Step time of `lookahead(adamw)` against `optax.adamw` alone and `optax.lookahead(adamw)`.

Each step is jitted with params and optimizer state donated, and computes update +
`optax.apply_updates`, as a training step does. All timings are taken in one run, interleaved in
rounds so that machine noise hits every variant alike; the table shows medians and ratios.

Run:  python benchmarks/bench_lookahead.py            (both shapes, ~1 minute on 2 cores)
      python benchmarks/bench_lookahead.py --quick    (fewer repeats)
"""

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

import lookahead_jax as lj

# name -> (leaf count, leaf shape): ~10M params in 40 leaves, ~1M params in 200 leaves.
SHAPES = {
    "10M params / 40 leaves": (40, (500, 500)),
    "1M params / 200 leaves": (200, (50, 100)),
}
SYNC_PERIOD = 5


def make_tree(n_leaves: int, shape: tuple[int, ...], seed: int) -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(seed), n_leaves)
    return {f"w{i:03d}": jax.random.normal(k, shape, jnp.float32) for i, k in enumerate(keys)}


def plain_step(tx: optax.GradientTransformation) -> Callable:
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def optax_lookahead_setup(inner, params):
    tx = optax.lookahead(inner, sync_period=SYNC_PERIOD, slow_step_size=0.5)
    # Two separate buffers: init_synced aliases them, which donation rejects.
    pair = optax.LookaheadParams(fast=params, slow=jax.tree.map(jnp.copy, params))
    return tx, pair


def variants(params):
    """Returns name -> (jitted donated step, initial params, initial state)."""
    inner = optax.adamw(1e-3)
    out = {}
    for name, tx in [("optax.adamw", inner), ("lj.lookahead(adamw)", lj.lookahead(inner))]:
        p = jax.tree.map(jnp.copy, params)
        out[name] = (jax.jit(plain_step(tx), donate_argnums=(0, 1)), p, tx.init(p))
    tx, pair = optax_lookahead_setup(inner, jax.tree.map(jnp.copy, params))
    out["optax.lookahead(adamw)"] = (
        jax.jit(plain_step(tx), donate_argnums=(0, 1)),
        pair,
        tx.init(pair),
    )
    return out


def run_shape(n_leaves, shape, rounds, steps_per_round):
    params = make_tree(n_leaves, shape, 0)
    grads = make_tree(n_leaves, shape, 1)
    runs = variants(params)
    carries = {name: (p, s) for name, (_, p, s) in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, (step, _, _) in runs.items():  # compile and warm up
        for _ in range(SYNC_PERIOD):
            carries[name] = step(*carries[name], grads)
        jax.block_until_ready(carries[name])
    for _ in range(rounds):
        for name, (step, _, _) in runs.items():
            p, s = carries[name]
            # A multiple of the sync period, so each sample averages the same mix of step kinds.
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                p, s = step(p, s, grads)
            jax.block_until_ready((p, s))
            times[name].append((time.perf_counter() - t0) / steps_per_round)
            carries[name] = (p, s)
    return {name: statistics.median(ts) for name, ts in times.items()}


def temp_bytes(tx, params) -> int:
    state = tx.init(params)
    compiled = jax.jit(plain_step(tx), donate_argnums=(0, 1)).lower(params, state, params)
    return compiled.compile().memory_analysis().temp_size_in_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 7 if args.quick else 21
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}, "
        f"devices {jax.devices()}, sync_period {SYNC_PERIOD}"
    )
    header = (
        f"{'shape':<24} {'variant':<24} {'median ms':>10} {'/ adamw':>8} {'optax.la / ours':>16}"
    )
    print(header)
    print("-" * len(header))
    for label, (n_leaves, shape) in SHAPES.items():
        steps = SYNC_PERIOD * (2 if n_leaves <= 40 else 20)
        med = run_shape(n_leaves, shape, rounds, steps)
        base, ours = med["optax.adamw"], med["lj.lookahead(adamw)"]
        for name, t in med.items():
            speedup = (
                f"{med['optax.lookahead(adamw)'] / ours:16.2f}" if name.startswith("lj") else ""
            )
            print(f"{label:<24} {name:<24} {t * 1e3:10.3f} {t / base:8.2f} {speedup}")
    params = make_tree(*SHAPES["1M params / 200 leaves"], 0)
    inner = optax.adamw(1e-3)
    print(
        "\ncompiled temp bytes (1M/200 leaves): "
        f"adamw {temp_bytes(inner, params)}, "
        f"lookahead(adamw) {temp_bytes(lj.lookahead(inner), params)}"
    )


if __name__ == "__main__":
    main()
