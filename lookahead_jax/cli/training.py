"""A compact, jitted classifier training loop used by the command line (and handy in notebooks).

One epoch is one `lax.scan` over minibatches, and independent seeds train side by side under
`jax.vmap`, so a multi-seed comparison costs one compilation per optimizer.
"""

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax.cli.data import Dataset
from lookahead_jax.lookahead import LookaheadState, slow_params
from lookahead_jax.meta import MLP


class CNN(nn.Module):
    """A small convolutional classifier for 8x8 one-channel images (scikit-learn's digits)."""

    num_classes: int
    side: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(*x.shape[:-1], self.side, self.side, 1)
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        x = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2))(x))
        x = x.mean(axis=(-3, -2))  # global average pooling
        return nn.Dense(self.num_classes)(x)


MODELS = ("mlp", "cnn")


def make_model(name: str, data: Dataset, hidden: Sequence[int] = (64, 64)) -> nn.Module:
    """Builds the named classifier for `data`.

    Args:
      name: `"mlp"` or `"cnn"` (square one-channel images only, e.g. digits).
      data: the data set, for its feature count and number of classes.
      hidden: hidden widths of the MLP.

    Returns:
      A Flax module mapping `[batch, features]` to logits.
    """
    if name == "mlp":
        return MLP(hidden=tuple(hidden), out=data.num_classes, activation=nn.relu)
    if name == "cnn":
        side = round(data.x_train.shape[1] ** 0.5)
        if side * side != data.x_train.shape[1]:
            raise ValueError(
                f"make_model: the cnn needs square one-channel images; {data.name} has "
                f"{data.x_train.shape[1]} features"
            )
        return CNN(num_classes=data.num_classes, side=side)
    raise ValueError(f"make_model: unknown model {name!r}; choose from {', '.join(MODELS)}")


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
    model: nn.Module | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    seeds: Sequence[int] = (0,),
    on_epoch: Callable[[int], Any] | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 5,
) -> History:
    """Trains one MLP per seed with `tx` (cross-entropy) and evaluates it after every epoch.

    Args:
      tx: the optimizer.
      data: a `Dataset`.
      model: the Flax classifier; default an MLP with two hidden layers of 64.
      epochs: passes over the training set.
      batch_size: minibatch size; the last partial batch of each shuffled epoch is dropped.
      seeds: one model per seed (initialisation and shuffling), trained in parallel with vmap.
      on_epoch: called with the epoch number (1-based) after each epoch, e.g. to advance a bar.
      checkpoint_dir: if given, params, optimizer state and metrics are saved there with orbax
        every `checkpoint_every` epochs and after the last, and a run finds the latest checkpoint
        there and continues from it. Shuffling is a pure function of (seed, epoch), so a resumed
        run ends bit-identical to an uninterrupted one.
      checkpoint_every: epochs between checkpoints.

    Returns:
      The `History` of the losses and accuracy on the evaluation weights (`eval_params`).
    """
    if batch_size < 1 or batch_size > len(data.x_train):
        raise ValueError(
            f"train_classifier: batch_size must be in [1, {len(data.x_train)}], got {batch_size=}"
        )
    if model is None:
        model = MLP(hidden=(64, 64), out=data.num_classes, activation=nn.relu)
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
    metrics, durations, first_epoch = [], [], 0
    manager = None
    if checkpoint_dir is not None:
        manager = _checkpoint_manager(checkpoint_dir)
        latest = manager.latest_step()
        if latest is not None:
            params, opt_state, metrics = _restore(manager, latest, params, opt_state)
            first_epoch = latest
            if on_epoch is not None:
                on_epoch(first_epoch)
    for e in range(first_epoch, epochs):
        epoch_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(shuffle_keys, e)
        start = time.perf_counter()
        params, opt_state, m = run_epoch(params, opt_state, epoch_keys)
        metrics.append(jax.device_get(m))
        durations.append(time.perf_counter() - start)
        if manager is not None and ((e + 1) % checkpoint_every == 0 or e + 1 == epochs):
            manager.save(e + 1, args=_save_args(params, opt_state, metrics))
        if on_epoch is not None:
            on_epoch(e + 1)
    if manager is not None:
        manager.wait_until_finished()
        manager.close()
    train_loss, test_loss, accuracy = (np.stack(x, axis=1) for x in zip(*metrics, strict=True))
    # The first epoch includes compilation; the rest measure training alone.
    timed = durations[1:] if len(durations) > 1 else durations
    return History(
        train_loss, test_loss, accuracy, float(np.median(timed)) if timed else float("nan")
    )


def _checkpoint_manager(directory: Path):
    import orbax.checkpoint as ocp  # only runs that checkpoint pay for the import

    # A checkpoint interrupted mid-write (Ctrl-C) stays a temporary folder that orbax never
    # restores from; cleaned up when the run resumes.
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, cleanup_tmp_directories=True)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _save_args(params, opt_state, metrics):
    import orbax.checkpoint as ocp

    per_epoch = [[np.asarray(m).tolist() for m in epoch] for epoch in metrics]
    return ocp.args.Composite(
        state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
        metrics=ocp.args.JsonSave({"per_epoch": per_epoch}),
    )


def _restore(manager, step, params, opt_state):
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(
        ocp.utils.to_shape_dtype_struct, {"params": params, "opt_state": opt_state}
    )
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), metrics=ocp.args.JsonRestore()
        ),
    )
    metrics = [
        tuple(np.asarray(m, np.float32) for m in epoch) for epoch in restored.metrics["per_epoch"]
    ]
    return restored.state["params"], restored.state["opt_state"], metrics
