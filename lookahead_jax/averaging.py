"""Weight averaging (SWA and EMA of the params) and SWALR's learning-rate schedule.

The JAX counterparts of `torch.optim.swa_utils.AveragedModel` and `SWALR`: `average` wraps any
optax transformation and keeps the running average of the params in its state; `averaged_params`
reads it back; `swa_schedule` is the learning rate of the usual PyTorch SWA recipe.

Steps are counted as in `lookahead_jax.optimizers`: update `t = 1, 2, ...` is the t-th call of
`update`, and a schedule is evaluated on the number of updates already taken (`t - 1`).
"""

import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lookahead_jax import checks, nested_state


class AverageState(NamedTuple):
    """State of `average`."""

    inner_state: optax.OptState
    averaged: optax.Params  # one copy of the params: the running average
    n_averaged: jax.Array  # shape=(), int32: params averaged so far (PyTorch's n_averaged)
    count: jax.Array  # shape=(), int32: updates taken so far


def average(
    inner: optax.GradientTransformation,
    start_step: int = 0,
    every: int = 1,
    decay: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Keeps the average of the params along the trajectory of `inner` (SWA, or an EMA).

    After update :math:`t` (the new params :math:`p_t = p_{t-1} + u_t`) is applied, if
    :math:`t > s` and :math:`(t - s) \bmod k = 0` (s = `start_step`, k = `every`), the average
    :math:`a` takes in :math:`p_t`, as `AveragedModel.update_parameters` does:

    .. math::
      a \leftarrow p_t \text{ the first time}, \text{ then }
      a \leftarrow a + \frac{p_t - a}{n + 1} \text{ (equal weights, n averaged so far) or }
      a \leftarrow \text{decay} \cdot a + (1 - \text{decay})\, p_t \text{ (EMA)}.

    Before the first average, `averaged_params` returns the initial params (the copy
    `AveragedModel(model)` makes). The updates of `inner` pass through unchanged.

    Nothing may be chained after `average`: it averages the params its update produces, so a
    transformation after it would make the average follow other params than the ones applied.

    The PyTorch recipe `for i in range(n): ...; optimizer.step(); if i > swa_start:
    swa_model.update_parameters(model)` is `average(inner, start_step=swa_start + 1)`; averaging
    once per epoch of `k` steps from epoch `e` on is `start_step=e * k, every=k`.

    Args:
      inner: any optax transformation (extra keyword arguments are forwarded to it).
      start_step: s, the number of updates before averaging begins (an int >= 0).
      every: k, average the params every k updates (an int >= 1).
      decay: None for the equal-weight average (SWA), or the EMA decay in [0, 1]
        (`get_ema_multi_avg_fn(decay)`).

    Returns:
      An `optax.GradientTransformationExtraArgs`. Its `update` requires `params`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.averaging import average, averaged_params
      >>> tx = average(optax.sgd(1.0))
      >>> params = jnp.zeros([])
      >>> state = tx.init(params)
      >>> for _ in range(3):  # the params go 1, 2, 3
      ...     updates, state = tx.update(-jnp.ones([]), state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> averaged_params(state)
      Array(2., dtype=float32)

    References:
      Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization",
      UAI 2018. https://arxiv.org/abs/1803.05407
    """
    caller = "average"
    inner = checks.transformation(caller, inner)
    start_step = checks.integer(caller, "start_step", start_step, 0)
    every = checks.integer(caller, "every", every, 1)
    if decay is not None:
        decay = checks.static_number(caller, "decay", decay)
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
            raise TypeError(f"{caller}: decay must be a float in [0, 1] or None, got {decay=}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"{caller}: decay must be in [0, 1], got {decay=}")

    def init_fn(params: optax.Params) -> AverageState:
        checks.float_params("average", params)
        # A fresh buffer: the average must never alias the params, so both can be donated.
        averaged = jax.tree.map(lambda p: jnp.array(p, copy=True), params)
        return AverageState(
            inner_state=inner.init(params),
            averaged=averaged,
            n_averaged=jnp.zeros([], jnp.int32),
            count=jnp.zeros([], jnp.int32),
        )

    def update_fn(
        updates: optax.Updates,
        state: AverageState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, AverageState]:
        checks.require_params(caller, params, "to average the new ones")
        checks.like_params(caller, updates, params)
        updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        count = optax.safe_increment(state.count)
        # int32 arithmetic on the counter only: (count - start_step) cannot overflow below 2**31.
        do_average = (count > start_step) & ((count - start_step) % every == 0)
        n = state.n_averaged

        def averaged():
            def leaf(avg, p, u):
                # Exactly optax.apply_updates' expression, so XLA computes it once for both uses.
                p_new = jnp.asarray(p + u).astype(jnp.asarray(p).dtype)
                dtype = jnp.promote_types(avg.dtype, jnp.float32)
                w = (
                    1.0 / (n.astype(dtype) + 1.0)
                    if decay is None
                    else jnp.asarray(1.0 - decay, dtype)
                )
                # The first average copies the params exactly, as AveragedModel does.
                mixed = avg.astype(dtype) + w * (p_new.astype(dtype) - avg.astype(dtype))
                return jnp.where(n == 0, p_new.astype(avg.dtype), mixed.astype(avg.dtype))

            return jax.tree.map(leaf, state.averaged, params, updates)

        # A cond, not a select: on other steps the average passes through without a write.
        new_average = jax.lax.cond(do_average, averaged, lambda: state.averaged)
        new_state = AverageState(
            inner_state=inner_state,
            averaged=new_average,
            n_averaged=jnp.where(do_average, optax.safe_increment(n), n),
            count=count,
        )
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def averaged_params(state: optax.OptState, params: optax.Params | None = None) -> optax.Params:
    """Returns the averaged params of the outermost `average` inside an optimizer state.

    Args:
      state: the optimizer state of `average(...)`, or of any optax wrapper around it (`chain`,
        `inject_hyperparams`, `MultiSteps`, `apply_if_finite`, `masked`, `lookahead`, ...).
      params: under `optax.masked`, the leaves `average` does not track are `optax.MaskedNode`;
        pass the current params to fill them in.

    Returns:
      The averaged params, a pytree like the params.

    Raises:
      ValueError: if the state holds no `AverageState`, or several separate ones.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.averaging import average, averaged_params
      >>> state = optax.chain(optax.clip(1.0), average(optax.adam(1e-3))).init({"w": jnp.ones(2)})
      >>> averaged_params(state)
      {'w': Array([1., 1.], dtype=float32)}
    """
    avg = nested_state.find_state(state, AverageState, caller="averaged_params").averaged
    return avg if params is None else nested_state.fill_masked(avg, params)


def swa_schedule(
    base: optax.ScalarOrSchedule,
    swa_lr: float,
    anneal_steps: int = 10,
    strategy: str = "cos",
    start_step: int = 0,
) -> optax.Schedule:
    r"""SWALR: from `start_step` on, anneal from the base learning rate to `swa_lr`, then hold it.

    With :math:`\eta_0` = `base(start_step)`, the learning rate of the update that follows `c`
    updates is `base(c)` for :math:`c \le s` (s = `start_step`), then

    .. math::
      \eta = \alpha\, \text{swa\_lr} + (1 - \alpha)\, \eta_0, \quad
      \alpha = f\big(\min(1, (c - s) / \max(1, A))\big)

    with :math:`f(x) = (1 - \cos \pi x) / 2` for `'cos'` and :math:`f(x) = x` for `'linear'`
    (A = `anneal_steps`), the closed form of `torch.optim.swa_utils.SWALR`.

    The PyTorch recipe, one scheduler step per optimizer step,

    .. code-block:: python

      scheduler = StepLR(opt, step_size, gamma); swa_scheduler = SWALR(opt, swa_lr, A, strategy)
      for i in range(n):
          ...; opt.step()
          if i > swa_start: swa_scheduler.step()
          else: scheduler.step()

    is `swa_schedule(optax.exponential_decay(lr, step_size, gamma, staircase=True), swa_lr, A,
    strategy, start_step=swa_start + 1)`. With one step per epoch of `k` updates, build the
    schedule over epochs and evaluate it on `count // k`.

    Args:
      base: the learning rate before averaging, a float or an optax schedule.
      swa_lr: the learning rate held once annealed.
      anneal_steps: A, the number of steps of the annealing (an int >= 0; 0 behaves as 1, as the
        scheduler steps of SWALR do).
      strategy: `'cos'` or `'linear'`.
      start_step: s, the step count at which the annealing starts (an int >= 0).

    Returns:
      An optax schedule of the number of updates already taken.

    Example:
      >>> from lookahead_jax.averaging import swa_schedule
      >>> schedule = swa_schedule(0.1, swa_lr=0.05, anneal_steps=2, strategy="linear", start_step=3)
      >>> [round(float(schedule(c)), 3) for c in range(7)]
      [0.1, 0.1, 0.1, 0.1, 0.075, 0.05, 0.05]
    """
    caller = "swa_schedule"
    if strategy not in ("cos", "linear"):
        raise ValueError(f"{caller}: strategy must be 'cos' or 'linear', got {strategy=}")
    anneal_steps = checks.integer(caller, "anneal_steps", anneal_steps, 0)
    start_step = checks.integer(caller, "start_step", start_step, 0)
    swa_lr = checks.static_number(caller, "swa_lr", swa_lr)
    if not callable(base):
        base = checks.static_number(caller, "base", base)
    if isinstance(swa_lr, bool) or not isinstance(swa_lr, numbers.Real):
        raise TypeError(f"{caller}: swa_lr must be a float, got {swa_lr=}")
    if not callable(base) and (isinstance(base, bool) or not isinstance(base, numbers.Real)):
        raise TypeError(f"{caller}: base must be a float or an optax schedule, got {base=}")
    base_fn = base if callable(base) else (lambda _: base)
    lr_at_start = base_fn(start_step)

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        count = jnp.asarray(count)
        # In the default float dtype: `int32 / int` would be float32 even under x64.
        steps_in = (count - start_step).astype(jnp.result_type(float))
        progress = jnp.clip(steps_in / max(1, anneal_steps), 0.0, 1.0)
        if strategy == "cos":
            alpha = (1.0 - jnp.cos(math.pi * progress)) / 2.0
        else:
            alpha = progress
        annealed = swa_lr * alpha + lr_at_start * (1.0 - alpha)
        return jnp.where(count <= start_step, base_fn(count), annealed)

    return schedule
