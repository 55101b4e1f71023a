"""Step time of our `adamw` and `sgd` against optax's and against torch.optim on the same CPU.

Each JAX step is jitted with params and optimizer state donated and computes update +
`optax.apply_updates`, as a training step does; each torch step is `optimizer.step()` on params
whose `.grad` is set (in place, as torch trains). All timings are taken in one run, interleaved in
rounds so that machine noise hits every variant alike; the table shows medians and ratios.

Run:  python benchmarks/bench_optimizers.py            (both shapes, ~2 minutes on 2 cores)
      python benchmarks/bench_optimizers.py --quick    (fewer rounds, no torch fused)
      python benchmarks/bench_optimizers.py --torch-threads 2
"""

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax.optimizers import adamw, sgd

# name -> (leaf count, leaf shape): ~10M params in 40 leaves, ~1M params in 200 leaves.
SHAPES = {
    "10M params / 40 leaves": (40, (500, 500)),
    "1M params / 200 leaves": (200, (50, 100)),
}
LR = 1e-3


def make_tree(n_leaves: int, shape: tuple[int, ...], seed: int) -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(seed), n_leaves)
    return {f"w{i:03d}": jax.random.normal(k, shape, jnp.float32) for i, k in enumerate(keys)}


def plain_step(tx: optax.GradientTransformation) -> Callable:
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def jax_variants() -> dict[str, optax.GradientTransformation]:
    return {
        "optax.adamw": optax.adamw(LR, weight_decay=1e-2),
        "lj.adamw": adamw(LR, weight_decay=1e-2),
        "optax.sgd(m=0.9)": optax.sgd(LR, momentum=0.9),
        "lj.sgd(m=0.9)": sgd(LR, momentum=0.9),
    }


class JaxRunner:
    def __init__(self, tx, params, grads):
        self.step = jax.jit(plain_step(tx), donate_argnums=(0, 1))
        params = jax.tree.map(jnp.copy, params)
        self.carry = (params, tx.init(params))
        self.grads = grads

    def __call__(self, steps: int) -> None:
        p, s = self.carry
        for _ in range(steps):
            p, s = self.step(p, s, self.grads)
        jax.block_until_ready((p, s))
        self.carry = (p, s)


class TorchRunner:
    def __init__(self, make_optimizer, params, grads):
        import torch  # only the benchmark needs torch

        self.params = [torch.tensor(np.asarray(p), requires_grad=True) for p in params.values()]
        for p, g in zip(self.params, grads.values(), strict=True):
            p.grad = torch.tensor(np.asarray(g))
        self.optimizer = make_optimizer(self.params)

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            self.optimizer.step()


def torch_variants(quick: bool) -> dict[str, Callable]:
    import torch

    out = {
        "torch AdamW foreach": lambda ps: torch.optim.AdamW(ps, LR, foreach=True),
        "torch SGD foreach": lambda ps: torch.optim.SGD(ps, LR, momentum=0.9, foreach=True),
    }
    if not quick:
        out["torch AdamW fused"] = lambda ps: torch.optim.AdamW(ps, LR, fused=True)
    return out


def run_shape(n_leaves, shape, rounds, steps_per_round, quick):
    params, grads = make_tree(n_leaves, shape, 0), make_tree(n_leaves, shape, 1)
    runners = {name: JaxRunner(tx, params, grads) for name, tx in jax_variants().items()}
    for name, make in torch_variants(quick).items():
        runners[name] = TorchRunner(make, params, grads)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # compile and warm up
        run(3)
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(steps_per_round)
            times[name].append((time.perf_counter() - t0) / steps_per_round)
    return {name: statistics.median(ts) for name, ts in times.items()}


def temp_bytes(tx, params) -> int:
    lowered = jax.jit(plain_step(tx), donate_argnums=(0, 1)).lower(params, tx.init(params), params)
    return lowered.compile().memory_analysis().temp_size_in_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no torch fused")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared 2-core machine torch's OpenMP "
        "threads spin against XLA's and other processes, and foreach steps slow down ~4x)",
    )
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    import torch  # only the benchmark needs torch

    torch.set_num_threads(args.torch_threads)
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), backend {jax.default_backend()}, float32"
    )
    baseline = {"lj.adamw": "optax.adamw", "lj.sgd(m=0.9)": "optax.sgd(m=0.9)"}
    baseline |= {name: "lj.adamw" for name in ("torch AdamW foreach", "torch AdamW fused")}
    baseline["torch SGD foreach"] = "lj.sgd(m=0.9)"
    header = f"{'shape':<24} {'variant':<22} {'median ms':>10} {'ratio':>7}  {'vs':<16}"
    print(header)
    print("-" * len(header))
    for label, (n_leaves, shape) in SHAPES.items():
        steps = 5 if n_leaves <= 40 else 20
        med = run_shape(n_leaves, shape, rounds, steps, args.quick)
        for name, t in med.items():
            base = baseline.get(name)
            ratio = f"{t / med[base]:7.2f}  {base:<16}" if base else ""
            print(f"{label:<24} {name:<22} {t * 1e3:10.3f} {ratio}")
    params = make_tree(*SHAPES["1M params / 200 leaves"], 0)
    print(
        "\ncompiled temp bytes (1M/200 leaves): "
        f"lj.adamw {temp_bytes(adamw(LR), params)}, "
        f"optax.adamw {temp_bytes(optax.adamw(LR, weight_decay=1e-2), params)}"
    )


if __name__ == "__main__":
    main()
