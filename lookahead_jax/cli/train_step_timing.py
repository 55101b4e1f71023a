"""Whole train steps (forward, backward, optimizer) with and without Lookahead and the schedule.

Each step is jitted with params and optimizer state donated, on a fixed batch, and timed
interleaved with the others in rounds (see `timing.time_interleaved`). Models:

- the digits CNN of `lookahead-jax compare --model cnn`, batch 128 of 8x8 images;
- a ReLU MLP of 100 layers 64 wide (200 leaves, ~0.4M params), batch 128;
- a 4-layer causal Transformer language model (d=256, 4 heads, ~3.3M params) on 8 sequences of
  64 bytes of text shipped with Python (the source of its `argparse` module).

Variants: `optax.adamw`, `optax.clip_by_global_norm` before it (what reading the global gradient
norm costs, a reference for the schedule, which reads it too), `lj.lookahead(adamw)` (default
layout and per-param), the pretrained learned schedule around Adam, and Lookahead around it; plus
the forward and backward pass alone, so each table shows the optimizer's share of the step.
Every variant gets the loss as `value=`.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax.cli import timing

# Whole sync cycles of about 0.1 s per sample on 2 cores, so short steps are not timer noise.
STEPS_PER_ROUND = {"digits CNN": 40, "MLP 100x64 (200 leaves)": 20, "Transformer LM 4x256": 5}
HORIZON = 1000  # the pretrained schedule's horizon (only its t/T feature depends on it)


class TransformerLM(nn.Module):
    """A pre-LayerNorm causal Transformer over bytes (vocabulary 256)."""

    layers: int = 4
    dim: int = 256
    heads: int = 4
    length: int = 64

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = nn.Embed(256, self.dim)(tokens)
        x = x + self.param("position", nn.initializers.normal(0.02), (1, self.length, self.dim))
        mask = nn.make_causal_mask(tokens)
        for _ in range(self.layers):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(self.heads)(h, h, mask=mask)
            h = nn.LayerNorm()(x)
            x = x + nn.Dense(self.dim)(nn.gelu(nn.Dense(4 * self.dim)(h)))
        return nn.Dense(256)(nn.LayerNorm()(x))


def _models(seed: int = 0) -> dict[str, tuple[Any, Callable, Any]]:
    """name -> (params, loss(params, batch), batch)."""
    from lookahead_jax.cli.training import CNN
    from lookahead_jax.meta import MLP

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    models = {}

    def classifier(model, x, y):
        params = model.init(key, x)

        def loss(params, batch):
            logits = model.apply(params, batch[0])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

        return params, loss, (x, y)

    x = jnp.asarray(rng.uniform(0, 16, (128, 64)), jnp.float32)  # digits' range and shape
    y = jnp.asarray(rng.integers(0, 10, 128))
    models["digits CNN"] = classifier(CNN(num_classes=10), x, y)
    models["MLP 100x64 (200 leaves)"] = classifier(
        MLP(hidden=(64,) * 99, out=10, activation=nn.relu), x, y
    )

    text = np.frombuffer(inspect.getsource(__import__("argparse")).encode(), np.uint8)
    lm = TransformerLM()
    starts = rng.integers(0, len(text) - lm.length - 1, 8)
    window = np.stack([text[s : s + lm.length + 1] for s in starts]).astype(np.int32)
    tokens, targets = jnp.asarray(window[:, :-1]), jnp.asarray(window[:, 1:])
    lm_params = lm.init(key, tokens)

    def lm_loss(params, batch):
        logits = lm.apply(params, batch[0])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

    models["Transformer LM 4x256"] = (lm_params, lm_loss, (tokens, targets))
    return models


def _variants() -> dict[str, optax.GradientTransformationExtraArgs]:
    from lookahead_jax.learned_schedule import learned_schedule
    from lookahead_jax.lookahead import lookahead
    from lookahead_jax.pretrained import pretrained_schedule

    adamw = optax.adamw(timing.LR, weight_decay=1e-2)
    schedule = lambda: learned_schedule(optax.adam(1.0), *pretrained_schedule(HORIZON))
    k = timing.SYNC_PERIOD
    return {
        "optax.adamw": optax.with_extra_args_support(adamw),
        # A reference for what reading the global gradient norm costs (as the schedule does):
        # optax's own clipping, at a bound never reached, so its numbers are adamw's.
        "clip_by_global_norm+adamw": optax.with_extra_args_support(
            optax.chain(optax.clip_by_global_norm(1e9), adamw)
        ),
        "lj.lookahead(adamw)": lookahead(adamw, k),
        "lj.lookahead(adamw, tree)": lookahead(adamw, k, slow_layout="tree"),
        "learned_schedule(adam)": schedule(),
        "lj.lookahead(learned_schedule(adam))": lookahead(schedule(), k),
    }


def _step(tx: optax.GradientTransformationExtraArgs, loss: Callable) -> Callable:
    def step(params, state, batch):
        value, grads = jax.value_and_grad(loss)(params, batch)
        updates, state = tx.update(grads, state, params, value=value)
        return optax.apply_updates(params, updates), state

    return step


class _StepRunner:
    def __init__(self, tx, params, loss, batch):
        params = jax.tree.map(jnp.copy, params)
        self.carry, self.batch = (params, tx.init(params)), batch
        # Compiled once, here: its memory analysis and its calls are the same executable.
        jitted = jax.jit(_step(tx, loss), donate_argnums=(0, 1))
        self.step = jitted.lower(*self.carry, batch).compile()
        self.temp_bytes = self.step.memory_analysis().temp_size_in_bytes

    def __call__(self, steps: int) -> None:
        p, s = self.carry
        for _ in range(steps):
            p, s = self.step(p, s, self.batch)
        self.carry = jax.block_until_ready((p, s))


def _with_value(tx, value):
    """`tx` as a plain transformation whose every update receives the loss `value=value`."""
    return optax.GradientTransformation(tx.init, functools.partial(tx.update, value=value))


class _GradRunner:
    """The forward and backward pass alone (the gradients are returned, as a step reads them)."""

    def __init__(self, params, loss, batch):
        self.params, self.batch = params, batch
        self.fn = jax.jit(jax.value_and_grad(loss)).lower(params, batch).compile()
        self.temp_bytes = self.fn.memory_analysis().temp_size_in_bytes

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            out = self.fn(self.params, self.batch)
        jax.block_until_ready(out)


def train_step_suite(
    rounds: int = 15, models: tuple[str, ...] | None = None
) -> tuple[list[timing.Row], list[str]]:
    """Whole-train-step medians, ratios to `optax.adamw`'s step, and compiled temporaries.

    The ratio of each row is the median over rounds of its time over `optax.adamw`'s in the same
    round; the notes give the 25th-75th percentiles of those ratios.

    Args:
      rounds: interleaved timing rounds per model.
      models: the names of the models to time (keys of `STEPS_PER_ROUND`); default all.

    Returns:
      (rows, notes): the table, and one line per model with its size, the optimizer's share of
      the step and each variant's compiled temporary memory.
    """
    rows, notes = [], []
    unknown = set(models or ()) - set(STEPS_PER_ROUND)
    if unknown:
        raise ValueError(f"train_step_suite: unknown models {sorted(unknown)}")
    for name, (params, loss, batch) in _models().items():
        if models and name not in models:
            continue
        runners: dict[str, Any] = {"forward+backward only": _GradRunner(params, loss, batch)}
        runners |= {v: _StepRunner(tx, params, loss, batch) for v, tx in _variants().items()}
        # The optimizer alone, timed in the same rounds: its differences are small and steady,
        # where those of whole steps drown in the forward and backward pass's noise.
        # The gradients are arguments of the update-only step (timing.JaxRunner), not constants
        # XLA would embed in the program.
        value, grads = runners["forward+backward only"].fn(params, batch)
        updates_only = {
            f"{v} (update only)": timing.JaxRunner(_with_value(tx, value), params, grads)
            for v, tx in _variants().items()
        }
        times = timing.time_rounds(runners | updates_only, rounds, STEPS_PER_ROUND[name])
        update_times = {v: np.asarray(times.pop(v)) for v in updates_only}
        medians = {v: float(np.median(ts)) for v, ts in times.items()}
        spreads = []
        for variant, t in medians.items():
            base = None if variant == "optax.adamw" else "optax.adamw"
            ratio = float(np.median(timing.round_ratios(times, variant, "optax.adamw")))
            rows.append(timing.Row(name, variant, t * 1e3, ratio, base))
            if base and variant != "forward+backward only":
                lo, hi = timing.ratio_spread(times, variant, base)
                spreads.append(f"{variant} {lo:.3f}-{hi:.3f}")
        size = sum(x.size for x in jax.tree.leaves(params))
        whole = medians["optax.adamw"]
        base_times = update_times.pop("optax.adamw (update only)")
        base_update = float(np.median(base_times))
        # Paired per round, as the whole-step ratios: the median of each round's difference.
        added = "; ".join(
            f"{v.removesuffix(' (update only)')} "
            f"{100 * float(np.median(t - base_times)) / whole:+.1f} %"
            for v, t in update_times.items()
        )
        temps = ", ".join(f"{v} {r.temp_bytes / 2**20:.2f}" for v, r in runners.items())
        notes += [
            f"{name}: {size / 1e6:.2f}M params in {len(jax.tree.leaves(params))} leaves; adamw's "
            f"update is {base_update / whole:.1%} of its train step",
            f"{name}: added to adamw's train step, from the update-only steps ((update - adamw's "
            f"update) / adamw's whole step): {added}",
            f"{name}: per-round whole-step ratios to adamw, 25th-75th percentile: "
            + "; ".join(spreads),
            f"{name}: compiled temporaries (MiB): {temps}",
        ]
    return rows, notes
