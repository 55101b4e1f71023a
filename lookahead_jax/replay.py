"""`replay_schedule`: an optimizer run at a recorded sequence of rates, one per step.

The second run of the two-run recipe: a learned schedule that reads a validation loss chooses a
rate at each step of a first run with some training rows held out (recorded with
`current_learning_rate`; the recipe makes that run at a few multiples of the base rate,
`search_base_rate`, and keeps the one that ends with the lowest held-out loss), then the same
unit-rate inner optimizer trains again on all the rows, from the same initial params, at those
rates. Also the ablation of a learned schedule that reads nothing: replay its mean rate curve.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def replay_schedule(
    inner: optax.GradientTransformation, learning_rates: Any
) -> optax.GradientTransformation:
    """`inner`'s updates times ``learning_rates[t]`` at step ``t`` (the last one past the end).

    The rates are per step, so run the second run for as many steps as the first (count steps,
    not epochs: with every row an epoch has more batches); past the recorded rates the last one
    is held.

    Args:
      inner: the unit-rate optimizer the rates were chosen for, e.g. ``optax.adam(1.0)`` around
        which the schedule ran (`learned_schedule` scales its updates the same way).
      learning_rates: a non-empty 1-d array of finite, non-negative rates, step 0 first (inside
        a trace, e.g. under `jax.vmap` over tasks, the values are not checked).

    Returns:
      An `optax.GradientTransformation` (its state counts the steps).

    Raises:
      ValueError: if `learning_rates` is not a non-empty 1-d array, or (where its values are
        known) holds a negative or non-finite rate.

    The example is the recommended two runs: the rates are picked with 20 % of the rows held
    out, at the base rates `search_base_rate` tries; the run that ends with the lowest held-out
    loss is kept and replayed on all the rows.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np, optax
      >>> import lookahead_jax as lj
      >>> x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
      >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
      >>> loss = lambda w, rows: jnp.mean((x[rows] @ w - y[rows]) ** 2)
      >>> fit, held_out, every = np.arange(80), np.arange(80, 100), np.arange(100)
      >>> def first_run(base_lr):  # the schedule reads the held-out loss; rates recorded
      ...     tx = lj.learned_schedule(optax.adam(1.0), *lj.pretrained_schedule(
      ...         horizon=50, base_lr=base_lr, validation=True))
      ...     @jax.jit
      ...     def step(w, state):
      ...         value, grads = jax.value_and_grad(loss)(w, fit)
      ...         updates, state = tx.update(
      ...             grads, state, w, value=value, val_loss=loss(w, held_out))
      ...         return optax.apply_updates(w, updates), state
      ...     w, rates = jnp.zeros(3), []
      ...     state = tx.init(w)
      ...     for _ in range(50):
      ...         w, state = step(w, state)
      ...         rates.append(lj.current_learning_rate(state))
      ...     return float(loss(w, held_out)), jnp.stack(rates)
      >>> _, rates, tried = lj.search_base_rate(first_run)  # 1/3x, 1x, 3x, then further out
      >>> len(tried) >= 3
      True
      >>> replay = lj.replay_schedule(optax.adam(1.0), rates)
      >>> w2, state2 = jnp.zeros(3), None
      >>> state2 = replay.init(w2)
      >>> for _ in range(50):  # second run: all the rows, the kept run's rates
      ...     updates, state2 = replay.update(jax.grad(loss)(w2, every), state2, w2)
      ...     w2 = optax.apply_updates(w2, updates)
      >>> bool(loss(w2, every) < loss(jnp.zeros(3), every))
      True
    """
    lrs = jnp.asarray(learning_rates, jnp.float32)
    if lrs.ndim != 1 or lrs.shape[0] == 0:
        raise ValueError(
            f"replay_schedule: learning_rates must be a non-empty 1-d array, got shape {lrs.shape}"
        )
    if not isinstance(learning_rates, jax.core.Tracer):
        given = np.asarray(learning_rates, np.float64)  # the values as the user wrote them
        bad = np.flatnonzero(~(np.isfinite(given) & (given >= 0)))
        if bad.size:
            raise ValueError(
                "replay_schedule: learning_rates must be finite and >= 0, got "
                f"learning_rates[{bad[0]}]={given[bad[0]]}"
            )
    return optax.chain(
        inner, optax.scale_by_schedule(lambda t: lrs[jnp.minimum(t, lrs.shape[0] - 1)])
    )
