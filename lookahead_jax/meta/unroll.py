"""Unrolled inner training and its meta-gradient: the differentiable core of meta-training.

The inner loop is `learned_schedule(inner, schedule, meta_params["schedule"])`, the very
transformation users train with, run by a `jax.lax.scan` whose body is rematerialised
(`jax.checkpoint`): the backward pass stores only the scan carry (params and optimizer state) per
step and recomputes each step's activations, so memory grows with the params, not the batch.

Long horizons are split into truncations (truncated backprop): each task slot carries its params
and optimizer state (schedule carry included) from one truncation to the next, gradients stopping
at the boundary.

A `ReplayedFamily` runs each task twice in lock-step: the schedule's run on the first family's
task, and the replay, the inner optimizer on the replay family's task at the rate the schedule
chose at the same step. The meta-objective then reads the replay, whose params depend on the
schedule only through those rates.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lookahead_jax.learned_schedule import current_learning_rate, learned_schedule
from lookahead_jax.lstm_schedule import LSTMSchedule
from lookahead_jax.meta.tasks import ReplayedFamily, Task, TaskFamily, first_family

MetaParams = dict[str, Any]
OBJECTIVES = ("mean_log_loss", "mean_loss", "final_log_loss", "final_loss", "final_log_test_loss")
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
    log_test_loss0: jax.Array  # shape=(): log of its test loss there (log_loss0 without one)
    # A `ReplayedFamily`'s replay: (its params, the inner optimizer's state); None otherwise.
    # The meta-objective reads this run; log_loss0 and log_test_loss0 are its task's.
    replay: Any = None


def check_objective(objective: str, caller: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"{caller}: objective must be one of {OBJECTIVES}, got {objective=}")


def inner_step(task: Task, tx: optax.GradientTransformationExtraArgs, first_order: bool):
    """One training step (params, opt_state), key -> (params, opt_state), loss.

    Where the task has a validation split, `tx` also receives its loss at the same params as
    ``val_loss=`` (a transformation that does not read it drops it, and XLA the computation).
    """

    def step(carry, key):
        params, opt_state = carry
        loss, grads = _grads(task, params, key, first_order)
        extra = {}
        if task.validation_loss is not None:
            extra["val_loss"] = task.validation_loss(params)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss, **extra)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def _grads(task: Task, params: optax.Params, key: jax.Array, first_order: bool):
    """(minibatch loss, gradients) of `task` at `params` on the minibatch of `key`."""
    loss, grads = jax.value_and_grad(task.loss)(params, task.sample_batch(key))
    if first_order:
        # First-order meta-gradients (FOMAML): the inner gradients are constants, so no
        # second derivatives of the task loss are taken.
        grads = jax.lax.stop_gradient(grads)
    return loss, grads


def replayed_step(
    task: Task,
    tx: optax.GradientTransformationExtraArgs,
    replay_task: Task,
    inner: optax.GradientTransformation,
    first_order: bool,
):
    """One step of both runs of a `ReplayedFamily`: ((params, opt_state), (replay params,
    inner state)), key -> the same, the replay's minibatch loss.

    The schedule's run is `inner_step`'s; the replay takes the unit-rate `inner`'s update on its
    own task's minibatch of the same key, times the rate `tx` (a `learned_schedule`) used.
    """
    first = inner_step(task, tx, first_order)

    def step(carry, key):
        run, (params, inner_state) = carry
        (new_params, opt_state), _ = first(run, key)
        loss, grads = _grads(replay_task, params, key, first_order)
        updates, inner_state = inner.update(grads, inner_state, params)
        lr = current_learning_rate(opt_state)
        updates = jax.tree.map(lambda u: u * lr.astype(u.dtype), updates)
        return ((new_params, opt_state), (optax.apply_updates(params, updates), inner_state)), loss

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
    return _scan(inner_step(task, tx, first_order), (params, opt_state), key, num_steps, remat)


def _scan(step, carry, key: jax.Array, num_steps: int, remat: bool):
    """`num_steps` of `step` (carry, key -> carry, loss) by `lax.scan`, one minibatch key each,
    the body rematerialised with `remat`."""
    if remat:
        step = jax.checkpoint(step)
    return jax.lax.scan(step, carry, jax.random.split(key, num_steps))


def _log_floor(loss: jax.Array) -> jax.Array:
    """log(loss) with 0 mapped to log(tiny); NaN for a negative or NaN loss."""
    tiny = jnp.finfo(jnp.result_type(loss, jnp.float32)).tiny
    return jnp.log(jnp.where(loss == 0, tiny, loss))


def _log_ratio(loss: jax.Array, log_loss0: jax.Array) -> jax.Array:
    """log(loss / loss0), NaN-safe and capped at LOG_LOSS_CAP (zero gradient where capped).

    A loss of exactly 0 (float32 cross-entropy of a perfect fit underflows to it) is the floor,
    log(tiny): the best score, not a divergence. Non-finite losses (a diverged run) get the cap.
    A finite negative loss breaks the `Task` contract and has no log-ratio: it gives NaN, never a
    plausible score, and `meta_train` turns that into a `ValueError`.
    """
    finite = jnp.isfinite(loss)
    ok = finite & (loss >= 0)
    tiny = jnp.finfo(jnp.result_type(loss, jnp.float32)).tiny
    log_loss = jnp.log(jnp.maximum(jnp.where(ok, loss, 1.0), tiny))
    not_ok = jnp.where(finite, jnp.nan, LOG_LOSS_CAP)
    return jnp.where(ok, jnp.minimum(log_loss - log_loss0, LOG_LOSS_CAP), not_ok)


def _hide_horizon(opt_state: Any, hide: jax.Array) -> Any:
    """`opt_state` with the schedule carry's horizon set to unknown (0) where `hide`."""
    carry = opt_state.carry
    inv_h = jnp.where(hide, jnp.zeros_like(carry.inv_horizon), carry.inv_horizon)
    return opt_state._replace(carry=carry._replace(inv_horizon=inv_h))


def _start(task: Task, task_key: jax.Array, init: optax.Params | None):
    """(initial params, data key) of a task slot: the task's own params, or the learned `init`."""
    k_init, k_data = jax.random.split(jax.random.fold_in(task_key, 1))
    return (task.init_params(k_init) if init is None else init), k_data


def initial_params(
    family: TaskFamily, task_key: jax.Array, init: optax.Params | None
) -> optax.Params:
    """The params a task slot starts from: the task's own, or the meta-learned `init`."""
    return _start(family(task_key), task_key, init)[0]


def fresh_state(
    family: TaskFamily | ReplayedFamily,
    tx: optax.GradientTransformationExtraArgs,
    task_key: jax.Array,
    init: optax.Params | None,
    hide_horizon: float = 0.0,
    *,
    inner: optax.GradientTransformation | None = None,
) -> InnerState:
    """A task slot at step 0: the task's initial params, `tx`'s initial state, its initial losses.

    With ``hide_horizon`` > 0, the schedule of that fraction of tasks (drawn from the task key)
    does not know its horizon: one set of params then learns to serve runs with and without one.
    A `ReplayedFamily` also starts its replay, with `inner`'s state (then required; the initial
    losses are the replay task's).
    """
    task = first_family(family)(task_key)
    params, k_data = _start(task, task_key, init)
    opt_state = tx.init(params)
    if hide_horizon > 0:
        hide = jax.random.uniform(jax.random.fold_in(task_key, 2)) < hide_horizon
        opt_state = _hide_horizon(opt_state, hide)
    replay, scored, at = None, task, params  # the run the meta-objective reads
    if isinstance(family, ReplayedFamily):
        if inner is None:
            raise ValueError("fresh_state: a ReplayedFamily needs inner= (the replay's optimizer)")
        scored = family.replay(task_key)
        at = _start(scored, task_key, init)[0]
        _check_same_start(params, at)
        replay = (at, inner.init(at))
    log_loss0 = _log_floor(jax.lax.stop_gradient(scored.full_loss(at)))
    log_test_loss0 = (
        log_loss0
        if scored.test_loss is None
        else _log_floor(jax.lax.stop_gradient(scored.test_loss(at)))
    )
    return InnerState(
        task_key=task_key,
        params=params,
        opt_state=opt_state,
        key=k_data,
        step=jnp.zeros([], jnp.int32),
        log_loss0=log_loss0,
        log_test_loss0=log_test_loss0,
        replay=replay,
    )


def _check_same_start(params: optax.Params, replay_params: optax.Params) -> None:
    """A replay starts where its first run starts: the same param structure and shapes."""
    shapes = lambda tree: jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)
    if jax.tree.structure(params) != jax.tree.structure(replay_params) or shapes(params) != shapes(
        replay_params
    ):
        raise ValueError(
            "ReplayedFamily: its first and replay families must give the same initial params "
            f"for a task key (the same architecture), got {shapes(params)} and "
            f"{shapes(replay_params)}"
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
    truncation / initial full loss) and ``final_loss`` that ratio itself; ``final_log_test_loss``
    is log(test loss after the truncation / initial test loss), on the task's held-out split
    (`Task.test_loss`, which the family must define): a meta-objective that rewards
    generalisation, not memorising the training rows. All are NaN-safe (see
    `LOG_LOSS_CAP`). With ``"init"`` in `meta_params`,
    a task at step 0 starts from those params (MAML), so the meta-gradient reaches them. With a
    `ReplayedFamily`, both runs take the truncation's steps and every objective reads the replay
    (its minibatch losses, its full and test losses).
    """
    task = first_family(family)(state.task_key)
    tx = learned_schedule(inner, schedule, meta_params["schedule"])
    params, opt_state = state.params, state.opt_state
    if "init" in meta_params:
        if isinstance(family, ReplayedFamily):
            raise ValueError("truncation_loss: a ReplayedFamily cannot learn the init (MAML)")
        fresh = state.step == 0
        params = jax.tree.map(lambda i, p: jnp.where(fresh, i, p), meta_params["init"], params)
    key, sub = jax.random.split(state.key)
    replay = state.replay
    if isinstance(family, ReplayedFamily):
        if replay is None:
            raise ValueError(
                "truncation_loss: a ReplayedFamily's state has no replay (start it with "
                "fresh_state(..., inner=inner))"
            )
        replay_task = family.replay(state.task_key)
        step = replayed_step(task, tx, replay_task, inner, first_order)
        carry = ((params, opt_state), replay)
        ((params, opt_state), replay), losses = _scan(step, carry, sub, num_steps, remat)
        task, scored_params = replay_task, replay[0]  # the objective reads the replay
    else:
        (params, opt_state), losses = unroll(
            task, tx, params, opt_state, sub, num_steps, remat=remat, first_order=first_order
        )
        scored_params = params
    if objective == "mean_log_loss":
        meta_loss = jnp.mean(_log_ratio(losses, state.log_loss0))
    elif objective == "mean_loss":
        meta_loss = jnp.mean(jnp.exp(_log_ratio(losses, state.log_loss0)))
    elif objective == "final_log_loss":
        meta_loss = _log_ratio(task.full_loss(scored_params), state.log_loss0)
    elif objective == "final_log_test_loss":
        if task.test_loss is None:
            raise ValueError(
                "truncation_loss: objective='final_log_test_loss' needs a family whose tasks "
                "define test_loss (a held-out split)"
            )
        meta_loss = _log_ratio(task.test_loss(scored_params), state.log_test_loss0)
    else:
        meta_loss = jnp.exp(_log_ratio(task.full_loss(scored_params), state.log_loss0))
    new_state = InnerState(
        task_key=state.task_key,
        params=params,
        opt_state=opt_state,
        key=key,
        step=state.step + num_steps,
        log_loss0=state.log_loss0,
        log_test_loss0=state.log_test_loss0,
        replay=replay,
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
    check_objective(objective, "meta_gradient")

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


def fresh_states(family, schedule, inner, meta_params, task_keys, hide_horizon=0.0):
    tx = learned_schedule(inner, schedule, meta_params["schedule"])
    init = meta_params.get("init")
    fresh = lambda k: fresh_state(family, tx, k, init, hide_horizon, inner=inner)
    return jax.vmap(fresh)(task_keys)


def select_slots(mask: jax.Array, new: Any, old: Any) -> Any:
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
    hide_horizon: float = 0.0,
) -> InnerState:
    """Fresh task slots (leading axis `num_tasks`) for truncated meta-training.

    With `random_offsets`, slot i is first advanced by a random number of truncations in
    [0, horizon / unroll_length) with the schedule of `meta_params`, so that the slots reach the
    horizon (and restart) at different meta steps instead of in lock-step.
    """
    k_tasks, k_offsets = jax.random.split(key)
    task_keys = jax.random.split(k_tasks, num_tasks)
    states = fresh_states(family, schedule, inner, meta_params, task_keys, hide_horizon)
    n_trunc = horizon // unroll_length
    if not random_offsets or n_trunc == 1:
        return states

    @jax.jit
    def advance(states, active):
        def one(state):
            return truncation_loss(meta_params, state, family, schedule, inner, unroll_length)[1]

        return select_slots(active, jax.vmap(one)(states), states)

    offsets = jax.random.randint(k_offsets, (num_tasks,), 0, n_trunc)
    for j in range(int(jnp.max(offsets))):
        states = advance(states, offsets > j)
    return states
