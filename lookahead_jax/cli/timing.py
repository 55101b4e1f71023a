"""Optimizer step-time benchmarks: the harness behind `lookahead-jax bench` and `benchmarks/`.

Every JAX step is jitted with params and optimizer state donated and computes update +
`optax.apply_updates`, as a training step does; a torch step (when torch is installed; it is never
a dependency) is `optimizer.step()` on params whose `.grad` is set. All variants of one table are
timed in one run, interleaved in rounds so that machine noise hits each alike, and the table
reports medians and ratios against a baseline measured in that same run.
"""

import statistics
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

# label -> (leaf count, leaf shape): ~10M params in 40 leaves, ~1M params in 200 leaves.
SHAPES = {
    "10M params / 40 leaves": (40, (500, 500)),
    "1M params / 200 leaves": (200, (50, 100)),
}
SYNC_PERIOD = 5
LR = 1e-3


class Row(NamedTuple):
    """One line of a benchmark table."""

    shape: str
    variant: str
    median_ms: float
    ratio: float | None  # median / the baseline's median, measured in the same run
    baseline: str | None
    bandwidth: float | None = None  # bytes the step must move / time, over the measured bandwidth


def make_tree(n_leaves: int, shape: tuple[int, ...], seed: int) -> dict[str, jax.Array]:
    """A dict of `n_leaves` float32 normal arrays of `shape`."""
    keys = jax.random.split(jax.random.key(seed), n_leaves)
    return {f"w{i:03d}": jax.random.normal(k, shape, jnp.float32) for i, k in enumerate(keys)}


def train_step(tx: optax.GradientTransformation) -> Callable:
    """params, state, grads -> new params, new state: what a training step does with `tx`."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def temp_bytes(tx: optax.GradientTransformation, params: optax.Params) -> int:
    """Temporary memory (bytes) of the compiled, donated training step."""
    lowered = jax.jit(train_step(tx), donate_argnums=(0, 1)).lower(params, tx.init(params), params)
    return lowered.compile().memory_analysis().temp_size_in_bytes


class JaxRunner:
    """Runs a jitted, donated step of `tx`; `init` may build params of another form."""

    def __init__(self, tx, params, grads, wrap_params: Callable | None = None):
        self.step = jax.jit(train_step(tx), donate_argnums=(0, 1))
        params = jax.tree.map(jnp.copy, params)  # our own buffers: they get donated
        params = wrap_params(params) if wrap_params else params
        self.carry = (params, tx.init(params))
        self.grads = grads

    def __call__(self, steps: int) -> None:
        p, s = self.carry
        for _ in range(steps):
            p, s = self.step(p, s, self.grads)
        jax.block_until_ready((p, s))
        self.carry = (p, s)


class TorchRunner:
    """Runs `optimizer.step()` of a torch optimizer on copies of the params with fixed grads."""

    def __init__(self, make_optimizer, params, grads):
        import torch

        self.params = [torch.tensor(np.asarray(p), requires_grad=True) for p in params.values()]
        for p, g in zip(self.params, grads.values(), strict=True):
            p.grad = torch.tensor(np.asarray(g))
        self.optimizer = make_optimizer(self.params)

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            self.optimizer.step()


def time_rounds(
    runners: dict[str, Callable[[int], None]], rounds: int, steps_per_round: int
) -> dict[str, list[float]]:
    """Seconds per step of each runner in each of `rounds` interleaved rounds, after a warm-up."""
    for run in runners.values():
        run(steps_per_round)  # compile and warm up
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(steps_per_round)
            times[name].append((time.perf_counter() - t0) / steps_per_round)
    return times


def time_interleaved(
    runners: dict[str, Callable[[int], None]], rounds: int, steps_per_round: int
) -> dict[str, float]:
    """Median seconds per step of each runner, timed in interleaved rounds after a warm-up."""
    times = time_rounds(runners, rounds, steps_per_round)
    return {name: statistics.median(ts) for name, ts in times.items()}


def round_ratios(times: dict[str, list[float]], name: str, baseline: str) -> np.ndarray:
    """`name`'s time over `baseline`'s in each round (a pair shares the machine's state then)."""
    return np.asarray(times[name]) / np.asarray(times[baseline])


def ratio_spread(times: dict[str, list[float]], name: str, baseline: str) -> tuple[float, float]:
    """The 25th and 75th percentiles of `name`'s per-round time over `baseline`'s same round."""
    ratios = round_ratios(times, name, baseline)
    return float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))


def _rows(shape, medians, baselines) -> list[Row]:
    rows = []
    for name, t in medians.items():
        base = baselines.get(name)
        ratio = t / medians[base] if base in medians else None
        rows.append(Row(shape, name, t * 1e3, ratio, base if ratio is not None else None))
    return rows


def lookahead_suite(rounds: int = 21) -> list[Row]:
    """`lj.lookahead(adamw)` (default and per-param layouts), `optax.lookahead(adamw)` vs adamw."""
    from lookahead_jax.lookahead import lookahead

    inner = optax.adamw(LR)
    pair = lambda p: optax.LookaheadParams(fast=p, slow=jax.tree.map(jnp.copy, p))
    rows = []
    for label, (n_leaves, shape) in SHAPES.items():
        params, grads = make_tree(n_leaves, shape, 0), make_tree(n_leaves, shape, 1)
        runners = {
            "optax.adamw": JaxRunner(inner, params, grads),
            "lj.lookahead(adamw)": JaxRunner(lookahead(inner, SYNC_PERIOD), params, grads),
            "lj.lookahead(adamw, tree)": JaxRunner(
                lookahead(inner, SYNC_PERIOD, slow_layout="tree"), params, grads
            ),
            # Separate fast and slow buffers: init_synced aliases them, which donation rejects.
            "optax.lookahead(adamw)": JaxRunner(
                optax.lookahead(inner, SYNC_PERIOD, 0.5), params, grads, wrap_params=pair
            ),
        }
        # Whole sync cycles per sample, so each sample averages the same mix of step kinds.
        steps = SYNC_PERIOD * (2 if n_leaves <= 40 else 20)
        medians = time_interleaved(runners, rounds, steps)
        baselines = {
            "lj.lookahead(adamw)": "optax.adamw",
            "lj.lookahead(adamw, tree)": "optax.adamw",
            "optax.lookahead(adamw)": "optax.adamw",
        }
        rows += _rows(label, medians, baselines)
        for ours in ("lj.lookahead(adamw)", "lj.lookahead(adamw, tree)"):
            speedup = medians["optax.lookahead(adamw)"] / medians[ours]
            name = f"optax.lookahead / {ours.removeprefix('lj.')}"
            rows.append(Row(label, name, float("nan"), speedup, None))
    return rows


def optimizers_suite(
    rounds: int = 15, torch_variants: bool = True, torch_threads: int = 1
) -> list[Row]:
    """Our `adamw` and `sgd(momentum=0.9)` against optax's, and torch.optim's if installed.

    torch runs with `torch_threads` intra-op threads (default 1: on a small shared machine its
    OpenMP threads spin between calls and slow down whatever runs next, XLA included).
    """
    from lookahead_jax.optimizers import adamw, sgd

    jax_txs = {
        "optax.adamw": optax.adamw(LR, weight_decay=1e-2),
        "lj.adamw": adamw(LR, weight_decay=1e-2),
        "optax.sgd(m=0.9)": optax.sgd(LR, momentum=0.9),
        "lj.sgd(m=0.9)": sgd(LR, momentum=0.9),
    }
    torch_makers = {}
    if torch_variants:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(torch_threads)
            torch_makers = {
                "torch AdamW foreach": lambda ps: torch.optim.AdamW(ps, LR, foreach=True),
                "torch AdamW fused": lambda ps: torch.optim.AdamW(ps, LR, fused=True),
                "torch SGD foreach": lambda ps: torch.optim.SGD(ps, LR, momentum=0.9, foreach=True),
            }
    baselines = {"lj.adamw": "optax.adamw", "lj.sgd(m=0.9)": "optax.sgd(m=0.9)"}
    baselines |= {"torch AdamW foreach": "lj.adamw", "torch AdamW fused": "lj.adamw"}
    baselines["torch SGD foreach"] = "lj.sgd(m=0.9)"
    rows = []
    for label, (n_leaves, shape) in SHAPES.items():
        params, grads = make_tree(n_leaves, shape, 0), make_tree(n_leaves, shape, 1)
        runners: dict[str, Callable[[int], None]] = {
            name: JaxRunner(tx, params, grads) for name, tx in jax_txs.items()
        }
        runners |= {name: TorchRunner(m, params, grads) for name, m in torch_makers.items()}
        medians = time_interleaved(runners, rounds, 5 if n_leaves <= 40 else 20)
        rows += _rows(label, medians, baselines)
    return rows


def format_table(rows: Iterable[Row]) -> str:
    """A fixed-width text table of rows."""
    rows = list(rows)
    with_bw = any(r.bandwidth is not None for r in rows)
    header = f"{'shape':<24} {'variant':<42} {'median ms':>10} {'ratio':>7}  {'vs':<26}"
    header += f" {'of BW':>6}" if with_bw else ""
    lines = [header, "-" * len(header)]
    for r in rows:
        ms = "" if np.isnan(r.median_ms) else f"{r.median_ms:10.3f}"
        ratio = "" if r.ratio is None else f"{r.ratio:7.2f}"
        line = f"{r.shape:<24} {r.variant:<42} {ms:>10} {ratio:>7}  {r.baseline or '':<26}"
        if with_bw:
            line += "" if r.bandwidth is None else f" {r.bandwidth:6.0%}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def environment() -> str:
    """One line naming the versions and the device the numbers were measured on."""
    return (
        f"jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}, "
        f"{jax.devices()[0].device_kind}, float32, sync_period {SYNC_PERIOD}"
    )
