"""Evaluating schedules: per-task loss curves of any transformation on a task family."""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax.learned_schedule import current_learning_rate, learned_schedule
from lookahead_jax.meta.tasks import TaskFamily
from lookahead_jax.meta.unroll import fresh_state, inner_step


class EvalResult(NamedTuple):
    """Per-task curves from `evaluate`."""

    full_losses: np.ndarray  # shape=(num_tasks, horizon + 1): full train loss before each step
    batch_losses: np.ndarray  # shape=(num_tasks, horizon): minibatch loss at each step
    lrs: np.ndarray  # shape=(num_tasks, horizon): rate used at each step (NaN if unknown)


def loss_curves(
    family: TaskFamily,
    tx: optax.GradientTransformation,
    task_keys: jax.Array,
    horizon: int,
    *,
    init: optax.Params | None = None,
    lr_of_state: Callable[[optax.OptState], jax.Array] | None = None,
) -> EvalResult:
    """Trains each task with `tx` for `horizon` steps and returns per-task loss curves.

    Traceable (jit or vmap it, e.g. over a grid of learning rates); `evaluate` is the jitted
    version returning NumPy arrays.

    Args:
      family: task key -> `Task`.
      tx: any optax transformation (it receives ``value=loss``); e.g.
        ``learned_schedule(inner, schedule, meta_params["schedule"])`` or a baseline.
      task_keys: a batch of task keys (leading axis); tasks are trained in parallel with vmap.
      horizon: steps per task.
      init: initial params shared by all tasks (e.g. ``meta_params["init"]``); default each
        task's own ``init_params``.
      lr_of_state: reads the rate from the optimizer state; default `current_learning_rate` when
        the state holds a `learned_schedule`, else the rates are NaN.

    Returns:
      An `EvalResult` (JAX arrays).
    """
    tx = optax.with_extra_args_support(tx)

    def one(task_key):
        state = fresh_state(family, tx, task_key, init)
        task = family(task_key)
        base = inner_step(task, tx, first_order=False)
        read_lr = lr_of_state
        if read_lr is None:  # decided at trace time, from the state's structure
            try:
                current_learning_rate(state.opt_state)
                read_lr = current_learning_rate
            except ValueError:
                read_lr = lambda _: jnp.asarray(jnp.nan, jnp.float32)

        def step(carry, key):
            (params, opt_state), loss = base(carry, key)
            return (params, opt_state), (loss, task.full_loss(carry[0]), read_lr(opt_state))

        (params, _), (losses, full, lrs) = jax.lax.scan(
            step, (state.params, state.opt_state), jax.random.split(state.key, horizon)
        )
        full = jnp.concatenate([full, task.full_loss(params)[None]])
        return full, losses, lrs

    full, losses, lrs = jax.vmap(one)(task_keys)
    return EvalResult(full, losses, lrs)


def evaluate(
    family: TaskFamily,
    tx: optax.GradientTransformation,
    task_keys: jax.Array,
    horizon: int,
    *,
    init: optax.Params | None = None,
    lr_of_state: Callable[[optax.OptState], jax.Array] | None = None,
) -> EvalResult:
    """`loss_curves`, jitted, with the curves as NumPy arrays.

    Example:
      >>> import jax, optax
      >>> from lookahead_jax import LSTMSchedule, learned_schedule, meta
      >>> schedule = LSTMSchedule(base_lr=1.0)
      >>> tx = learned_schedule(optax.sgd(1.0), schedule, schedule.init_params(jax.random.key(0)))
      >>> keys = jax.random.split(jax.random.key(1), 3)
      >>> curves = meta.evaluate(meta.quadratic_family(), tx, keys, horizon=50)
      >>> curves.full_losses.shape, curves.lrs.shape
      ((3, 51), (3, 50))
    """
    run = jax.jit(
        lambda keys, init: loss_curves(
            family, tx, keys, horizon, init=init, lr_of_state=lr_of_state
        )
    )
    return EvalResult(*(np.asarray(x) for x in run(task_keys, init)))


def task_keys(root: int, n: int) -> jax.Array:
    """`n` task keys from a PRNG root (`TUNE_ROOT`, `HELDOUT_ROOT`, ...): disjoint task sets."""
    return jax.random.split(jax.random.key(root), n)


def mean_final(x):
    """Mean final loss over tasks, a diverged (non-finite) task counting as +inf."""
    # A diverged task counts as +inf, so a rate that diverges anywhere is never picked.
    x = np.where(np.isfinite(x), x, np.inf)
    return float(np.mean(x))


def baseline_tx(inner, lr, horizon, cosine):
    """`inner` scaled by a constant rate `lr`, or by a cosine decay from `lr` over `horizon`."""
    schedule = optax.cosine_decay_schedule(lr, horizon) if cosine else (lambda t: lr)
    return optax.chain(inner, optax.scale_by_schedule(schedule))


def tune(family, inner, grid, keys, horizon):
    """Best constant rate and best cosine peak (by mean final loss on the tuning tasks)."""
    means = {}
    for cosine in (False, True):

        def finals(lr, cosine=cosine):
            tx = baseline_tx(inner, lr, horizon, cosine)
            return loss_curves(family, tx, keys, horizon).full_losses[:, -1]

        # One compilation for the whole grid (the rate is traced).
        f = jax.jit(lambda g: jax.lax.map(finals, g))(jnp.asarray(grid, jnp.float32))
        means[cosine] = [mean_final(row) for row in np.asarray(f)]
    const, cos = means[False], means[True]
    return float(grid[int(np.argmin(const))]), float(grid[int(np.argmin(cos))]), const, cos


def stats(x):
    """Mean and standard error of the mean of at least 2 values."""
    x = np.asarray(x, np.float64)
    if x.size < 2:
        raise ValueError(f"stats: a standard error needs at least 2 values, got {x.size}")
    return {"mean": float(np.mean(x)), "se": float(np.std(x, ddof=1) / np.sqrt(len(x)))}


def compare(family, inner, grid, horizon, schedule, schedule_params, tune_keys, heldout_keys):
    """Tunes baselines at `horizon` on `tune_keys` and evaluates all methods on `heldout_keys`.

    0.1's coarse comparison (a constant and a no-warmup cosine tuned on a log grid, judged on the
    final *training* loss), kept for its callers. It is weak evidence: use
    `lookahead_jax.meta.protocol.run`, which tunes warmup + decay schedules on checked grids and
    judges test loss per task with bootstrap intervals.
    """
    lr_c, lr_cos, const_curve, cos_curve = tune(family, inner, grid, tune_keys, horizon)
    keys = heldout_keys
    n_heldout = len(heldout_keys)
    methods = {
        "learned": learned_schedule(inner, schedule, schedule_params),
        "untrained": learned_schedule(inner, schedule, schedule.init_params(jax.random.key(0))),
        "best_constant": baseline_tx(inner, lr_c, horizon, cosine=False),
        "cosine": baseline_tx(inner, lr_cos, horizon, cosine=True),
    }
    evals = {name: evaluate(family, tx, keys, horizon) for name, tx in methods.items()}
    final = {name: ev.full_losses[:, -1] for name, ev in evals.items()}
    out = {
        "horizon": horizon,
        "num_heldout_tasks": n_heldout,
        "grid": [float(g) for g in grid],
        "tuning_mean_final_constant": const_curve,
        "tuning_mean_final_cosine": cos_curve,
        "best_constant_lr": lr_c,
        "best_cosine_peak": lr_cos,
        "final_loss": {name: stats(v) for name, v in final.items()},
        "final_loss_median": {name: float(np.median(v)) for name, v in final.items()},
    }
    for base in ("best_constant", "cosine", "untrained"):
        diff = final["learned"] - final[base]
        d = stats(diff)
        se_unpaired = float(
            np.hypot(out["final_loss"]["learned"]["se"], out["final_loss"][base]["se"])
        )
        out[f"learned_minus_{base}"] = {
            **d,
            "paired_beats_by_2se": bool(d["mean"] < -2 * d["se"]),
            "unpaired_se": se_unpaired,
            "unpaired_beats_by_2se": bool(d["mean"] < -2 * se_unpaired),
            "tasks_won": int(np.sum(diff < 0)),
        }
    lrs = {
        "learned": evals["learned"].lrs,
        "best_constant": np.full((1, horizon), lr_c),
        "cosine": np.asarray(optax.cosine_decay_schedule(lr_cos, horizon)(np.arange(horizon)))[
            None
        ],
    }
    curves = {name: ev.full_losses for name, ev in evals.items()}
    return out, lrs, curves
