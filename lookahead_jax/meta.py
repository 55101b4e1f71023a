"""Meta-training a learned schedule by differentiating through training with `jax.grad`.

The inner loop is `learned_schedule(inner, schedule, meta_params["schedule"])`, the very
transformation users train with, run by a `jax.lax.scan` whose body is rematerialised
(`jax.checkpoint`): the backward pass stores only the scan carry (params and optimizer state) per
step and recomputes each step's activations, so memory grows with the params, not the batch.

Meta-params are a dict ``{"schedule": schedule_params}``, plus ``"init"`` (the task's initial
params, MAML-style) when ``learn_init=True``.

Long horizons are split into truncations of ``unroll_length`` steps (truncated backprop): each of
``num_tasks`` slots carries its task's params and optimizer state (schedule carry included) from
one truncation to the next, gradients stopping at the boundary; a slot that reaches the horizon
starts a fresh task. Slots start at random offsets (burnt in with the initial schedule) so they
are not in lock-step. Per-task meta-gradients come from `jax.vmap`; a task whose meta-gradient is
not finite contributes zero, diverged losses are replaced by a large finite value, and the mean
meta-gradient is clipped before the meta-optimizer step.

The task protocol and families live in `lookahead_jax.tasks` and are re-exported here, so
``lookahead_jax.meta`` is the one namespace for meta-training.
"""

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax.lstm_schedule import LSTMSchedule, current_learning_rate, learned_schedule
from lookahead_jax.tasks import (
    MLP,
    Task,
    TaskFamily,
    digits_mlp_family,
    mlp_family,
    quadratic_family,
    regression_family,
)

__all__ = [
    "LOG_LOSS_CAP",
    "MLP",
    "OBJECTIVES",
    "EvalResult",
    "InnerState",
    "MetaTrainResult",
    "Task",
    "TaskFamily",
    "digits_mlp_family",
    "evaluate",
    "init_slots",
    "loss_curves",
    "meta_gradient",
    "meta_train",
    "mlp_family",
    "quadratic_family",
    "regression_family",
    "truncation_loss",
    "unroll",
    "zero_nonfinite",
]

MetaParams = dict[str, Any]
OBJECTIVES = ("mean_log_loss", "mean_loss", "final_log_loss", "final_loss")
# A diverged (non-finite) loss counts as this many nats above the task's initial loss; finite
# losses are capped there too, so a blow-up contributes a large finite meta-loss, zero gradient.
LOG_LOSS_CAP = 10.0


class InnerState(NamedTuple):
    """State of one task slot, carried across truncations."""

    task_key: jax.Array  # PRNG key defining the task (`family(task_key)`)
    params: optax.Params
    opt_state: optax.OptState  # state of learned_schedule(inner, ...), schedule carry included
    key: jax.Array  # PRNG key for the next minibatches
    step: jax.Array  # shape=(), int32: inner steps taken on this task
    log_loss0: jax.Array  # shape=(): log of the task's full loss at its initial params


class MetaTrainResult(NamedTuple):
    """What `meta_train` returns."""

    meta_params: MetaParams  # {"schedule": ...} (+ "init" with learn_init)
    history: np.ndarray  # shape=(num_meta_steps,): meta-loss (mean over tasks) per meta step
    grad_norms: np.ndarray  # shape=(num_meta_steps,): meta-gradient norm before clipping
    wall_time_s: float  # meta-training wall time, compilation included
    validation: np.ndarray  # shape=(num_validations, 2): (meta step, validation meta-loss)


class EvalResult(NamedTuple):
    """Per-task curves from `evaluate`."""

    full_losses: np.ndarray  # shape=(num_tasks, horizon + 1): full train loss before each step
    batch_losses: np.ndarray  # shape=(num_tasks, horizon): minibatch loss at each step
    lrs: np.ndarray  # shape=(num_tasks, horizon): rate used at each step (NaN if unknown)


def _check_objective(objective: str, caller: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"{caller}: objective must be one of {OBJECTIVES}, got {objective=}")


def _inner_step(task: Task, tx: optax.GradientTransformationExtraArgs, first_order: bool):
    """One training step (params, opt_state), key -> (params, opt_state), (loss, lr)."""

    def step(carry, key):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(task.loss)(params, task.sample_batch(key))
        if first_order:
            # First-order meta-gradients (FOMAML): the inner gradients are constants, so no
            # second derivatives of the task loss are taken.
            grads = jax.lax.stop_gradient(grads)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def unroll(
    task: Task,
    tx: optax.GradientTransformationExtraArgs,
    params: optax.Params,
    opt_state: optax.OptState,
    key: jax.Array,
    num_steps: int,
    *,
    remat: bool = True,
    first_order: bool = False,
) -> tuple[tuple[optax.Params, optax.OptState], jax.Array]:
    """Runs `num_steps` steps of `tx` on `task` with `lax.scan`.

    Args:
      task: the task.
      tx: the optimizer (it receives the loss as ``value=``).
      params, opt_state: where to start.
      key: PRNG key for the minibatches.
      num_steps: number of steps (static).
      remat: rematerialise the scan body (`jax.checkpoint`) to save memory under `jax.grad`.
      first_order: stop gradients through the inner gradients (first-order meta-gradients).

    Returns:
      ``((params, opt_state), losses)``, losses of shape (num_steps,): each step's minibatch
      loss, taken before its update.
    """
    step = _inner_step(task, tx, first_order)
    if remat:
        step = jax.checkpoint(step)
    return jax.lax.scan(step, (params, opt_state), jax.random.split(key, num_steps))


def _log_ratio(loss: jax.Array, log_loss0: jax.Array) -> jax.Array:
    """log(loss / loss0), NaN-safe and capped at LOG_LOSS_CAP (zero gradient where capped)."""
    ok = jnp.isfinite(loss) & (loss > 0)
    log_loss = jnp.log(jnp.where(ok, loss, 1.0))
    return jnp.where(ok, jnp.minimum(log_loss - log_loss0, LOG_LOSS_CAP), LOG_LOSS_CAP)


def _fresh_state(
    family: TaskFamily,
    tx: optax.GradientTransformationExtraArgs,
    task_key: jax.Array,
    init: optax.Params | None,
) -> InnerState:
    task = family(task_key)
    k_init, k_data = jax.random.split(jax.random.fold_in(task_key, 1))
    params = task.init_params(k_init) if init is None else init
    return InnerState(
        task_key=task_key,
        params=params,
        opt_state=tx.init(params),
        key=k_data,
        step=jnp.zeros([], jnp.int32),
        log_loss0=jnp.log(jax.lax.stop_gradient(task.full_loss(params))),
    )


def truncation_loss(
    meta_params: MetaParams,
    state: InnerState,
    family: TaskFamily,
    schedule: LSTMSchedule,
    inner: optax.GradientTransformation,
    num_steps: int,
    *,
    objective: str = "mean_log_loss",
    remat: bool = True,
    first_order: bool = False,
) -> tuple[jax.Array, InnerState]:
    """Meta-loss of one task over one truncation of `num_steps` steps, and the carried state.

    ``mean_log_loss`` is the mean over the steps of log(minibatch loss / initial full loss);
    ``mean_loss`` the mean of the ratio itself (it weighs slow and diverging tasks more, like an
    arithmetic mean of final losses does); ``final_log_loss`` is log(full loss after the
    truncation / initial full loss) and ``final_loss`` that ratio itself. All are NaN-safe (see
    `LOG_LOSS_CAP`). With ``"init"`` in `meta_params`,
    a task at step 0 starts from those params (MAML), so the meta-gradient reaches them.
    """
    task = family(state.task_key)
    tx = learned_schedule(inner, schedule, meta_params["schedule"])
    params, opt_state = state.params, state.opt_state
    if "init" in meta_params:
        fresh = state.step == 0
        params = jax.tree.map(lambda i, p: jnp.where(fresh, i, p), meta_params["init"], params)
    key, sub = jax.random.split(state.key)
    (params, opt_state), losses = unroll(
        task, tx, params, opt_state, sub, num_steps, remat=remat, first_order=first_order
    )
    if objective == "mean_log_loss":
        meta_loss = jnp.mean(_log_ratio(losses, state.log_loss0))
    elif objective == "mean_loss":
        meta_loss = jnp.mean(jnp.exp(_log_ratio(losses, state.log_loss0)))
    elif objective == "final_log_loss":
        meta_loss = _log_ratio(task.full_loss(params), state.log_loss0)
    else:
        meta_loss = jnp.exp(_log_ratio(task.full_loss(params), state.log_loss0))
    new_state = InnerState(
        task_key=state.task_key,
        params=params,
        opt_state=opt_state,
        key=key,
        step=state.step + num_steps,
        log_loss0=state.log_loss0,
    )
    return meta_loss, jax.lax.stop_gradient(new_state)


def zero_nonfinite(tree: Any) -> Any:
    """Returns `tree` with every leaf zeroed if any leaf holds a NaN or infinity."""
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
    return jax.tree.map(lambda x: jnp.where(finite, x, jnp.zeros_like(x)), tree)


def meta_gradient(
    meta_params: MetaParams,
    states: InnerState,
    family: TaskFamily,
    schedule: LSTMSchedule,
    inner: optax.GradientTransformation,
    num_steps: int,
    *,
    objective: str = "mean_log_loss",
    remat: bool = True,
    first_order: bool = False,
) -> tuple[jax.Array, MetaParams, InnerState]:
    """Mean meta-loss and meta-gradient over a batch of task slots (leading axis of `states`).

    Per-task gradients come from `jax.vmap`; a task whose gradient is not finite contributes zero.

    Returns:
      ``(mean meta-loss, mean meta-gradient, new states)``.
    """
    _check_objective(objective, "meta_gradient")

    def one(state):
        return jax.value_and_grad(truncation_loss, has_aux=True)(
            meta_params,
            state,
            family,
            schedule,
            inner,
            num_steps,
            objective=objective,
            remat=remat,
            first_order=first_order,
        )

    (losses, new_states), grads = jax.vmap(one)(states)
    grads = jax.vmap(zero_nonfinite)(grads)
    return jnp.mean(losses), jax.tree.map(lambda g: jnp.mean(g, axis=0), grads), new_states


def _fresh_states(family, schedule, inner, meta_params, task_keys):
    tx = learned_schedule(inner, schedule, meta_params["schedule"])
    init = meta_params.get("init")
    return jax.vmap(lambda k: _fresh_state(family, tx, k, init))(task_keys)


def _select(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per slot (leading axis), `new` where `mask` else `old`."""
    return jax.tree.map(
        lambda n, o: jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o), new, old
    )


def init_slots(
    family: TaskFamily,
    schedule: LSTMSchedule,
    inner: optax.GradientTransformation,
    meta_params: MetaParams,
    key: jax.Array,
    *,
    num_tasks: int,
    horizon: int,
    unroll_length: int,
    random_offsets: bool = True,
) -> InnerState:
    """Fresh task slots (leading axis `num_tasks`) for truncated meta-training.

    With `random_offsets`, slot i is first advanced by a random number of truncations in
    [0, horizon / unroll_length) with the schedule of `meta_params`, so that the slots reach the
    horizon (and restart) at different meta steps instead of in lock-step.
    """
    k_tasks, k_offsets = jax.random.split(key)
    task_keys = jax.random.split(k_tasks, num_tasks)
    states = _fresh_states(family, schedule, inner, meta_params, task_keys)
    n_trunc = horizon // unroll_length
    if not random_offsets or n_trunc == 1:
        return states

    @jax.jit
    def advance(states, active):
        def one(state):
            return truncation_loss(meta_params, state, family, schedule, inner, unroll_length)[1]

        return _select(active, jax.vmap(one)(states), states)

    offsets = jax.random.randint(k_offsets, (num_tasks,), 0, n_trunc)
    for j in range(int(jnp.max(offsets))):
        states = advance(states, offsets > j)
    return states


def meta_train(
    family: TaskFamily,
    schedule: LSTMSchedule,
    inner: optax.GradientTransformation,
    *,
    key: jax.Array,
    num_meta_steps: int,
    horizon: int,
    unroll_length: int | None = None,
    num_tasks: int = 8,
    meta_optimizer: optax.GradientTransformation | None = None,
    meta_clip: float = 3.0,
    objective: str = "mean_log_loss",
    learn_init: bool = False,
    first_order: bool = False,
    remat: bool = True,
    random_offsets: bool = True,
    time_budget_s: float | None = None,
    meta_params: MetaParams | None = None,
    callback: Callable[[int, float], None] | None = None,
    validation_keys: jax.Array | None = None,
    validate_every: int = 100,
    mesh: jax.sharding.Mesh | None = None,
    task_axis: str = "tasks",
) -> MetaTrainResult:
    """Meta-trains `schedule` (and, with ``learn_init``, the initial params) on `family`.

    Args:
      family: task key -> `Task`.
      schedule: the `LSTMSchedule` to train.
      inner: the unit-rate inner transformation (``optax.sgd(1.0)``; for Adam-type inner
        optimizers pass ``eps_root > 0``, the gradient of sqrt at 0 being infinite).
      key: PRNG key (tasks, offsets, schedule init).
      num_meta_steps: meta-optimizer steps (fewer if `time_budget_s` runs out first).
      horizon: inner steps per task before it is replaced by a fresh one.
      unroll_length: steps per truncation (a divisor of `horizon`; default: the whole horizon).
      num_tasks: task slots trained in parallel (vmapped) per meta step.
      meta_optimizer: default ``optax.adam(1e-3)``; gradients are clipped by value to
        `meta_clip` before it.
      meta_clip: clip value of the meta-gradient (learned_optimization uses 3.0).
      objective: one of `OBJECTIVES` (see `truncation_loss`).
      learn_init: meta-learn the initial params jointly (MAML-style; every task of the family
        must share the param structure).
      first_order: first-order meta-gradients (no second derivatives through inner gradients).
      remat: rematerialise the inner loop body.
      random_offsets: start the slots at random multiples of `unroll_length` (burnt in with the
        initial schedule) so they are not in lock-step.
      time_budget_s: stop early once this much wall time has elapsed (checked between steps).
      meta_params: starting meta-params (default: fresh schedule params, zero output layer).
      callback: called as ``callback(step, meta_loss)`` after every meta step.
      validation_keys: task keys (leading axis) of validation tasks, trained from scratch for
        the whole horizon without truncation every `validate_every` meta steps (and at the start
        and end) with the current meta-params; the meta-params with the lowest validation
        meta-loss are returned (early stopping: meta-training on chaotic losses can drift into
        rates that make some tasks diverge, where the capped loss gives no gradient back).
      validate_every: meta steps between validations.
      mesh: shard the task slots across this mesh's `task_axis` (`num_tasks` must be a
        multiple of its size): each device trains its own tasks, the meta-params are replicated
        and only the mean meta-gradient is all-reduced.
      task_axis: the mesh axis that splits the tasks.

    Returns:
      A `MetaTrainResult`.
    """
    _check_objective(objective, "meta_train")
    unroll_length = horizon if unroll_length is None else unroll_length
    if not (isinstance(horizon, int) and isinstance(unroll_length, int)):
        raise TypeError(f"meta_train: horizon and unroll_length must be ints, got {horizon=}")
    if unroll_length < 1 or horizon % unroll_length:
        raise ValueError(
            "meta_train: unroll_length must be >= 1 and divide horizon, got "
            f"{unroll_length=}, {horizon=}"
        )
    if not num_tasks >= 1:
        raise ValueError(f"meta_train: num_tasks must be >= 1, got {num_tasks=}")
    if not meta_clip > 0:
        raise ValueError(f"meta_train: meta_clip must be positive, got {meta_clip=}")
    start = time.perf_counter()
    k_sched, k_init, k_tasks, key = jax.random.split(key, 4)
    if meta_params is None:
        meta_params = {"schedule": schedule.init_params(k_sched)}
        if learn_init:
            meta_params["init"] = family(k_init).init_params(k_init)
    elif learn_init and "init" not in meta_params:
        raise ValueError("meta_train: learn_init=True but meta_params has no 'init' entry")
    meta_opt = optax.chain(
        optax.clip(meta_clip), optax.adam(1e-3) if meta_optimizer is None else meta_optimizer
    )
    meta_opt_state = meta_opt.init(meta_params)
    shard_tasks = lambda tree: tree
    if mesh is not None:
        if task_axis not in mesh.shape or num_tasks % mesh.shape[task_axis]:
            raise ValueError(
                f"meta_train: num_tasks must be a multiple of the mesh axis {task_axis!r}, got "
                f"{num_tasks=} and mesh axes {dict(mesh.shape)}"
            )
        tasks_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(task_axis))
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        meta_params, meta_opt_state = jax.device_put((meta_params, meta_opt_state), replicated)
        shard_tasks = lambda tree: jax.lax.with_sharding_constraint(tree, tasks_sharding)

    def fresh_states(mp, task_keys):
        return _fresh_states(family, schedule, inner, mp, task_keys)

    @jax.jit
    def meta_step(mp, opt_state, states, step_key):
        done = states.step >= horizon
        task_keys = jax.random.split(step_key, num_tasks)
        states = shard_tasks(_select(done, fresh_states(mp, task_keys), states))
        loss, grads, states = meta_gradient(
            mp,
            states,
            family,
            schedule,
            inner,
            unroll_length,
            objective=objective,
            remat=remat,
            first_order=first_order,
        )
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = meta_opt.update(grads, opt_state, mp)
        return optax.apply_updates(mp, updates), opt_state, states, loss, grad_norm

    states = init_slots(
        family,
        schedule,
        inner,
        meta_params,
        k_tasks,
        num_tasks=num_tasks,
        horizon=horizon,
        unroll_length=unroll_length,
        random_offsets=random_offsets,
    )
    if mesh is not None:
        states = jax.device_put(states, tasks_sharding)

    @jax.jit
    def validation_loss(mp):
        fresh = _fresh_states(family, schedule, inner, mp, validation_keys)

        def one(state):
            return truncation_loss(mp, state, family, schedule, inner, horizon, objective=objective)

        return jnp.mean(jax.vmap(one)(fresh)[0])

    validation, best = [], (np.inf, meta_params)

    def validate(step, mp):
        nonlocal best
        value = float(validation_loss(mp))
        validation.append((step, value))
        if value < best[0]:
            best = (value, mp)

    history, grad_norms = [], []
    if validation_keys is not None:
        validate(0, meta_params)
    for i in range(num_meta_steps):
        key, step_key = jax.random.split(key)
        meta_params, meta_opt_state, states, loss, grad_norm = meta_step(
            meta_params, meta_opt_state, states, step_key
        )
        history.append(float(loss))
        grad_norms.append(float(grad_norm))
        if callback is not None:
            callback(i, history[-1])
        out_of_time = time_budget_s is not None and time.perf_counter() - start > time_budget_s
        last = out_of_time or i == num_meta_steps - 1
        if validation_keys is not None and ((i + 1) % validate_every == 0 or last):
            validate(i + 1, meta_params)
        if out_of_time:
            break
    return MetaTrainResult(
        meta_params=meta_params if validation_keys is None else best[1],
        history=np.asarray(history),
        grad_norms=np.asarray(grad_norms),
        wall_time_s=time.perf_counter() - start,
        validation=np.asarray(validation, np.float64).reshape(-1, 2),
    )


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
        state = _fresh_state(family, tx, task_key, init)
        task = family(task_key)
        base = _inner_step(task, tx, first_order=False)
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
      >>> from lookahead_jax import meta, tasks
      >>> from lookahead_jax.lstm_schedule import LSTMSchedule, learned_schedule
      >>> schedule = LSTMSchedule(base_lr=1.0)
      >>> tx = learned_schedule(optax.sgd(1.0), schedule, schedule.init_params(jax.random.key(0)))
      >>> keys = jax.random.split(jax.random.key(1), 3)
      >>> curves = meta.evaluate(tasks.quadratic_family(), tx, keys, horizon=50)
      >>> curves.full_losses.shape, curves.lrs.shape
      ((3, 51), (3, 50))
    """
    run = jax.jit(
        lambda keys, init: loss_curves(
            family, tx, keys, horizon, init=init, lr_of_state=lr_of_state
        )
    )
    return EvalResult(*(np.asarray(x) for x in run(task_keys, init)))
