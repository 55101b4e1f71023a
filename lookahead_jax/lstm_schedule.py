"""A learning-rate schedule that is a small LSTM reading the loss, differentiable end to end.

`LSTMSchedule` is a pure `flax.linen` module: given its carry and this step's loss and gradient
norm it returns a new carry and a learning rate. `learned_schedule` wraps any optax transformation
and scales its updates by that rate. Because the module's params are an ordinary pytree closed over
by the transformation, `jax.grad` can differentiate a whole training run with respect to them;
`lookahead_jax.meta` uses this very transformation in its inner loop.
"""

import math
import numbers
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from lookahead_jax import nested_state, tree_checks

# Extra keyword arguments of optax's `GradientTransformationExtraArgs` convention that
# `ExtraArgsTrainState.apply_gradients` forwards to `tx.update` instead of `replace`.
_OPTAX_EXTRA_ARGS = ("value", "grad", "value_fn")
_INT32_MAX = 2**31 - 1


class ScheduleCarry(NamedTuple):
    """Recurrent state of `LSTMSchedule`: the LSTM carry and running statistics of training.

    The LSTM part is stored as two named fields, `c` then `h`, in flax's order: flax's
    `LSTMCell` carry is the tuple `(c, h)` (equinox's is `(h, c)`).
    """

    c: jax.Array  # shape=(hidden_size,): LSTM cell state
    h: jax.Array  # shape=(hidden_size,): LSTM hidden state (the output layer reads it)
    count: jax.Array  # shape=(), int32: steps seen so far (saturates at int32 max)
    n_finite: jax.Array  # shape=(), int32: steps whose loss was finite (saturates)
    log_loss_avg: jax.Array  # shape=(): running average of log(loss) over finite losses
    log_loss_init: jax.Array  # shape=(): log of the first finite loss
    log_gnorm_avg: jax.Array  # shape=(): running average of log(gradient norm)
    log_gnorm_init: jax.Array  # shape=(): log of the first finite gradient norm


class LSTMSchedule(nn.Module):
    r"""A learning-rate schedule computed by an LSTM from scale-free features of training.

    Each step it reads, clipped to :math:`[-c, c]` (``feature_clip``):

    - :math:`\log(L_t / \bar L_{t-1})`, the loss against its running (geometric) average, and
      :math:`\log(L_t / L_0)`, against the first loss;
    - the same two ratios for the gradient norm :math:`\|g_t\|`, and :math:`\tfrac14 \log\|g_t\|`;
    - a flag that is 1 when the loss or gradient norm is not finite (those features are then set
      to :math:`+c`, and the running statistics skip the step, so a NaN or infinite loss never
      reaches the carry);
    - the step as :math:`\tfrac14 \log(t+1)`, :math:`\sin\log(t+1)`, :math:`\cos\log(t+1)`.

    and emits :math:`\eta_t` through a smooth map that is bounded in log space,

    .. math::
      \log \eta_t = \log \eta_0 + w\,\frac{s (1 - \tau^2)}{1 + s \tau}, \qquad s = \tanh z_t,

    with :math:`z_t` the output layer on the LSTM's hidden state,
    :math:`w = \tfrac12 \log(\eta_{\max}/\eta_{\min})` and :math:`\tau` chosen so that
    :math:`\eta_t \in (\eta_{\min}, \eta_{\max})`. The output layer starts at zero, so an untrained
    schedule returns exactly ``base_lr`` (:math:`s = 0`) at every step. Written this way (rather
    than :math:`\tanh(z + \text{const})`) the untrained rate is ``base_lr`` bit for bit.

    Attributes:
      base_lr: the rate of the untrained schedule.
      min_lr: lower bound of the rate (default ``base_lr / 100``); must be below ``base_lr``.
      max_lr: upper bound of the rate (default ``10 * base_lr``); must be above ``base_lr``.
      hidden_size: LSTM width.
      feature_clip: every feature is clipped to ``[-feature_clip, feature_clip]``.
      avg_decay: decay of the running averages of log-loss and log-gradient-norm, in [0, 1).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lookahead_jax.lstm_schedule import LSTMSchedule
      >>> schedule = LSTMSchedule(base_lr=0.1)
      >>> params = schedule.init_params(jax.random.key(0))
      >>> carry, lr = schedule.apply(
      ...     params, schedule.initial_carry(), jnp.float32(2.0), jnp.float32(1.0))
      >>> float(lr)  # untrained: exactly base_lr
      0.10000000149011612
    """

    base_lr: float
    min_lr: float | None = None
    max_lr: float | None = None
    hidden_size: int = 16
    feature_clip: float = 5.0
    avg_decay: float = 0.9

    num_features = 10

    def __post_init__(self) -> None:
        for name in ("base_lr", "feature_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"LSTMSchedule: {name} must be a positive float, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"LSTMSchedule: {name} must be positive and finite, got {value!r}")
        lo, hi = self.lr_bounds
        base_lr = self.base_lr
        if not (math.isfinite(lo) and lo > 0 and math.isfinite(hi)):
            raise ValueError(
                f"LSTMSchedule: min_lr and max_lr must be positive and finite, got "
                f"min_lr={self.min_lr!r}, max_lr={self.max_lr!r}"
            )
        if not lo < base_lr < hi:
            raise ValueError(
                "LSTMSchedule: need min_lr < base_lr < max_lr, got "
                f"min_lr={lo!r}, {base_lr=}, max_lr={hi!r}"
            )
        hidden_size = self.hidden_size
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, numbers.Integral):
            raise TypeError(f"LSTMSchedule: hidden_size must be an int >= 1, got {hidden_size=}")
        if hidden_size < 1:
            raise ValueError(f"LSTMSchedule: hidden_size must be an int >= 1, got {hidden_size=}")
        avg_decay = self.avg_decay
        if not 0.0 <= avg_decay < 1.0:
            raise ValueError(f"LSTMSchedule: avg_decay must be in [0, 1), got {avg_decay=}")
        super().__post_init__()

    @property
    def lr_bounds(self) -> tuple[float, float]:
        """(min_lr, max_lr) with the defaults filled in."""
        lo = self.base_lr / 100.0 if self.min_lr is None else float(self.min_lr)
        hi = self.base_lr * 10.0 if self.max_lr is None else float(self.max_lr)
        return lo, hi

    def initial_carry(self, dtype: Any = jnp.float32) -> ScheduleCarry:
        """The carry before the first step (needs no params)."""
        # A separate buffer per field: aliased fields could not be donated ("donate the same
        # buffer twice").
        vector = lambda: jnp.zeros([self.hidden_size], dtype)
        scalar = lambda: jnp.zeros([], dtype)
        count = lambda: jnp.zeros([], jnp.int32)
        return ScheduleCarry(
            vector(), vector(), count(), count(), scalar(), scalar(), scalar(), scalar()
        )

    def init_params(self, key: jax.Array) -> Any:
        """Initial params (the output layer is zero, so the schedule starts at ``base_lr``)."""
        scalar = jnp.ones([], jnp.float32)
        return self.init(key, self.initial_carry(), scalar, scalar)

    def features(
        self, carry: ScheduleCarry, loss: jax.Array, grad_norm: jax.Array
    ) -> tuple[jax.Array, ScheduleCarry]:
        """The clipped input features and the carry with updated running statistics."""
        dtype = carry.log_loss_avg.dtype
        clip = self.feature_clip
        loss = jnp.asarray(loss, dtype)
        grad_norm = jnp.asarray(grad_norm, dtype)
        tiny = jnp.finfo(dtype).tiny

        def safe_log(x):
            # Double `where`: a non-finite x must not reach `log`, or its NaN would come back in
            # the backward pass even though the forward value is masked out.
            ok = jnp.isfinite(x)
            return ok, jnp.log(jnp.maximum(jnp.where(ok, x, 1.0), tiny))

        def ratios(ok, log_x, avg, init, first):
            # On the first finite step both statistics start at this step's value.
            start = first & ok
            avg = jnp.where(start, log_x, avg)
            init = jnp.where(start, log_x, init)
            rel_avg = jnp.where(ok, jnp.clip(log_x - avg, -clip, clip), clip)
            rel_init = jnp.where(ok, jnp.clip(log_x - init, -clip, clip), clip)
            # Statistics skip non-finite steps, so one NaN never reaches the carry.
            new_avg = jnp.where(ok, self.avg_decay * avg + (1.0 - self.avg_decay) * log_x, avg)
            return rel_avg, rel_init, new_avg, init

        loss_ok, log_loss = safe_log(loss)
        gnorm_ok, log_gnorm = safe_log(grad_norm)
        both_ok = loss_ok & gnorm_ok
        n = carry.n_finite
        l_avg, l_init, new_l_avg, new_l_init = ratios(
            both_ok, log_loss, carry.log_loss_avg, carry.log_loss_init, n == 0
        )
        g_avg, g_init, new_g_avg, new_g_init = ratios(
            both_ok, log_gnorm, carry.log_gnorm_avg, carry.log_gnorm_init, n == 0
        )
        raw_gnorm = jnp.where(gnorm_ok, jnp.clip(0.25 * log_gnorm, -clip, clip), clip)
        bad = (~both_ok).astype(dtype)
        log_t = jnp.log1p(carry.count.astype(dtype))
        feats = jnp.stack(
            [
                l_avg,
                l_init,
                g_avg,
                g_init,
                raw_gnorm,
                bad,
                jnp.clip(0.25 * log_t, -clip, clip),
                jnp.sin(log_t),
                jnp.cos(log_t),
                jnp.ones([], dtype),
            ]
        )
        saturating_inc = lambda k: jnp.where(k >= _INT32_MAX, k, k + 1)
        new_carry = carry._replace(
            count=saturating_inc(carry.count),
            n_finite=jnp.where(both_ok, saturating_inc(n), n),
            log_loss_avg=new_l_avg,
            log_loss_init=new_l_init,
            log_gnorm_avg=new_g_avg,
            log_gnorm_init=new_g_init,
        )
        return feats, new_carry

    def lr_from_output(self, z: jax.Array) -> jax.Array:
        """The bounded map from the output layer's value to the learning rate."""
        lo, hi = self.lr_bounds
        half = 0.5 * (math.log(hi) - math.log(lo))
        tau = (math.log(self.base_lr) - 0.5 * (math.log(hi) + math.log(lo))) / half
        s = jnp.tanh(z)
        # tanh(z + atanh(tau)) - tau, written so that z = 0 gives exactly 0.
        shift = s * (1.0 - tau * tau) / (1.0 + s * tau)
        return self.base_lr * jnp.exp(half * shift)

    @nn.compact
    def __call__(
        self, carry: ScheduleCarry, loss: jax.Array, grad_norm: jax.Array
    ) -> tuple[ScheduleCarry, jax.Array]:
        """One step: returns the new carry and the learning rate for this step's update.

        Args:
          carry: the previous `ScheduleCarry` (`initial_carry()` before the first step).
          loss: this step's training loss (a scalar; non-finite values are tolerated).
          grad_norm: the global norm of this step's gradient (a scalar).

        Returns:
          `(new_carry, lr)`, `lr` a scalar of the carry's dtype.
        """
        feats, carry = self.features(carry, loss, grad_norm)
        cell = nn.OptimizedLSTMCell(self.hidden_size, name="lstm")
        (c, h), out = cell((carry.c, carry.h), feats)  # flax's carry order: (c, h)
        z = nn.Dense(1, kernel_init=nn.initializers.zeros, name="out")(out)[0]
        lr = self.lr_from_output(z).astype(carry.log_loss_avg.dtype)
        return carry._replace(c=c.astype(carry.c.dtype), h=h.astype(carry.h.dtype)), lr


class LearnedScheduleState(NamedTuple):
    """State of `learned_schedule`."""

    inner_state: optax.OptState
    carry: ScheduleCarry  # the schedule's recurrent state (LSTM carry in flax's (c, h) order)
    lr: jax.Array  # shape=(): the rate used by the last update (base_lr before the first)


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

    so ``inner`` should have unit learning rate (``optax.sgd(1.0)``, ``optax.adam(1.0)``). The
    result is differentiable with respect to ``schedule_params``: build the transformation inside
    the function you differentiate to meta-learn them (as `lookahead_jax.meta` does).

    Composition with `lookahead`: ``lookahead(learned_schedule(sgd(1.0), ...))`` schedules the fast
    steps (the paper's semantics: syncs are untouched). ``learned_schedule(lookahead(...), ...)``
    scales lookahead's whole update, sync jumps included; use it only if that is what you mean.

    Args:
      inner: any optax transformation; extra args (``value=`` included) are forwarded to it.
      schedule: an `LSTMSchedule`.
      schedule_params: its params (`schedule.init_params(key)` or meta-trained ones).

    Returns:
      An `optax.GradientTransformationExtraArgs` whose update needs ``value=loss``.
      Read the rate with `current_learning_rate(state)`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from lookahead_jax.lstm_schedule import (
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
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            "learned_schedule: inner must be an optax GradientTransformation (with init and "
            f"update), got {inner!r}"
        )
    inner = optax.with_extra_args_support(inner)

    # The carry (and so the schedule's arithmetic) takes the dtype of the schedule's params:
    # float64 params give a float64 schedule, as a finite-difference check needs.
    dtype = jnp.result_type(*jax.tree.leaves(schedule_params))

    def init_fn(params: optax.Params) -> LearnedScheduleState:
        tree_checks.check_float_params("learned_schedule", params)
        return LearnedScheduleState(
            inner_state=inner.init(params),
            carry=schedule.initial_carry(dtype),
            lr=jnp.asarray(schedule.base_lr, dtype),
        )

    def update_fn(
        updates: optax.Updates,
        state: LearnedScheduleState,
        params: optax.Params | None = None,
        *,
        value: jax.Array | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, LearnedScheduleState]:
        tree_checks.check_like_params("learned_schedule", updates, params)
        if value is None:
            raise ValueError(
                "learned_schedule: update needs the loss as the `value` extra argument, e.g. "
                "tx.update(grads, state, params, value=loss); in a Flax TrainState use "
                "ExtraArgsTrainState.apply_gradients(grads=grads, value=loss)."
            )
        grad_norm = optax.tree.norm(updates)
        carry, lr = schedule.apply(schedule_params, state.carry, value, grad_norm)
        inner_updates, inner_state = inner.update(
            updates, state.inner_state, params, value=value, **extra_args
        )
        scaled = jax.tree.map(lambda u: u * lr.astype(u.dtype), inner_updates)
        new_state = LearnedScheduleState(
            inner_state=inner_state, carry=carry, lr=lr.astype(state.lr.dtype)
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


class ExtraArgsTrainState(train_state.TrainState):
    """A Flax `TrainState` whose `apply_gradients` forwards optax extra args to `tx.update`.

    Flax's own `TrainState.apply_gradients(grads=..., **kwargs)` treats every keyword as a field
    to replace, so ``value=loss`` cannot reach the optimizer. Here ``value``, ``grad`` and
    ``value_fn`` go to ``tx.update``; other keywords are replaced as in Flax.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from lookahead_jax.lstm_schedule import (
      ...     ExtraArgsTrainState, LSTMSchedule, learned_schedule)
      >>> schedule = LSTMSchedule(base_lr=0.5)
      >>> tx = learned_schedule(optax.sgd(1.0), schedule, schedule.init_params(jax.random.key(0)))
      >>> loss_fn = lambda p: jnp.sum(p**2)
      >>> state = ExtraArgsTrainState.create(apply_fn=None, params=jnp.ones(2), tx=tx)
      >>> loss, grads = jax.value_and_grad(loss_fn)(state.params)
      >>> state = state.apply_gradients(grads=grads, value=loss)
      >>> state.params
      Array([0., 0.], dtype=float32)
    """

    def apply_gradients(self, *, grads: Any, **kwargs: Any) -> "ExtraArgsTrainState":
        extra = {k: kwargs.pop(k) for k in _OPTAX_EXTRA_ARGS if k in kwargs}
        updates, new_opt_state = self.tx.update(grads, self.opt_state, self.params, **extra)
        new_params = optax.apply_updates(self.params, updates)
        return self.replace(
            step=self.step + 1, params=new_params, opt_state=new_opt_state, **kwargs
        )
