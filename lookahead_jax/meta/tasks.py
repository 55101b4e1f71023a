"""Task protocol and built-in task families for meta-training learned schedules.

A `Task` is a training problem given as pure functions (of PRNG keys and params), and a task
family is a function from a task key to a `Task`. Everything a task holds is derived from its key
with `jax.random`, so a family can be `jax.vmap`-ed over a batch of task keys: the closures then
hold batched arrays, and one compiled inner loop trains a whole batch of tasks at once.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax import checks

Batch = Any


class Task(NamedTuple):
    """A training problem: params initialisation, minibatch loss, batch sampling, full loss.

    Losses must be >= 0 at every params (cross-entropy, squared error, ...): the meta-objectives
    are log-ratios of losses, so a loss of exactly 0 scores as the best possible (log of the
    smallest positive float) and a non-finite one as a divergence. Negative losses are refused:
    `meta_train` raises a `ValueError` when a family's loss is negative at a task's initial
    params (before any meta-step), and when a loss the meta-objective reads goes negative during
    an unroll (at that meta-step; the `final_*` objectives read only each truncation's last
    loss, so a negative loss before it is not seen). Shift a loss that can be negative (a
    margin, an NLL of densities) by a lower bound.

    `test_loss` and `test_accuracy` (optional) score params on data the task never trains on
    (its held-out split): the evaluation protocol (`lookahead_jax.meta.protocol`) ranks methods
    by test loss where a family defines it, and falls back to `full_loss` (saying so) where not.

    `validation_loss` (optional) scores params on a third split, rows the task neither trains on
    nor is tested on: what a run may read while it trains (a schedule with
    `LSTMSchedule.validation_features`, early stopping) without seeing its test rows. Where it is
    defined, the inner loops pass it to every update as ``val_loss=``.
    """

    init_params: Callable[[jax.Array], optax.Params]  # PRNG key -> initial params
    loss: Callable[[optax.Params, Batch], jax.Array]  # (params, batch) -> scalar training loss
    sample_batch: Callable[[jax.Array], Batch]  # PRNG key -> a minibatch
    full_loss: Callable[[optax.Params], jax.Array]  # params -> loss on all the task's train data
    test_loss: Callable[[optax.Params], jax.Array] | None = None  # params -> held-out loss
    test_accuracy: Callable[[optax.Params], jax.Array] | None = None  # params -> held-out acc.
    validation_loss: Callable[[optax.Params], jax.Array] | None = None  # params -> loss, 3rd split


TaskFamily = Callable[[jax.Array], Task]  # task key -> Task (vmappable over the key)


@dataclasses.dataclass(frozen=True)
class ReplayedFamily:
    """Tasks a user trains twice: first with a validation split, then on every row again.

    The first run is `first`'s task: the schedule trains on its training rows and reads its
    validation loss. The second run, the replay, is `replay`'s task for the same key (the same
    problem with the validation rows given back as training rows, the same test rows): the
    unit-rate inner optimizer from the same initial params, with the same minibatch keys, at the
    rate the schedule chose at each step of the first run. Practitioners do this by hand (pick
    the epochs on a validation split, retrain on everything); `meta_train` on a `ReplayedFamily`
    reads its meta-objective on the replay, so the schedule is trained for what the second run
    gets. Both families must give the same initial params for a key (the same architecture).

    Only `meta_train`, the functions of `lookahead_jax.meta.unroll` and
    `meta.protocol.final_metrics` (with ``inner=``, scoring the replay) take one; it is not a
    `TaskFamily` (calling it raises), so no evaluation reads one run where two were meant.

    Args:
      first: the family of the run the schedule chooses its rates on (with a validation split).
      replay: the family of the run those rates are replayed on.

    Example:
      >>> import jax, numpy as np
      >>> from lookahead_jax import meta
      >>> x = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
      >>> y = x.sum(axis=1)
      >>> twice = meta.ReplayedFamily(
      ...     meta.data_regression_family(x, y, num_train=100, num_validation=20),
      ...     meta.data_regression_family(x, y, num_train=100),
      ... )
      >>> twice.replay(jax.random.key(0)).validation_loss is None
      True
    """

    first: TaskFamily
    replay: TaskFamily

    def __post_init__(self):
        for name in ("first", "replay"):
            value = getattr(self, name)
            if not callable(value) or isinstance(value, ReplayedFamily):
                raise TypeError(f"ReplayedFamily: {name} must be a TaskFamily, got {value!r}")

    def __call__(self, task_key: jax.Array) -> Task:
        raise TypeError(
            "a ReplayedFamily is two runs, not a TaskFamily: meta_train, meta.unroll and "
            "meta.protocol.final_metrics (with inner=, scoring the replay) take it"
        )


def first_family(family: Any) -> TaskFamily:
    """The family whose tasks the schedule trains on: `family`, or a `ReplayedFamily`'s first."""
    return family.first if isinstance(family, ReplayedFamily) else family


def _positive_ints(caller: str, **kwargs: Any) -> list[int]:
    """Each value as a Python int >= 1 (a shape-() array becomes its int), in order."""
    return [checks.integer(caller, name, value, 1) for name, value in kwargs.items()]


def quadratic_family(
    dim: int = 10, max_condition: float = 100.0, scale_range: tuple[float, float] = (0.3, 3.0)
) -> TaskFamily:
    r"""Random least-squares problems :math:`\tfrac{1}{2n}\|W\theta - y\|^2` (Andrychowicz 2016).

    :math:`W = U \operatorname{diag}(\sigma) V^\top` with random rotations, singular values
    log-spaced from :math:`s` down to :math:`s/\sqrt{\kappa}`; the condition number
    :math:`\kappa` of the Hessian is log-uniform in ``[1, max_condition]`` and the curvature scale
    :math:`s^2` log-uniform in ``scale_range``, so the best step size differs from task to task.
    Deterministic: the batch is ignored. Initial params are standard normal.
    """
    (dim,) = _positive_ints("quadratic_family", dim=dim)
    if not max_condition >= 1.0:
        raise ValueError(f"quadratic_family: max_condition must be >= 1, got {max_condition=}")
    lo, hi = scale_range
    if not 0.0 < lo <= hi:
        raise ValueError(f"quadratic_family: need 0 < scale_range[0] <= [1], got {scale_range=}")

    def make(task_key: jax.Array) -> Task:
        ku, kv, kc, ks, ky = jax.random.split(task_key, 5)
        u, _ = jnp.linalg.qr(jax.random.normal(ku, (dim, dim)))
        v, _ = jnp.linalg.qr(jax.random.normal(kv, (dim, dim)))
        log_kappa = jax.random.uniform(kc, (), maxval=np.log(max_condition))
        log_scale = jax.random.uniform(ks, (), minval=np.log(lo), maxval=np.log(hi))
        sigma = jnp.exp(0.5 * (log_scale - jnp.linspace(0.0, 1.0, dim) * log_kappa))
        w = (u * sigma[None, :]) @ v.T
        y = jax.random.normal(ky, (dim,))

        def loss(params, batch):
            del batch
            r = w @ params["theta"] - y
            return 0.5 * jnp.mean(r * r)

        return Task(
            init_params=lambda key: {"theta": jax.random.normal(key, (dim,))},
            loss=loss,
            sample_batch=lambda key: jnp.zeros([]),
            full_loss=lambda params: loss(params, None),
        )

    return make


class MLP(nn.Module):
    """A multilayer perceptron: `hidden` units per hidden layer, then `out` outputs.

    The one MLP of the package: the task families use its default tanh (smooth losses for
    meta-gradients), the command line's classifier ReLU.
    """

    hidden: tuple[int, ...]
    out: int
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = self.activation(nn.Dense(width)(x))
        return nn.Dense(self.out)(x)


def _cast(params: optax.Params, dtype: Any) -> optax.Params:
    # Params take the dtype of the task's data: float64 under `jax_enable_x64`, where flax would
    # otherwise keep float32 params.
    return jax.tree.map(lambda p: p.astype(dtype), params)


def _supervised_task(
    model: nn.Module,
    x: jax.Array,
    y: jax.Array,
    loss_of,
    batch_size: int,
    test: tuple[jax.Array, jax.Array] | None = None,
    classify: bool = False,
    validation: tuple[jax.Array, jax.Array] | None = None,
) -> Task:
    """A task on the rows (x, y): minibatches drawn with replacement, the full loss on all rows.

    `test` rows, if given, give the held-out `test_loss` (and `test_accuracy` when `classify`);
    `validation` rows, if given, the `validation_loss`.
    """

    def loss(params, batch):
        xb, yb = batch
        return loss_of(model.apply(params, xb), yb)

    def sample_batch(key):
        i = jax.random.randint(key, (batch_size,), 0, len(x))
        return x[i], y[i]

    test_loss = test_accuracy = None
    if test is not None and len(test[0]):
        test_loss = lambda params: loss(params, test)
        if classify:
            test_accuracy = lambda params: jnp.mean(
                jnp.argmax(model.apply(params, test[0]), -1) == test[1]
            )
    validation_loss = None
    if validation is not None and len(validation[0]):
        validation_loss = lambda params: loss(params, validation)
    return Task(
        init_params=lambda key: _cast(model.init(key, x[:1]), x.dtype),
        loss=loss,
        sample_batch=sample_batch,
        full_loss=lambda params: loss(params, (x, y)),
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        validation_loss=validation_loss,
    )


class _RowSplit(NamedTuple):
    """A checked split of a data set's rows: task key -> (training, validation, test rows).

    The validation rows are the last `num_validation` of the task's `num_train` rows, so a task
    has the same test rows (and the same rows in all) with or without a validation split.
    """

    num_rows: int
    num_train: int
    num_test: int
    batch_size: int
    num_validation: int = 0

    def __call__(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        order = jax.random.permutation(key, self.num_rows)
        fit = self.num_train - self.num_validation
        test = order[self.num_train : self.num_train + self.num_test]
        return order[:fit], order[fit : self.num_train], test


def _num_validation(caller: str, num_validation: Any, num_train: int) -> int:
    """`num_validation` checked: an int in [0, num_train), so one training row is left."""
    num_validation = checks.integer(caller, "num_validation", num_validation, 0)
    if num_validation >= num_train:
        raise ValueError(
            f"{caller}: num_validation rows are carved from the num_train={num_train} rows, so "
            f"it must be below num_train, got {num_validation=}"
        )
    return num_validation


def _row_split(
    caller: str,
    x: jax.Array,
    y: jax.Array,
    num_train: Any,
    batch_size: Any,
    num_test: Any,
    num_validation: Any = 0,
) -> _RowSplit:
    """Checks a data set given as rows (x of shape (n, d), y of shape (n,)) and its split."""
    num_train, batch_size = _positive_ints(caller, num_train=num_train, batch_size=batch_size)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(
            f"{caller}: x must have shape (n, d) and y shape (n,), got "
            f"x.shape={x.shape}, y.shape={y.shape}"
        )
    if num_train > len(x):
        raise ValueError(f"{caller}: only {len(x)} rows, got {num_train=}")
    n_rest = len(x) - num_train
    num_test = checks.integer(caller, "num_test", n_rest if num_test is None else num_test, 0)
    if num_test > n_rest:
        raise ValueError(
            f"{caller}: only {n_rest} rows are left for testing after "
            f"num_train={num_train}, got {num_test=}"
        )
    num_validation = _num_validation(caller, num_validation, num_train)
    return _RowSplit(len(x), num_train, num_test, batch_size, num_validation)


def classification_family(
    x: Any,
    y: Any,
    num_classes: int,
    hidden: tuple[int, ...] = (32,),
    num_train: int = 512,
    batch_size: int = 128,
    num_test: int | None = None,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    num_validation: int = 0,
) -> TaskFamily:
    """A Flax MLP classifying rows of a data set of your own (cross-entropy).

    Per task: a random subset of ``num_train`` rows and a random permutation of the class labels;
    the initialisation is drawn from the key given to ``init_params``. Minibatches of
    ``batch_size`` are drawn with replacement from the subset. The task's held-out split
    (`Task.test_loss`, `Task.test_accuracy`) is ``num_test`` of the other rows (default: all
    of them), never trained on.

    Args:
      x: features, shape ``(n, d)``, already scaled as you would train on them.
      y: integer labels in ``[0, num_classes)``, shape ``(n,)``.
      num_classes: number of classes.
      hidden: widths of the MLP's tanh hidden layers.
      num_train: rows per task.
      batch_size: minibatch size.
      num_test: held-out rows per task (default all ``n - num_train``; 0 for no test split).
      activation: of the hidden layers.
      num_validation: of the ``num_train`` rows, how many are kept out of training as the
        validation split (`Task.validation_loss`); the test split is the same with or without.

    Returns:
      A `TaskFamily`.

    Example:
      >>> import jax, numpy as np
      >>> x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
      >>> family = classification_family(x, (x[:, 0] > 0).astype(np.int32), 2, num_train=50)
      >>> task = family(jax.random.key(0))
      >>> float(task.full_loss(task.init_params(jax.random.key(1)))) > 0
      True
    """
    (num_classes,) = _positive_ints("classification_family", num_classes=num_classes)
    x_all, y_all = jnp.asarray(x), jnp.asarray(y, jnp.int32)
    split = _row_split(
        "classification_family", x_all, y_all, num_train, batch_size, num_test, num_validation
    )
    model = MLP(hidden=tuple(hidden), out=num_classes, activation=activation)

    def make(task_key: jax.Array) -> Task:
        k_subset, k_perm = jax.random.split(task_key)
        labels = jax.random.permutation(k_perm, num_classes)
        idx, val_idx, test_idx = split(k_subset)
        cross_entropy = lambda logits, yb: optax.softmax_cross_entropy_with_integer_labels(
            logits, yb
        ).mean()
        return _supervised_task(
            model,
            x_all[idx],
            labels[y_all[idx]],
            cross_entropy,
            split.batch_size,
            test=(x_all[test_idx], labels[y_all[test_idx]]),
            classify=True,
            validation=(x_all[val_idx], labels[y_all[val_idx]]),
        )

    return make


def data_regression_family(
    x: Any,
    y: Any,
    hidden: tuple[int, ...] = (32,),
    num_train: int = 256,
    batch_size: int = 64,
    num_test: int | None = None,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    num_validation: int = 0,
) -> TaskFamily:
    """A Flax MLP regressing a target of a data set of your own (mean squared error).

    The regression counterpart of `classification_family`. Per task: a random subset of
    ``num_train`` rows (the initialisation is drawn from the key given to ``init_params``);
    minibatches of ``batch_size`` drawn with replacement from the subset. The held-out split
    (`Task.test_loss`) is ``num_test`` of the other rows (default: all of them), never trained on.
    Scale the target as you would train on it (standardised, say): the loss is in its units.

    Args:
      x: features, shape ``(n, d)``, already scaled as you would train on them.
      y: real targets, shape ``(n,)``.
      hidden: widths of the MLP's hidden layers (``()``: a linear model).
      num_train: rows per task.
      batch_size: minibatch size.
      num_test: held-out rows per task (default all ``n - num_train``; 0 for no test split).
      activation: of the hidden layers.
      num_validation: of the ``num_train`` rows, how many are kept out of training as the
        validation split (`Task.validation_loss`); the test split is the same with or without.

    Returns:
      A `TaskFamily`.

    Example:
      >>> import jax, numpy as np
      >>> x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
      >>> family = data_regression_family(x, x.sum(1), num_train=50)
      >>> task = family(jax.random.key(0))
      >>> float(task.test_loss(task.init_params(jax.random.key(1)))) > 0
      True
    """
    x_all, y_all = jnp.asarray(x), jnp.asarray(y)
    split = _row_split(
        "data_regression_family", x_all, y_all, num_train, batch_size, num_test, num_validation
    )
    y_all = y_all.astype(x_all.dtype)
    model = MLP(hidden=tuple(hidden), out=1, activation=activation)
    squared_error = lambda out, yb: jnp.mean((out[:, 0] - yb) ** 2)

    def make(task_key: jax.Array) -> Task:
        idx, val_idx, test_idx = split(task_key)
        return _supervised_task(
            model,
            x_all[idx],
            y_all[idx],
            squared_error,
            split.batch_size,
            test=(x_all[test_idx], y_all[test_idx]),
            validation=(x_all[val_idx], y_all[val_idx]),
        )

    return make


def regression_family(
    hidden: tuple[int, ...] = (32,),
    num_train: int = 256,
    batch_size: int = 64,
    num_frequencies: int = 4,
    num_test: int = 256,
    noise: float = 0.0,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    num_validation: int = 0,
) -> TaskFamily:
    r"""An MLP regressing a random 1-d function :math:`f(x) = \sum_k a_k \sin(\omega_k x + \phi_k)`.

    Per task: amplitudes, frequencies in [0.5, 2] and phases, and ``num_train`` inputs uniform in
    [-3, 3]; mean squared error; minibatches of ``batch_size`` drawn with replacement. The
    held-out split (`Task.test_loss`) is ``num_test`` fresh inputs of the same function. With
    ``noise > 0`` the training targets carry Gaussian noise of that standard deviation (the test
    targets stay clean), so a schedule that fits the noise is penalised on test loss. With
    ``num_validation > 0`` the last ``num_validation`` of the ``num_train`` inputs (noisy targets,
    as a user's validation rows would have) are kept out of training as `Task.validation_loss`.
    """
    num_train, batch_size, num_frequencies = _positive_ints(
        "regression_family",
        num_train=num_train,
        batch_size=batch_size,
        num_frequencies=num_frequencies,
    )
    num_test = checks.integer("regression_family", "num_test", num_test, 0)
    checks.nonnegative("regression_family", "noise", noise)
    num_validation = _num_validation("regression_family", num_validation, num_train)
    fit = num_train - num_validation
    model = MLP(hidden=tuple(hidden), out=1, activation=activation)

    def make(task_key: jax.Array) -> Task:
        ka, kw, kp, kx, kt, kn = jax.random.split(task_key, 6)
        amp = jax.random.normal(ka, (num_frequencies,)) / np.sqrt(num_frequencies)
        freq = jax.random.uniform(kw, (num_frequencies,), minval=0.5, maxval=2.0)
        phase = jax.random.uniform(kp, (num_frequencies,), maxval=2 * np.pi)
        f = lambda x: jnp.sin(x * freq[None, :] + phase[None, :]) @ amp
        x = jax.random.uniform(kx, (num_train, 1), minval=-3.0, maxval=3.0)
        y = f(x) + noise * jax.random.normal(kn, (num_train,))
        x_test = jax.random.uniform(kt, (num_test, 1), minval=-3.0, maxval=3.0)

        squared_error = lambda out, yb: jnp.mean((out[:, 0] - yb) ** 2)
        return _supervised_task(
            model,
            x[:fit],
            y[:fit],
            squared_error,
            batch_size,
            test=(x_test, f(x_test)),
            validation=(x[fit:], y[fit:]),
        )

    return make


def mlp_family(
    in_features: int, hidden: tuple[int, ...], out_features: int, batch_size: int
) -> TaskFamily:
    """A teacher-student MLP regression on Gaussian inputs, sized freely (for benchmarks).

    Per task a random linear teacher; a fresh batch of ``batch_size`` inputs per step; the full
    loss is on one fixed batch, the test loss on another.
    """
    in_features, out_features, batch_size = _positive_ints(
        "mlp_family", in_features=in_features, out_features=out_features, batch_size=batch_size
    )
    model = MLP(hidden=tuple(hidden), out=out_features)

    def make(task_key: jax.Array) -> Task:
        kt, kx = jax.random.split(task_key)
        teacher = jax.random.normal(kt, (in_features, out_features)) / np.sqrt(in_features)

        def loss(params, xb):
            return jnp.mean((model.apply(params, xb) - xb @ teacher) ** 2)

        def sample_batch(key):
            return jax.random.normal(key, (batch_size, in_features))

        kx, kt = jax.random.split(kx)
        x_fixed = jax.random.normal(kx, (batch_size, in_features))
        x_test = jax.random.normal(kt, (batch_size, in_features))
        return Task(
            init_params=lambda key: _cast(model.init(key, x_fixed[:1]), x_fixed.dtype),
            loss=loss,
            sample_batch=sample_batch,
            full_loss=lambda params: loss(params, x_fixed),
            test_loss=lambda params: loss(params, x_test),
        )

    return make


def rate_scaled_family(
    family: TaskFamily,
    scale_range: tuple[float, float] = (0.3, 3.0),
    *,
    keep_gradients: bool = False,
) -> TaskFamily:
    r"""`family` reparameterised so that each task's effective learning rate is rescaled.

    Per task a scale :math:`s`, log-uniform in ``scale_range`` (drawn from the task key), and the
    task trains :math:`q = \theta / s` on the loss :math:`L(s\,q)`. Adam-type optimizers are
    invariant to the gradient's scale, so a step of rate :math:`\eta` on :math:`q` is a step of
    rate :math:`s\,\eta` on :math:`\theta`: meta-training on this family shows a schedule the same
    problems at base rates :math:`s` times off, so it learns to correct a mis-set base rate
    instead of relying on one (plain SGD would see :math:`s^2` instead). By default losses are
    unchanged.

    The gradient with respect to :math:`q` is :math:`s` times the original one, so a schedule
    that reads the gradient's absolute norm (`LSTMSchedule` does) can read :math:`s` from it,
    a cue a user's mis-set base rate never gives. With ``keep_gradients=True`` every loss of the
    task (``loss``, ``full_loss``, ``test_loss``, ``validation_loss``) is divided by :math:`s`
    as well: the gradients are then exactly the original problem's at :math:`\theta = s\,q`,
    and a step of rate :math:`\eta` of any optimizer whose update is a function of the gradients
    alone (SGD, Adam; not decoupled weight decay) is a step of rate :math:`s\,\eta` on
    :math:`\theta`: what a base rate :math:`s` times off does, and nothing else. Loss ratios (the
    meta-objectives, the schedule's loss features) are unchanged; accuracies are too.

    Args:
      family: any task family.
      scale_range: ``(low, high)`` of the log-uniform scale, ``0 < low <= high``.
      keep_gradients: divide the losses by :math:`s`, so that the gradients are unchanged.

    Returns:
      A `TaskFamily`.

    Example:
      >>> import jax
      >>> family = rate_scaled_family(regression_family(), (0.5, 2.0), keep_gradients=True)
      >>> task = family(jax.random.key(0))
      >>> float(task.full_loss(task.init_params(jax.random.key(1)))) > 0
      True
    """
    lo, hi = scale_range
    for name, value in (("scale_range[0]", lo), ("scale_range[1]", hi)):
        checks.positive_finite("rate_scaled_family", name, value)
    if lo > hi:
        raise ValueError(f"rate_scaled_family: need scale_range[0] <= [1], got {scale_range=}")
    if not isinstance(keep_gradients, bool):
        raise TypeError(
            f"rate_scaled_family: keep_gradients must be a bool, got {keep_gradients!r}"
        )

    def make(task_key: jax.Array) -> Task:
        task = family(task_key)
        u = jax.random.uniform(jax.random.fold_in(task_key, 3))
        s = jnp.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        up = lambda q: jax.tree.map(lambda x: x * s.astype(x.dtype), q)
        down = lambda p: jax.tree.map(lambda x: x / s.astype(x.dtype), p)

        def on_theta(f, divide=keep_gradients):
            if f is None:
                return None

            def at_q(q, *args):
                value = f(up(q), *args)
                return value / s.astype(value.dtype) if divide else value

            return at_q

        return Task(
            init_params=lambda key: down(task.init_params(key)),
            loss=on_theta(task.loss),
            sample_batch=task.sample_batch,
            full_loss=on_theta(task.full_loss),
            test_loss=on_theta(task.test_loss),
            test_accuracy=on_theta(task.test_accuracy, divide=False),
            validation_loss=on_theta(task.validation_loss),
        )

    return make
