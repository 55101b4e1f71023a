"""`learned_schedule`: any optax transformation scaled by the rate an `LSTMSchedule` emits.

Because the schedule's params are an ordinary pytree closed over by the transformation, `jax.grad`
can differentiate a whole training run with respect to them; `lookahead_jax.meta` uses this very
transformation in its inner loop.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lookahead_jax import checks, nested_state
from lookahead_jax.lstm_schedule import LSTMSchedule, ScheduleCarry, check_params


class LearnedScheduleState(NamedTuple):
    """State of `learned_schedule`."""

    inner_state: optax.OptState
    carry: ScheduleCarry  # the schedule's recurrent state (LSTM carry in flax's (c, h) order)
    lr: jax.Array  # shape=(): the rate used by the last update (base_lr before the first)
    # The previous step's update of `inner` (unit rate), shaped like the params in the wider of
    # each param's and the schedule's dtype, where the schedule has `alignment_features`; None
    # otherwise (no leaves, no cost).
    prev_update: optax.Updates = None


def _safe_norm(sq_norm: jax.Array) -> jax.Array:
    """sqrt of a squared norm with a finite derivative at 0 (sqrt's is infinite there).

    An exactly zero gradient (a task at its optimum) would otherwise make the meta-gradient NaN
    (0 * inf). Non-finite values pass through for the schedule to flag.
    """
    positive = sq_norm > 0
    root = jnp.sqrt(jnp.where(positive, sq_norm, 1.0))
    return jnp.where(positive, root, jnp.where(sq_norm == 0, 0.0, sq_norm))


def _sq_norm(u: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """Squared norm of one leaf, summed in the schedule's dtype at least.

    bfloat16 gradients would otherwise round it to 3 significant digits before the schedule reads
    it. A complex leaf counts as its (real, imag) pair, as PyTorch treats it: |u|^2, not u^2.
    """
    u = u.astype(jnp.promote_types(u.dtype, dtype))
    if jnp.iscomplexobj(u):
        return jnp.sum(jnp.square(u.real) + jnp.square(u.imag))
    return jnp.sum(jnp.square(u))


def _alignment(grads: optax.Updates, grad_norm: jax.Array, prev: optax.Updates, dtype) -> jax.Array:
    """cos(g, u_prev) in `dtype` (`grad_norm` is |g|, already computed): 0 where either is zero,
    finite and differentiable there.

    A complex leaf counts as its (real, imag) pair: Re(g * conj(u)) is their dot product.
    """
    dot = jnp.zeros([], dtype)
    for g, u in zip(jax.tree.leaves(grads), jax.tree.leaves(prev), strict=True):
        wide = jnp.promote_types(jnp.promote_types(g.dtype, u.dtype), dtype)
        g, u = g.astype(wide), u.astype(wide)
        dot = dot + jnp.real(jnp.sum(g * jnp.conj(u))).astype(dtype)
    sq_u = sum((_sq_norm(u, dtype) for u in jax.tree.leaves(prev)), start=jnp.zeros([], dtype))
    denom = grad_norm * _safe_norm(sq_u)
    positive = denom > 0
    return jnp.where(positive, dot / jnp.where(positive, denom, 1.0), 0.0)


def learned_schedule(
    inner: optax.GradientTransformation,
    schedule: LSTMSchedule,
    schedule_params: Any,
) -> optax.GradientTransformationExtraArgs:
    r"""Scales the updates of `inner` by the rate an `LSTMSchedule` emits from the loss.

    At each step, with :math:`L_t` the loss passed as ``value=`` and :math:`g_t` the incoming
    gradient,

    .. math::
      (\text{carry}_{t+1}, \eta_t) = \text{schedule}(\text{carry}_t, L_t, \|g_t\|), \qquad
      u_t = \eta_t \cdot \text{inner}(g_t)

    so ``inner`` should have unit learning rate (``optax.sgd(1.0)``, ``optax.adam(1.0)``). With
    ``schedule.alignment_features`` the schedule also reads :math:`\cos(g_t, \text{inner}_{t-1})`,
    and the state keeps the previous inner update (one params-sized buffer). The
    result is differentiable with respect to ``schedule_params``: build the transformation inside
    the function you differentiate to meta-learn them (as `lookahead_jax.meta` does). With
    ``schedule.validation_features`` each update also needs ``val_loss=``, the loss on data the
    run does not train on (evaluated at the same params as ``value``, or the latest one there is).

    Composition with `lookahead`: ``lookahead(learned_schedule(sgd(1.0), ...))`` schedules the fast
    steps (the paper's semantics: syncs are untouched). ``learned_schedule(lookahead(...), ...)``
    scales lookahead's whole update, sync jumps included; use it only if that is what you mean.

    Args:
      inner: any optax transformation; extra args (``value=`` included) are forwarded to it.
      schedule: an `LSTMSchedule`.
      schedule_params: its params (`schedule.init_params(key)` or meta-trained ones).

    Returns:
      An `optax.GradientTransformationExtraArgs` whose update needs ``value=loss`` (and
      ``val_loss=`` with ``schedule.validation_features``).
      Read the rate with `current_learning_rate(state)`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from lookahead_jax import (
      ...     LSTMSchedule, current_learning_rate, learned_schedule)
      >>> schedule = LSTMSchedule(base_lr=0.1)
      >>> tx = learned_schedule(optax.sgd(1.0), schedule, schedule.init_params(jax.random.key(0)))
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> loss, grads = jax.value_and_grad(lambda p: 0.5 * jnp.sum(p**2))(params)
      >>> updates, state = tx.update(grads, state, params, value=loss)
      >>> optax.apply_updates(params, updates)
      Array([ 0.9, -1.8], dtype=float32)
      >>> float(current_learning_rate(state))
      0.10000000149011612
    """
    if not isinstance(schedule, LSTMSchedule):
        raise TypeError(f"learned_schedule: schedule must be an LSTMSchedule, got {schedule!r}")
    inner = checks.transformation("learned_schedule", inner)
    check_params("learned_schedule", schedule, schedule_params)

    # The carry (and so the schedule's arithmetic) takes the dtype of the schedule's params:
    # float64 params give a float64 schedule, as a finite-difference check needs.
    dtype = jnp.result_type(*jax.tree.leaves(schedule_params))

    def init_fn(params: optax.Params) -> LearnedScheduleState:
        checks.float_params("learned_schedule", params)
        return LearnedScheduleState(
            inner_state=inner.init(params),
            carry=schedule.initial_carry(dtype),
            lr=jnp.asarray(schedule.base_lr, dtype),
            # In the wider of the param's and the schedule's dtype: a bfloat16 buffer would round
            # an f32 update before the schedule reads it (the cosine is the schedule's input).
            prev_update=(
                jax.tree.map(
                    lambda p: jnp.zeros(jnp.shape(p), jnp.promote_types(jnp.result_type(p), dtype)),
                    params,
                )
                if schedule.alignment_features
                else None
            ),
        )

    def update_fn(
        updates: optax.Updates,
        state: LearnedScheduleState,
        params: optax.Params | None = None,
        *,
        value: jax.Array | None = None,
        val_loss: jax.Array | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, LearnedScheduleState]:
        checks.like_params("learned_schedule", updates, params)
        if value is None:
            raise ValueError(
                "learned_schedule: update needs the loss as the `value` extra argument, e.g. "
                "tx.update(grads, state, params, value=loss); in a Flax TrainState use "
                "ExtraArgsTrainState.apply_gradients(grads=grads, value=loss)."
            )
        if schedule.validation_features and val_loss is None:
            raise ValueError(
                "learned_schedule: the schedule has validation_features, so update needs the "
                "validation loss (on rows the run does not train on) as the `val_loss` extra "
                "argument, e.g. tx.update(grads, state, params, value=loss, val_loss=val_loss); "
                "got val_loss=None"
            )
        if val_loss is not None:  # forwarded, as `value` is, for an inner transformation
            extra_args["val_loss"] = val_loss
        sq = sum((_sq_norm(u, dtype) for u in jax.tree.leaves(updates)), start=jnp.zeros([], dtype))
        grad_norm = _safe_norm(sq)
        alignment = None
        if schedule.alignment_features:
            alignment = _alignment(updates, grad_norm, state.prev_update, dtype)
        carry, lr = schedule.apply(
            schedule_params, state.carry, value, grad_norm, alignment, val_loss
        )
        inner_updates, inner_state = inner.update(
            updates, state.inner_state, params, value=value, **extra_args
        )
        scaled = jax.tree.map(lambda u: u * lr.astype(u.dtype), inner_updates)
        prev_update = None
        if schedule.alignment_features:  # in the dtypes the buffer was initialised with
            prev_update = jax.tree.map(
                lambda u, old: u.astype(old.dtype), inner_updates, state.prev_update
            )
        new_state = LearnedScheduleState(
            inner_state=inner_state,
            carry=carry,
            lr=lr.astype(state.lr.dtype),
            prev_update=prev_update,
        )
        return scaled, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def current_learning_rate(state: optax.OptState) -> jax.Array:
    """Returns the rate of the outermost `learned_schedule` inside an optimizer state.

    Args:
      state: the state of `learned_schedule(...)` or of any optax wrapper or `lookahead` around it.

    Returns:
      A scalar: the rate used by the last update (``base_lr`` before the first update).

    Raises:
      ValueError: if the state holds no `LearnedScheduleState`, or several separate ones.
    """
    return nested_state.find_state(state, LearnedScheduleState, caller="current_learning_rate").lr
