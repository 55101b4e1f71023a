"""A compact, jitted classifier training loop used by the command line (and handy in notebooks).

One epoch is one `lax.scan` over minibatches, and independent seeds train side by side under
`jax.vmap`, so a multi-seed comparison costs one compilation per optimizer.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax.data import Dataset
from lookahead_jax.lookahead import LookaheadState, slow_params


class MLP(nn.Module):
    """A ReLU multilayer perceptron classifier."""

    hidden: Sequence[int]
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


class History(NamedTuple):
    """Per-epoch metrics, each of shape [seeds, epochs], evaluated on the weights to export."""

    train_loss: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    seconds_per_epoch: float  # wall time of one epoch for all seeds together, after compilation


def eval_params(opt_state: optax.OptState, params: optax.Params) -> optax.Params:
    """The weights to evaluate: Lookahead's slow weights if the optimizer has them, else params."""
    has_lookahead = any(
        isinstance(leaf, LookaheadState)
        for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, LookaheadState))
    )
    return slow_params(opt_state) if has_lookahead else params


def train_classifier(
    tx: optax.GradientTransformation,
    data: Dataset,
    *,
    hidden: Sequence[int] = (64, 64),
    epochs: int = 20,
    batch_size: int = 64,
    seeds: Sequence[int] = (0,),
    on_epoch: Callable[[int], Any] | None = None,
) -> History:
    """Trains one MLP per seed with `tx` (cross-entropy) and evaluates it after every epoch.

    Args:
      tx: the optimizer.
      data: a `Dataset`.
      hidden: widths of the hidden layers.
      epochs: passes over the training set.
      batch_size: minibatch size; the last partial batch of each shuffled epoch is dropped.
      seeds: one model per seed (initialisation and shuffling), trained in parallel with vmap.
      on_epoch: called with the epoch number (1-based) after each epoch, e.g. to advance a bar.

    Returns:
      The `History` of the losses and accuracy on the evaluation weights (`eval_params`).
    """
    if batch_size < 1 or batch_size > len(data.x_train):
        raise ValueError(
            f"train_classifier: batch_size must be in [1, {len(data.x_train)}], got {batch_size=}"
        )
    model = MLP(hidden=tuple(hidden), num_classes=data.num_classes)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    steps = len(x_train) // batch_size

    def loss_fn(params, x, y):
        logits = model.apply({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

    def init(key):
        params = model.init(key, x_train[:1])["params"]
        return params, tx.init(params)

    def epoch(params, opt_state, key):
        order = jax.random.permutation(key, len(x_train))[: steps * batch_size]
        batches = order.reshape(steps, batch_size)

        def step(carry, idx):
            params, opt_state = carry
            grads = jax.grad(lambda p: loss_fn(p, x_train[idx], y_train[idx])[0])(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), batches)
        evaluated = eval_params(opt_state, params)
        train_loss, _ = loss_fn(evaluated, x_train, y_train)
        test_loss, logits = loss_fn(evaluated, x_test, y_test)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == y_test)
        return params, opt_state, (train_loss, test_loss, accuracy)

    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
    init_keys, shuffle_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    params, opt_state = jax.jit(jax.vmap(init))(init_keys)
    run_epoch = jax.jit(jax.vmap(epoch), donate_argnums=(0, 1))
    metrics, durations = [], []
    for e in range(epochs):
        epoch_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(shuffle_keys, e)
        start = time.perf_counter()
        params, opt_state, m = run_epoch(params, opt_state, epoch_keys)
        metrics.append(jax.device_get(m))
        durations.append(time.perf_counter() - start)
        if on_epoch is not None:
            on_epoch(e + 1)
    train_loss, test_loss, accuracy = (np.stack(x, axis=1) for x in zip(*metrics, strict=True))
    # The first epoch includes compilation; the rest measure training alone.
    timed = durations[1:] if len(durations) > 1 else durations
    return History(train_loss, test_loss, accuracy, float(np.median(timed)))
