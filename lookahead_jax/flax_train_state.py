"""Flax integration: a `TrainState` that forwards optax's extra arguments (``value=loss``)."""

from typing import Any

import optax
from flax.training import train_state

# Extra keyword arguments of optax's `GradientTransformationExtraArgs` convention that
# `ExtraArgsTrainState.apply_gradients` forwards to `tx.update` instead of `replace`.
_OPTAX_EXTRA_ARGS = ("value", "grad", "value_fn")


class ExtraArgsTrainState(train_state.TrainState):
    """A Flax `TrainState` whose `apply_gradients` forwards optax extra args to `tx.update`.

    Flax's own `TrainState.apply_gradients(grads=..., **kwargs)` treats every keyword as a field
    to replace, so ``value=loss`` cannot reach the optimizer. Here ``value``, ``grad`` and
    ``value_fn`` go to ``tx.update``; other keywords are replaced as in Flax.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from lookahead_jax import (
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
