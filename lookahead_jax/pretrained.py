"""`pretrained_schedule`: the shipped, meta-trained `LSTMSchedule` for Adam, with its params.

The params (a few KB) ship in the package (`lookahead_jax/_data/`); how they were trained is in
`benchmarks/pretrained_train.py`, and what they are worth, measured on families they never saw, in
the README's evidence section (`benchmarks/pretrained_tables.py`).
"""

import importlib.resources
import json
from typing import Any

import flax.serialization
import jax

from lookahead_jax import checks
from lookahead_jax.lstm_schedule import LSTMSchedule

_NAME = "pretrained_adam_v6"


def _read(suffix: str) -> bytes:
    return importlib.resources.files("lookahead_jax").joinpath("_data", _NAME + suffix).read_bytes()


def pretrained_info() -> dict[str, Any]:
    """How the shipped schedule was meta-trained: families, horizon, base rate, seed, steps."""
    return json.loads(_read(".json"))


def pretrained_schedule(
    horizon: int | None = None, *, base_lr: float | None = None
) -> tuple[LSTMSchedule, Any]:
    """The shipped meta-trained schedule for a unit-rate Adam, and its params.

    Meta-trained once on a mixture of task families (small MLP classifiers and a regression,
    with every task's rate randomly 0.3x-3x off and its gradients unchanged, so it learns to
    correct a mis-set base rate from how training goes),
    to minimise each task's held-out loss after training. Pass the number of training steps as
    ``horizon`` when you know it (the schedule then reads its progress t/T); with ``None`` it
    runs without (it was meta-trained both ways).

    Args:
      horizon: the number of training steps, or None if unknown.
      base_lr: the schedule's base rate (default `pretrained_info()["base_lr"]`: the rate it
        was meta-trained with, times the multiple calibrated on held-out families); its rates
        stay within 0.01x-10x of it.

    Returns:
      ``(schedule, params)``, to pass to `learned_schedule` around ``optax.adam(1.0)`` (or
      inside `lookahead`).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import lookahead_jax as lj
      >>> tx = lj.learned_schedule(
      ...     optax.adam(1.0), *lj.pretrained_schedule(horizon=1000))
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.ones(3)}
      >>> updates, state = tx.update(grads, state, params, value=jnp.float32(1.0))
      >>> float(lj.current_learning_rate(state)) > 0
      True
    """
    if horizon is not None:
        horizon = checks.integer("pretrained_schedule", "horizon", horizon, 1)
    info = pretrained_info()
    if base_lr is None:
        base_lr = info["base_lr"]
    base_lr = checks.positive_finite("pretrained_schedule", "base_lr", base_lr)
    schedule = LSTMSchedule(
        base_lr=base_lr,
        hidden_size=info["hidden_size"],
        progress_features=True,
        horizon=horizon,
    )
    template = schedule.init_params(jax.random.key(0))
    return schedule, flax.serialization.from_bytes(template, _read(".msgpack"))
