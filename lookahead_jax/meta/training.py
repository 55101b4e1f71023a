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

"""

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax import checks
from lookahead_jax.lstm_schedule import LSTMSchedule
from lookahead_jax.meta.tasks import ReplayedFamily, TaskFamily
from lookahead_jax.meta.unroll import (
    InnerState,
    MetaParams,
    check_objective,
    fresh_states,
    init_slots,
    initial_params,
    meta_gradient,
    select_slots,
    truncation_loss,
)


def _check_initial_losses(family: TaskFamily, states: InnerState, init) -> None:
    """A clear error for a family whose loss is negative or not finite at a task's initial
    params."""
    bad = ~np.isfinite(np.asarray(states.log_loss0))
    if bad.any():
        # The slots may have moved (random offsets): name the loss at the initial params.
        task_key = states.task_key[int(np.argmax(bad))]
        family = family.replay if isinstance(family, ReplayedFamily) else family  # the one read
        value = float(family(task_key).full_loss(initial_params(family, task_key, init)))
        if np.isfinite(value):
            raise ValueError(
                "meta_train: a task's full_loss must be >= 0 (the meta-objectives are log-ratios "
                f"of losses), got {value:g}; shift the loss by a lower bound (e.g. loss - bound)"
            )
        raise ValueError(
            f"meta_train: a task's full_loss at its initial params is {value}; the family's "
            "init_params or loss gives a non-finite loss before any step"
        )


def _check_meta_loss(value: float, where: str) -> None:
    """NaN here means a finite negative loss inside the unroll (diverged runs score the cap), or
    a fresh task (a refreshed slot, a validation task) whose initial loss is negative or NaN."""
    if np.isnan(value):
        raise ValueError(
            f"meta_train: a task's loss went negative during {where}, or a fresh task's "
            "initial loss was negative or not finite; losses must be >= 0 at every step (the "
            "meta-objectives are log-ratios of losses, see `Task`): shift the loss by a lower "
            "bound (e.g. loss - bound)"
        )


def _horizons(horizon: int | Sequence[int], num_families: int) -> list[int]:
    """One positive int horizon per family, from one for all or a sequence of them."""
    many = isinstance(horizon, Sequence) and not isinstance(horizon, str)
    horizons = list(horizon) if many else [horizon] * num_families
    if len(horizons) != num_families:
        raise ValueError(
            f"meta_train: horizon must be an int or one per family ({num_families}), got {horizon=}"
        )
    for h in horizons:
        if not isinstance(h, int) or isinstance(h, bool):
            raise TypeError(f"meta_train: horizon must be an int or ints, got {horizon=}")
        if h < 1:
            raise ValueError(f"meta_train: every horizon must be >= 1, got {horizon=}")
    return horizons


class _InnerLoop(NamedTuple):
    """What a truncation of the inner loop needs, besides the meta-params and the task slots."""

    family: TaskFamily
    schedule: LSTMSchedule
    inner: optax.GradientTransformation
    num_steps: int
    objective: str
    remat: bool
    first_order: bool
    hide_horizon: float = 0.0

    def meta_gradient(self, meta_params: MetaParams, states: InnerState):
        return meta_gradient(
            meta_params,
            states,
            self.family,
            self.schedule,
            self.inner,
            self.num_steps,
            objective=self.objective,
            remat=self.remat,
            first_order=self.first_order,
        )

    def fresh(self, meta_params: MetaParams, task_keys: jax.Array) -> InnerState:
        return fresh_states(
            self.family, self.schedule, self.inner, meta_params, task_keys, self.hide_horizon
        )


class _TaskSharding:
    """Task slots split across a mesh axis, meta-params replicated (or nothing, without mesh)."""

    def __init__(self, mesh: jax.sharding.Mesh | None, task_axis: str, num_tasks: int):
        self.mesh = mesh
        if mesh is None:
            return
        if task_axis not in mesh.shape or num_tasks % mesh.shape[task_axis]:
            raise ValueError(
                f"meta_train: num_tasks must be a multiple of the mesh axis {task_axis!r}, got "
                f"{num_tasks=} and mesh axes {dict(mesh.shape)}"
            )
        P = jax.sharding.PartitionSpec
        self.by_task = jax.sharding.NamedSharding(mesh, P(task_axis))
        self.replicated = jax.sharding.NamedSharding(mesh, P())
        axis_type = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))[task_axis]
        # Explicit axes (`jax.make_mesh`'s default) carry the sharding in the type: reshard.
        self.explicit = axis_type == jax.sharding.AxisType.Explicit

    def replicate(self, tree: Any) -> Any:
        return tree if self.mesh is None else jax.device_put(tree, self.replicated)

    def place(self, states: Any) -> Any:
        return states if self.mesh is None else jax.device_put(states, self.by_task)

    def constrain(self, states: Any) -> Any:
        """Inside jit: keep the slots split across the task axis."""
        if self.mesh is None:
            return states
        if self.explicit:
            return jax.sharding.reshard(states, self.by_task)
        return jax.lax.with_sharding_constraint(states, self.by_task)


def _meta_step(
    loop: _InnerLoop,
    meta_opt: optax.GradientTransformation,
    horizon: int,
    num_tasks: int,
    shard: _TaskSharding,
) -> Callable:
    """The jitted meta step: refresh finished slots, one truncation, one meta-optimizer step."""

    @jax.jit
    def step(mp, opt_state, states, step_key):
        done = states.step >= horizon
        task_keys = jax.random.split(step_key, num_tasks)
        states = shard.constrain(select_slots(done, loop.fresh(mp, task_keys), states))
        loss, grads, states = loop.meta_gradient(mp, states)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = meta_opt.update(grads, opt_state, mp)
        return optax.apply_updates(mp, updates), opt_state, states, loss, grad_norm

    return step


class _EarlyStopping:
    """Validation meta-loss of fresh tasks over the whole horizon; keeps the best meta-params.

    With several families (a mixture), the validation meta-loss is the mean over the families.
    """

    def __init__(self, loops: Sequence[_InnerLoop], validation_keys: jax.Array):
        def family_loss(loop, mp):
            fresh = loop.fresh(mp, validation_keys)

            def one(state):
                return truncation_loss(
                    mp,
                    state,
                    loop.family,
                    loop.schedule,
                    loop.inner,
                    loop.num_steps,
                    objective=loop.objective,
                )

            return jnp.mean(jax.vmap(one)(fresh)[0])

        # One compiled function per family: their params differ in structure.
        losses = [jax.jit(lambda mp, loop=loop: family_loss(loop, mp)) for loop in loops]
        self._loss = lambda mp: np.mean([float(f(mp)) for f in losses])
        self.history: list[tuple[int, float]] = []
        self.best_value, self.best_params = np.inf, None

    def validate(self, step: int, meta_params: MetaParams) -> None:
        value = float(self._loss(meta_params))
        _check_meta_loss(value, f"validation at meta-step {step}")
        self.history.append((step, value))
        if self.best_params is None:  # the starting point, whatever its value (the cap included)
            self.best_params = meta_params
        if value < self.best_value:
            self.best_value, self.best_params = value, meta_params


class MetaTrainResult(NamedTuple):
    """What `meta_train` returns."""

    meta_params: MetaParams  # {"schedule": ...} (+ "init" with learn_init)
    history: np.ndarray  # shape=(num_meta_steps,): meta-loss (mean over tasks) per meta step
    grad_norms: np.ndarray  # shape=(num_meta_steps,): meta-gradient norm before clipping
    wall_time_s: float  # meta-training wall time, compilation included
    validation: np.ndarray  # shape=(num_validations, 2): (meta step, validation meta-loss)


def meta_train(
    family: TaskFamily | Sequence[TaskFamily],
    schedule: LSTMSchedule,
    inner: optax.GradientTransformation,
    *,
    key: jax.Array,
    num_meta_steps: int,
    horizon: int | Sequence[int],
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
    validation_families: TaskFamily | Sequence[TaskFamily] | None = None,
    mesh: jax.sharding.Mesh | None = None,
    task_axis: str = "tasks",
    hide_horizon: float = 0.0,
) -> MetaTrainResult:
    """Meta-trains `schedule` (and, with ``learn_init``, the initial params) on `family`.

    Args:
      family: task key -> `Task`; or a sequence of families, a mixture: each family keeps its
        own `num_tasks` slots, and meta step i trains on family ``i % len(family)`` (round
        robin, so every family gets the same number of meta steps; their params may differ in
        structure). A `ReplayedFamily` (here or in `validation_families`) trains each task twice
        in lock-step, the schedule's run and its rates replayed by `inner` on the replay family,
        and the objective reads the replay.
      schedule: the `LSTMSchedule` to train.
      inner: the unit-rate inner transformation (``optax.sgd(1.0)``; for Adam-type inner
        optimizers pass ``eps_root > 0``, the gradient of sqrt at 0 being infinite).
      key: PRNG key (tasks, offsets, schedule init).
      num_meta_steps: meta-optimizer steps (fewer if `time_budget_s` runs out first).
      horizon: inner steps per task before it is replaced by a fresh one; or one per family
        of a mixture (a mixture of horizons: pass a family twice to train it at two). With
        several horizons, a schedule that reads its progress (``schedule.horizon`` set) is told
        each family's own (``schedule.clone(horizon=h)``), and validation runs each validation
        family at each distinct horizon.
      unroll_length: steps per truncation, a divisor of every horizon (default: their greatest
        common divisor, the whole horizon when there is one).
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
      validation_families: the families the validation tasks come from (default: the training
        families; with several, the validation meta-loss is their mean). Families left out of
        meta-training select the meta-params that transfer to other families, rather than
        those that fit the training families best (on our suite the two rankings differed; see
        the README's pilots). Needs `validation_keys`; not with ``learn_init`` (the learned
        init has the training family's structure).
      mesh: shard the task slots across this mesh's `task_axis` (`num_tasks` must be a
        multiple of its size): each device trains its own tasks, the meta-params are replicated
        and only the mean meta-gradient is all-reduced.
      task_axis: the mesh axis that splits the tasks.
      hide_horizon: the fraction of tasks (drawn per task) whose schedule is not told its
        horizon (`LSTMSchedule.horizon`, read with ``progress_features``), so that the same
        params learn to serve ``horizon=None`` too.

    Returns:
      A `MetaTrainResult`.
    """
    check_objective(objective, "meta_train")
    families = checks.family_list("meta_train", family)
    horizons = _horizons(horizon, len(families))
    unroll_length = math.gcd(*horizons) if unroll_length is None else unroll_length
    if not isinstance(unroll_length, int) or isinstance(unroll_length, bool):
        raise TypeError(f"meta_train: unroll_length must be an int, got {unroll_length=}")
    if unroll_length < 1 or any(h % unroll_length for h in horizons):
        raise ValueError(
            "meta_train: unroll_length must be >= 1 and divide every horizon, got "
            f"{unroll_length=}, {horizon=}"
        )
    if not num_tasks >= 1:
        raise ValueError(f"meta_train: num_tasks must be >= 1, got {num_tasks=}")
    if not meta_clip > 0:
        raise ValueError(f"meta_train: meta_clip must be positive, got {meta_clip=}")
    validate_every = checks.integer("meta_train", "validate_every", validate_every, 1)
    if not 0.0 <= hide_horizon <= 1.0:
        raise ValueError(f"meta_train: hide_horizon must be in [0, 1], got {hide_horizon=}")
    if learn_init and any(isinstance(f, ReplayedFamily) for f in families):
        raise ValueError("meta_train: learn_init cannot be used with a ReplayedFamily")
    if learn_init and len(families) > 1:
        raise ValueError(
            "meta_train: learn_init needs one family (a mixture's params differ in structure)"
        )
    if validation_families is not None:
        if validation_keys is None:
            raise ValueError(
                "meta_train: validation_families needs validation_keys (the validation tasks' "
                "keys), got validation_keys=None"
            )
        if learn_init:
            raise ValueError(
                "meta_train: validation_families cannot be used with learn_init=True (the "
                "learned init has the training family's param structure)"
            )
        validation_families = checks.family_list("meta_train", validation_families)
    start = time.perf_counter()
    k_sched, k_init_task, k_init, k_tasks, key = jax.random.split(key, 5)
    if meta_params is None:
        meta_params = {"schedule": schedule.init_params(k_sched)}
        if learn_init:
            # Its own key: drawing the init with the task's key would correlate the two.
            meta_params["init"] = families[0](k_init_task).init_params(k_init)
    elif learn_init and "init" not in meta_params:
        raise ValueError("meta_train: learn_init=True but meta_params has no 'init' entry")
    meta_opt = optax.chain(
        optax.clip(meta_clip), optax.adam(1e-3) if meta_optimizer is None else meta_optimizer
    )
    meta_opt_state = meta_opt.init(meta_params)
    shard = _TaskSharding(mesh, task_axis, num_tasks)
    meta_params, meta_opt_state = shard.replicate((meta_params, meta_opt_state))
    # Told its own horizon where there are several (one horizon: the schedule as given).
    told = (
        (lambda h: schedule)
        if len(set(horizons)) == 1 or schedule.horizon is None
        else (lambda h: schedule.clone(horizon=h))
    )
    loops = [
        _InnerLoop(f, told(h), inner, unroll_length, objective, remat, first_order, hide_horizon)
        for f, h in zip(families, horizons, strict=True)
    ]
    meta_steps = [
        _meta_step(loop, meta_opt, h, num_tasks, shard)
        for loop, h in zip(loops, horizons, strict=True)
    ]

    all_states = []
    for j, (loop, h) in enumerate(zip(loops, horizons, strict=True)):
        states = init_slots(
            loop.family,
            loop.schedule,
            inner,
            meta_params,
            # One family keeps the key it always had (results reproduce across versions).
            k_tasks if j == 0 else jax.random.fold_in(k_tasks, j),
            num_tasks=num_tasks,
            horizon=h,
            unroll_length=unroll_length,
            random_offsets=random_offsets,
            hide_horizon=hide_horizon,
        )
        _check_initial_losses(loop.family, states, meta_params.get("init"))
        all_states.append(shard.place(states))

    stopping = None
    if validation_keys is not None:
        validation_loops = [lp._replace(num_steps=h) for lp, h in zip(loops, horizons, strict=True)]
        if validation_families is not None:
            validation_loops = [
                loops[0]._replace(family=f, schedule=told(h), num_steps=h)
                for h in dict.fromkeys(horizons)  # each distinct horizon, in order
                for f in validation_families
            ]
        stopping = _EarlyStopping(validation_loops, validation_keys)
        stopping.validate(0, meta_params)
    history, grad_norms = [], []
    for i in range(num_meta_steps):
        key, step_key = jax.random.split(key)
        j = i % len(families)
        meta_params, meta_opt_state, all_states[j], loss, grad_norm = meta_steps[j](
            meta_params, meta_opt_state, all_states[j], step_key
        )
        _check_meta_loss(float(loss), f"meta-step {i}")
        history.append(float(loss))
        grad_norms.append(float(grad_norm))
        if callback is not None:
            callback(i, history[-1])
        out_of_time = time_budget_s is not None and time.perf_counter() - start > time_budget_s
        last = out_of_time or i == num_meta_steps - 1
        if stopping is not None and ((i + 1) % validate_every == 0 or last):
            stopping.validate(i + 1, meta_params)
        if out_of_time:
            break
    return MetaTrainResult(
        meta_params=meta_params if stopping is None else stopping.best_params,
        history=np.asarray(history),
        grad_norms=np.asarray(grad_norms),
        wall_time_s=time.perf_counter() - start,
        validation=np.asarray([] if stopping is None else stopping.history, np.float64).reshape(
            -1, 2
        ),
    )
