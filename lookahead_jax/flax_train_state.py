"""Flax integration: a `TrainState` that forwards optax's extra arguments (``value=loss``)."""

from collections.abc import Mapping
from typing import Any

import optax
from flax.training import train_state

# Extra keyword arguments of optax's `GradientTransformationExtraArgs` convention that
# `ExtraArgsTrainState.apply_gradients` forwards to `tx.update` instead of `replace`.
# optax's extra args, and `learned_schedule`'s validation loss.
_OPTAX_EXTRA_ARGS = ("value", "grad", "value_fn", "val_loss")


class ExtraArgsTrainState(train_state.TrainState):
    """A Flax `TrainState` whose `apply_gradients` forwards optax extra args to `tx.update`.

    Flax's own `TrainState.apply_gradients(grads=..., **kwargs)` treats every keyword as a field
    to replace, so ``value=loss`` cannot reach the optimizer. Here ``value``, ``grad``,
    ``value_fn`` and ``val_loss`` (`learned_schedule`'s validation loss) go to ``tx.update``;
    other keywords are replaced as in Flax.

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
        """Flax's `apply_gradients`, with ``value``/``grad``/``value_fn``/``val_loss`` sent to
        `tx.update`.

        Everything else is Flax's own code (it runs the installed Flax's `apply_gradients`), so
        collections such as ``OVERWRITE_WITH_GRADIENT`` are handled exactly as Flax does.
        """
        extra = {k: kwargs.pop(k) for k in _OPTAX_EXTRA_ARGS if k in kwargs}
        if not isinstance(grads, Mapping):
            # Params that are not a dict (a bare array): Flax's own code would test a key on
            # them and fail; there is no collection to overwrite, so this is all it would do.
            updates, opt_state = self.tx.update(grads, self.opt_state, self.params, **extra)
            params = optax.apply_updates(self.params, updates)
            return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **kwargs)
        if not extra:
            return super().apply_gradients(grads=grads, **kwargs)
        # Flax calls tx.update(grads, opt_state, params): bind the extra args for that one call.
        tx = self.tx
        bound = optax.GradientTransformation(
            tx.init, lambda u, s, p=None: tx.update(u, s, p, **extra)
        )
        new = super(ExtraArgsTrainState, self.replace(tx=bound)).apply_gradients(
            grads=grads, **kwargs
        )
        return new.replace(tx=tx)
