"""PyTorch-faithful optimizers: SGD, Adam, AdamW, BERT's AdamW, RMSprop and Adagrad.

Each is its own `init`/`update` pair whose `update` computes the moments and the update of a leaf in
one element-wise expression (one `jax.tree.map`), so XLA fuses a step, and the user's
`optax.apply_updates`, into a single pass over each leaf. `optax.apply_updates(params, updates)`
gives exactly the new params of the matching `torch.optim` step (proven against PyTorch 2.13 in
float64 in the tests).

Conventions shared by all of them:

- The step count `t` starts at 1 as in PyTorch; the learning rate of step `t` is
  `learning_rate(t - 1)` when it is an optax schedule, i.e. the schedule is evaluated on the number
  of steps already taken. That is what `scheduler.step()` after each `optimizer.step()` gives in
  PyTorch, so `StepLR(step_size, gamma)` is
  `optax.exponential_decay(lr, transition_steps=step_size, decay_rate=gamma, staircase=True)`.
  Schedules receive the count as an int64 under x64 (int32 otherwise), so that optax's schedules
  compute in float64 there.
- Buffers are named as in PyTorch's `optimizer.state_dict()` (`momentum_buffer`, `exp_avg`,
  `exp_avg_sq`, `max_exp_avg_sq`, `square_avg`, `grad_avg`, `sum`); `count` is PyTorch's `step`.
- Hyperparameters are validated at construction where PyTorch raises, with a `ValueError` naming
  the argument and its value (arrays must have shape ``()``). Under `optax.inject_hyperparams`
  they are traced arrays and cannot be checked; an injected `weight_decay` is then always applied.
  The state's structure cannot depend on a traced value, so, as in optax, a momentum buffer is
  kept iff `momentum` is given (0 included): `momentum=None`, the default, keeps none (PyTorch's
  0), and `inject_hyperparams(sgd)(learning_rate=..., momentum=m)` has the structure of
  `sgd(learning_rate=..., momentum=m)` for every m.
- Element-wise maths runs in the widest of the param, gradient and buffer dtypes (at least float32),
  each buffer is stored back in the dtype it was initialised with, and updates come back in the
  gradient's dtype, as optax's do.
- Complex params: `sgd` handles them as PyTorch does (its rule is linear, so complex arithmetic is
  the (real, imag) pair's); the others refuse them with a `TypeError`, since PyTorch squares the
  real and imaginary parts separately where ``g * g`` would not.
- Every optimizer is an update rule given to one shared skeleton (`_elementwise`): the checks, the
  step count, the learning rate, the dtypes and the state are handled once.
"""

import numbers
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax import checks

MaskOrFn = Any | Callable[[optax.Params], Any] | None


class SgdState(NamedTuple):
    """State of `sgd`."""

    count: jax.Array  # shape=(), int32: steps taken so far
    momentum_buffer: optax.Updates | None  # None without momentum


class AdamState(NamedTuple):
    """State of `adam`, `adamw` and `bert_adamw`."""

    count: jax.Array  # shape=(), int32: steps taken so far
    exp_avg: optax.Updates
    exp_avg_sq: optax.Updates
    max_exp_avg_sq: optax.Updates | None  # None without amsgrad


class RmspropState(NamedTuple):
    """State of `rmsprop`."""

    count: jax.Array  # shape=(), int32: steps taken so far
    square_avg: optax.Updates
    grad_avg: optax.Updates | None  # None unless centered
    momentum_buffer: optax.Updates | None  # None without momentum


class AdagradState(NamedTuple):
    """State of `adagrad`."""

    count: jax.Array  # shape=(), int32: steps taken so far
    sum: optax.Updates


# -- Shared plumbing ------------------------------------------------------------------------------


class Step(NamedTuple):
    """The step-level quantities every update starts from."""

    dtype: jnp.dtype  # of the scalars: float64 under x64 params, else float32
    t: jax.Array  # this step's number, from 1 (saturating at 2**31 - 1)
    taken: jax.Array  # steps already taken, t - 1
    lr: jax.Array  # this step's learning rate


class Leaf(NamedTuple):
    """One leaf's inputs to an update rule, in its compute dtype `dt`."""

    dt: jnp.dtype
    g: jax.Array  # the gradient, negated under `maximize`, plus coupled L2 decay if any
    p: jax.Array  # the param (the gradient itself when the update had no params: only decay
    # reads it, and decay requires params)
    extra: tuple  # per-leaf values of the rule's extra trees (e.g. the weight-decay mask)


def _lr_schedule(caller: str, learning_rate: optax.ScalarOrSchedule) -> optax.Schedule:
    if callable(learning_rate):
        # The count in the default int dtype: under x64, optax's schedules compute `int32 / int`
        # in float32, which would round a float64 learning rate.
        return lambda count: learning_rate(count.astype(jnp.result_type(int)))
    checks.nonnegative(caller, "learning_rate", learning_rate)
    return lambda _: learning_rate


def _optional_nonnegative(caller: str, **values: Any) -> None:
    for name, value in values.items():
        if value is not None:
            checks.nonnegative(caller, name, value)


def _compute_dtype(*arrays: jax.Array) -> jnp.dtype:
    """The widest dtype of the arrays, at least float32 (bfloat16 maths would lose the moments)."""
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _one_minus(value: Any, dtype: jnp.dtype) -> jax.Array:
    """1 - value, computed in Python before rounding when value is a Python float.

    1 - 0.999 rounded after the subtraction is 0.001 to float32 precision; rounding 0.999 first
    loses 1e-5 relatively. PyTorch computes it in Python too.
    """
    if isinstance(value, numbers.Real):
        return jnp.asarray(1.0 - value, dtype)
    return 1.0 - jnp.asarray(value, dtype)


def _bias_correction(beta: Any, t: jax.Array) -> jax.Array:
    """1 - beta**t as -expm1(t log1p(-(1 - beta))): no cancellation, accurate in float32."""
    return -jnp.expm1(t * jnp.log1p(-_one_minus(beta, t.dtype)))


def _elementwise(
    caller: str,
    state_type: type,
    buffers: dict[str, Callable[[jax.Array], jax.Array] | None],
    lr_fn: optax.Schedule,
    rule: Callable[..., tuple[jax.Array, tuple[jax.Array, ...]]],
    *,
    maximize: bool = False,
    weight_decay: Any = None,
    needs_params: bool = False,
    complex_ok: bool = False,
    step_scalars: Callable[[Step], Any] = lambda step: step,
    extra_trees: Callable[[optax.Params], Sequence[Any]] = lambda ref: (),
) -> optax.GradientTransformationExtraArgs:
    """The init/update skeleton every optimizer here shares; each supplies its update `rule`.

    Args:
      caller: the optimizer's name, for error messages.
      state_type: its NamedTuple state: `count` first, then one field per entry of `buffers`.
      buffers: field name -> how to start that buffer from a param (None: the field is None).
      lr_fn: the learning rate of the steps already taken.
      rule: ``rule(scalars, leaf: Leaf, *buffers) -> (update, new_buffers)``, element-wise in
        ``leaf.dt``; `scalars` is what `step_scalars` made of the `Step`.
      maximize: negate the gradient.
      weight_decay: coupled L2 decay added to the gradient (None: none).
      needs_params: `update` needs params (weight decay of any kind).
      complex_ok: the rule is right for complex params as PyTorch treats them.
      step_scalars: step-level quantities the rule reads (bias corrections, ...), computed once.
      extra_trees: trees like the params the rule reads per leaf (e.g. a decay mask).

    The maths runs in the widest of the gradient, param and buffer dtypes (at least float32);
    each buffer is stored back in its own dtype (the one it was initialised with) and the update
    comes back in the gradient's dtype, as optax's do.
    """
    live = [name for name, make in buffers.items() if make is not None]

    def init_fn(params: optax.Params) -> Any:
        checks.float_params(caller, params, complex_ok=complex_ok)
        # As JAX arrays: a NumPy float64 param is float32 to JAX without x64 (asking for its
        # NumPy dtype would ask for float64).
        params = jax.tree.map(jnp.asarray, params)
        # A fresh buffer per leaf, never aliasing the params, so both can be donated; built from
        # the param with *_like, so it keeps the param's sharding.
        fields = {
            name: None if make is None else jax.tree.map(make, params)
            for name, make in buffers.items()
        }
        return state_type(count=jnp.zeros([], jnp.int32), **fields)

    def update_fn(
        updates: optax.Updates, state: Any, params: optax.Params | None = None, **extra_args: Any
    ) -> tuple[optax.Updates, Any]:
        del extra_args
        if needs_params:
            checks.require_params(caller, params, "for weight decay")
        checks.like_params(caller, updates, params)
        updates, params = jax.tree.map(jnp.asarray, (updates, params))
        ref = updates if params is None else params
        leaves = jax.tree.leaves(ref)
        sdt = _compute_dtype(*leaves) if leaves else jnp.dtype(jnp.float32)
        # Everything derives from the incremented count, so the old count is dead once it is
        # read and XLA updates the donated counter in place.
        t = optax.safe_increment(state.count)
        taken = t - 1
        scalars = step_scalars(Step(sdt, t, taken, jnp.asarray(lr_fn(taken), sdt)))
        extras = list(extra_trees(ref))
        n_extra = len(extras)

        def leaf(g, p, *rest):
            bufs = rest[n_extra:]
            dt = _compute_dtype(g, p, *bufs)
            gw = -g.astype(dt) if maximize else g.astype(dt)
            pw = p.astype(dt)
            if weight_decay is not None:
                gw = gw + jnp.asarray(weight_decay, dt) * pw
            u, new = rule(
                scalars, Leaf(dt, gw, pw, tuple(rest[:n_extra])), *(b.astype(dt) for b in bufs)
            )
            return (u.astype(g.dtype), *(n.astype(b.dtype) for n, b in zip(new, bufs, strict=True)))

        trees = [updates, ref, *extras, *(getattr(state, name) for name in live)]
        treedef = jax.tree.structure(updates)
        leaves_out = treedef.flatten_up_to(jax.tree.map(leaf, *trees))
        out = [treedef.unflatten([x[i] for x in leaves_out]) for i in range(1 + len(live))]
        fields = dict.fromkeys(buffers)
        fields.update(zip(live, out[1:], strict=True))
        return out[0], state_type(count=t, **fields)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _zeros(dtype: jnp.dtype | None = None) -> Callable[[jax.Array], jax.Array]:
    return lambda p: jnp.zeros_like(p, dtype=dtype or p.dtype)


def _decay_flags(mask: MaskOrFn, params: optax.Params) -> Any:
    """A tree like the params of per-leaf decay flags (optax.masked's mask convention)."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    mask_tree = mask(params) if callable(mask) else mask
    # The mask may be a prefix of the params: broadcast each flag over its subtree.
    return jax.tree.map(lambda m, p: jax.tree.map(lambda _: m, p), mask_tree, params)


def _masked_decay(flag: Any, weight_decay: Any, dtype: jnp.dtype) -> Any:
    """The weight decay of a leaf: static where the mask flag is a Python bool, selected if not."""
    if isinstance(flag, bool | np.bool_):
        return jnp.asarray(weight_decay, dtype) if flag else None
    return jnp.where(flag, jnp.asarray(weight_decay, dtype), jnp.zeros([], dtype))


# -- SGD ------------------------------------------------------------------------------------------


def sgd(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float | None = None,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float | None = None,
    maximize: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Stochastic gradient descent with momentum, exactly `torch.optim.SGD`.

    .. math::
      d_t = g_t + \lambda p_{t-1}, \quad
      b_t = \begin{cases} d_1 & t = 1 \\ \mu b_{t-1} + (1 - \tau) d_t & t > 1 \end{cases}, \quad
      p_t = p_{t-1} - \eta_t \cdot (d_t + \mu b_t \text{ if nesterov else } b_t)

    Unlike `optax.sgd`, the momentum buffer starts as the first (decayed) gradient, which differs
    from optax's zero start when `dampening > 0`.

    Args:
      learning_rate: eta, a float >= 0 or an optax schedule of the steps already taken.
      momentum: mu >= 0; None (the default) keeps no buffer, a number (0 included, as in
        optax) keeps one, so that `optax.inject_hyperparams` gives the same state structure.
      dampening: tau, the dampening of the gradient in the momentum buffer.
      nesterov: Nesterov momentum (requires momentum > 0 and dampening = 0).
      weight_decay: lambda >= 0, coupled L2 decay added to the gradient; None (the default) or 0
        for none.
      maximize: maximise the objective instead of minimising it.

    Returns:
      An `optax.GradientTransformationExtraArgs`; `update` needs `params` when `weight_decay` is
      not 0.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.optimizers import sgd
      >>> tx = sgd(0.1, momentum=0.9)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> updates, state = tx.update(params, state, params)  # gradient of 0.5 |w|^2
      >>> optax.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.8], dtype=float32)
    """
    caller = "sgd"
    lr_fn = _lr_schedule(caller, learning_rate)
    _optional_nonnegative(caller, momentum=momentum, weight_decay=weight_decay)
    mu = None if momentum is None else checks.scalar(caller, "momentum", momentum)
    tau = checks.scalar(caller, "dampening", dampening)
    no_momentum = momentum is None or (mu is not None and mu <= 0)  # a traced one may be > 0
    if nesterov and (no_momentum or (tau is not None and tau != 0)):
        raise ValueError(
            f"{caller}: Nesterov momentum requires momentum > 0 and dampening = 0, got "
            f"{momentum=}, {dampening=}"
        )
    # As in optax: a buffer iff momentum is given, 0 included, so that the state's structure is
    # the same whether the value is a Python number or injected (traced).
    has_momentum = momentum is not None
    has_decay = not checks.is_python_zero(weight_decay)

    def step_scalars(step: Step):
        # PyTorch's buffer starts as the first d: b = 0 * b + 1 * d on the first step. At
        # momentum 0 PyTorch uses d itself (no dampening): b = d then too.
        first = step.t == 1
        mu = jnp.asarray(0.0 if momentum is None else momentum, step.dtype)
        buf_coef = jnp.where(first, 0.0, mu)
        grad_coef = jnp.where(first | (mu == 0), 1.0, _one_minus(dampening, step.dtype))
        return step.lr, buf_coef, grad_coef

    def rule(scalars, leaf: Leaf, b=None):
        lr, buf_coef, grad_coef = (x.astype(leaf.dt) for x in scalars)
        d = leaf.g
        if has_momentum:
            # A where, not 0 * b: at momentum 0 (and on step 1) a non-finite b must not persist,
            # as PyTorch, which keeps no buffer then, forgets it.
            b = jnp.where(buf_coef == 0, grad_coef * d, buf_coef * b + grad_coef * d)
            d = d + jnp.asarray(momentum, leaf.dt) * b if nesterov else b
        return -lr * d, (b,) if has_momentum else ()

    return _elementwise(
        caller,
        SgdState,
        {"momentum_buffer": _zeros() if has_momentum else None},
        lr_fn,
        rule,
        maximize=maximize,
        weight_decay=weight_decay if has_decay else None,
        needs_params=has_decay,
        complex_ok=True,  # every operation is linear: complex arithmetic is the (real, imag) pair's
        step_scalars=step_scalars,
    )


# -- Adam family ----------------------------------------------------------------------------------


class WeightDecay(Enum):
    """Where the Adam family applies its weight decay."""

    COUPLED = "coupled"  # L2 added to the gradient (torch.optim.Adam)
    DECOUPLED = "decoupled"  # on the old weights, before the Adam step (torch.optim.AdamW)
    AFTER_STEP = "after_step"  # on the updated weights, after it (transformers.AdamW)


def _adam_family(
    caller: str,
    learning_rate: optax.ScalarOrSchedule,
    b1: float,
    b2: float,
    eps: float,
    weight_decay: float | None,
    decay: WeightDecay,
    amsgrad: bool = False,
    maximize: bool = False,
    mask: MaskOrFn = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    correct_bias: bool = True,
    check_weight_decay: bool = True,
) -> optax.GradientTransformationExtraArgs:
    lr_fn = _lr_schedule(caller, learning_rate)
    checks.nonnegative(caller, "eps", eps)
    checks.in_unit_interval(caller, "b1", b1)
    checks.in_unit_interval(caller, "b2", b2)
    has_decay = not checks.is_python_zero(weight_decay)
    if check_weight_decay:
        _optional_nonnegative(caller, weight_decay=weight_decay)
    elif has_decay and (wd := checks.scalar(caller, "weight_decay", weight_decay)) is not None:
        has_decay = wd > 0  # HuggingFace decays only `if weight_decay > 0.0`
    mu_dtype = checks.dtype(caller, "mu_dtype", mu_dtype)
    nu_dtype = checks.dtype(caller, "nu_dtype", nu_dtype)
    bert = decay is WeightDecay.AFTER_STEP

    def step_scalars(step: Step):
        t = step.t.astype(step.dtype)
        bc1, bc2 = _bias_correction(b1, t), _bias_correction(b2, t)
        if bert:
            # HuggingFace folds the bias corrections into the step size; eps stays unscaled.
            step_size = step.lr * jnp.sqrt(bc2) / bc1 if correct_bias else step.lr
            return step.lr, step_size, jnp.ones([], step.dtype)
        return step.lr, step.lr / bc1, jnp.sqrt(bc2)

    def rule(scalars, leaf: Leaf, m, v, v_max=None):
        dt, g, pw = leaf.dt, leaf.g, leaf.p
        lr, step_size, sqrt_bc2 = (x.astype(dt) for x in scalars)
        wd = _masked_decay(leaf.extra[0], weight_decay, dt) if leaf.extra else None
        m = jnp.asarray(b1, dt) * m + _one_minus(b1, dt) * g
        v = jnp.asarray(b2, dt) * v + _one_minus(b2, dt) * (g * g)
        if amsgrad:
            v_max = jnp.maximum(v_max, v)
        denom = jnp.sqrt(v_max if amsgrad else v) / sqrt_bc2 + jnp.asarray(eps, dt)
        u = -step_size * m / denom
        if wd is not None and decay is WeightDecay.DECOUPLED:
            u = u - lr * wd * pw  # p (1 - lr wd) first: the old weights
        elif wd is not None and bert:
            u = u - lr * wd * (pw + u)  # after the Adam step: the new weights
        return u, (m, v, v_max) if amsgrad else (m, v)

    coupled = has_decay and decay is WeightDecay.COUPLED
    masked = has_decay and not coupled
    return _elementwise(
        caller,
        AdamState,
        {
            "exp_avg": _zeros(mu_dtype),
            "exp_avg_sq": _zeros(nu_dtype),
            "max_exp_avg_sq": _zeros(nu_dtype) if amsgrad else None,
        },
        lr_fn,
        rule,
        maximize=maximize,
        weight_decay=weight_decay if coupled else None,
        needs_params=has_decay,
        step_scalars=step_scalars,
        extra_trees=(lambda ref: [_decay_flags(mask, ref)]) if masked else (lambda ref: ()),
    )


def adam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float | None = None,
    amsgrad: bool = False,
    maximize: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam with coupled L2 weight decay, exactly `torch.optim.Adam`.

    .. math::
      g_t \leftarrow g_t + \lambda p_{t-1}, \quad
      m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
      v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \\
      p_t = p_{t-1} - \frac{\eta_t}{1 - \beta_1^t}
        \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`\hat v_t = \max(\hat v_{t-1}, v_t)` under AMSGrad, else :math:`v_t`. eps sits
    outside the square root, after the bias correction (as in optax's `adam`). `optax.amsgrad`
    differs: it keeps the maximum of the bias-corrected second moments.

    Args:
      learning_rate: eta, a float >= 0 or an optax schedule of the steps already taken.
      b1: beta_1 in [0, 1), PyTorch's `betas[0]`.
      b2: beta_2 in [0, 1), PyTorch's `betas[1]`.
      eps: epsilon >= 0.
      weight_decay: lambda >= 0, L2 decay added to the gradient (coupled, not AdamW's); None (the
        default) or 0 for none.
      amsgrad: keep the running maximum of `exp_avg_sq` (`max_exp_avg_sq`) as the denominator.
      maximize: maximise the objective instead of minimising it.
      mu_dtype: dtype of `exp_avg` (e.g. `jnp.bfloat16`); None keeps each param's dtype.
      nu_dtype: dtype of `exp_avg_sq` and `max_exp_avg_sq`; None keeps each param's dtype.

    Returns:
      An `optax.GradientTransformationExtraArgs`; `update` needs `params` when `weight_decay` is
      not 0.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.optimizers import adam
      >>> tx = adam(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = tx.update(params, tx.init(params), params)
      >>> optax.apply_updates(params, updates)["w"]  # the first step moves each weight by ~lr
      Array([ 0.9, -1.9], dtype=float32)

    References:
      Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
      https://arxiv.org/abs/1412.6980
    """
    return _adam_family(
        "adam",
        learning_rate,
        b1,
        b2,
        eps,
        weight_decay,
        WeightDecay.COUPLED,
        amsgrad=amsgrad,
        maximize=maximize,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )


def adamw(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
    mask: MaskOrFn = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam with decoupled weight decay, exactly `torch.optim.AdamW`.

    The weights decay first, on the old weights, then take the Adam step of `adam` (without L2):

    .. math::
      p_t = p_{t-1} (1 - \eta_t \lambda) - \frac{\eta_t}{1 - \beta_1^t}
        \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    Same rule as `optax.adamw`, but PyTorch's default `weight_decay=1e-2` (optax's is 1e-4), and
    AMSGrad and `maximize` are available.

    Args:
      learning_rate: eta, a float >= 0 or an optax schedule of the steps already taken.
      b1: beta_1 in [0, 1), PyTorch's `betas[0]`.
      b2: beta_2 in [0, 1), PyTorch's `betas[1]`.
      eps: epsilon >= 0, outside the square root.
      weight_decay: lambda >= 0, the decoupled decay rate (multiplied by the learning rate).
      amsgrad: keep the running maximum of `exp_avg_sq` as the denominator.
      maximize: maximise the objective instead of minimising it.
      mask: which params decay: a tree of bools like the params (or a prefix of it), or a function
        of the params returning one (optax's `masked` convention). None decays all of them.
      mu_dtype: dtype of `exp_avg` (e.g. `jnp.bfloat16`); None keeps each param's dtype.
      nu_dtype: dtype of `exp_avg_sq` and `max_exp_avg_sq`; None keeps each param's dtype.

    Returns:
      An `optax.GradientTransformationExtraArgs`; `update` needs `params` when `weight_decay` is
      not 0.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.optimizers import adamw
      >>> tx = adamw(0.1, weight_decay=0.5, mask={"w": True, "b": False})
      >>> params = {"w": jnp.array(2.0), "b": jnp.array(2.0)}
      >>> grads = {"w": jnp.array(0.0), "b": jnp.array(0.0)}
      >>> updates, state = tx.update(grads, tx.init(params), params)
      >>> optax.apply_updates(params, updates)  # only w decays: 2 * (1 - 0.1 * 0.5)
      {'b': Array(2., dtype=float32), 'w': Array(1.9, dtype=float32)}

    References:
      Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
      https://arxiv.org/abs/1711.05101
    """
    return _adam_family(
        "adamw",
        learning_rate,
        b1,
        b2,
        eps,
        weight_decay,
        WeightDecay.DECOUPLED,
        amsgrad=amsgrad,
        maximize=maximize,
        mask=mask,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )


def bert_adamw(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float | None = None,
    correct_bias: bool = True,
    mask: MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    r"""HuggingFace's `transformers.AdamW` (with `correct_bias`), the BERT-era AdamW, exactly.

    This is the PyTorch optimizer of HuggingFace's `pytorch-transformers`/`transformers`, not the
    original BERT TensorFlow optimizer (`AdamWeightDecayOptimizer`), which decays the *old*
    weights and has no bias correction at all; here, as in `transformers.AdamW`, the decay applies
    to the weights after the Adam step.

    .. math::
      s_t = \eta_t \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \text{ (or } \eta_t
        \text{ without correct\_bias)}, \quad
      p'_t = p_{t-1} - s_t \frac{m_t}{\sqrt{v_t} + \epsilon}, \quad
      p_t = p'_t - \eta_t \lambda p'_t

    It differs from `adamw` (`torch.optim.AdamW`) even with `correct_bias=True`: eps is added to
    the uncorrected :math:`\sqrt{v_t}`, and the decay comes after the Adam step, on the updated
    weights. BERT was trained with `correct_bias=False`.

    Args:
      learning_rate: eta, a float >= 0 or an optax schedule of the steps already taken.
      b1: beta_1 in [0, 1).
      b2: beta_2 in [0, 1).
      eps: epsilon >= 0 (default 1e-6, HuggingFace's).
      weight_decay: lambda, the decoupled decay rate. HuggingFace does not validate it and decays
        only when it is > 0; so do we.
      correct_bias: fold Adam's bias corrections into the step size.
      mask: which params decay (optax's `masked` convention, see `adamw`); BERT excluded biases
        and LayerNorm weights.

    Returns:
      An `optax.GradientTransformationExtraArgs`; `update` needs `params` when `weight_decay` is
      not 0.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.optimizers import bert_adamw
      >>> tx = bert_adamw(0.1, correct_bias=False)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = tx.update(params, tx.init(params), params)
      >>> optax.apply_updates(params, updates)["w"].round(4)  # lr 0.1 g / (sqrt(0.001 g^2) + eps)
      Array([ 0.6838, -1.6838], dtype=float32)

    References:
      Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
      Understanding", 2019. https://arxiv.org/abs/1810.04805
    """
    return _adam_family(
        "bert_adamw",
        learning_rate,
        b1,
        b2,
        eps,
        weight_decay,
        WeightDecay.AFTER_STEP,
        mask=mask,
        correct_bias=correct_bias,
        check_weight_decay=False,
    )


# -- RMSprop and Adagrad --------------------------------------------------------------------------


def rmsprop(
    learning_rate: optax.ScalarOrSchedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float | None = None,
    momentum: float | None = None,
    centered: bool = False,
    maximize: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSprop, exactly `torch.optim.RMSprop`.

    .. math::
      g_t \leftarrow g_t + \lambda p_{t-1}, \quad
      s_t = \alpha s_{t-1} + (1 - \alpha) g_t^2, \quad
      a_t = \alpha a_{t-1} + (1 - \alpha) g_t, \\
      d_t = \frac{g_t}{\sqrt{s_t - a_t^2} + \epsilon} \text{ (centered) or }
        \frac{g_t}{\sqrt{s_t} + \epsilon}, \quad
      b_t = \mu b_{t-1} + d_t, \quad
      p_t = p_{t-1} - \eta_t b_t \text{ (or } \eta_t d_t \text{ without momentum)}

    Differences from `optax.rmsprop`: eps is added outside the square root (optax adds it inside
    unless `eps_in_sqrt=False`), the default decay alpha is 0.99 (optax's is 0.9), and the momentum
    buffer holds unscaled steps, the learning rate multiplying it afterwards (optax's buffer holds
    learning-rate-scaled updates, which differs under a schedule).

    Args:
      learning_rate: eta, a float >= 0 or an optax schedule of the steps already taken.
      alpha: the smoothing constant >= 0 of the squared-gradient average.
      eps: epsilon >= 0, outside the square root.
      weight_decay: lambda >= 0, coupled L2 decay added to the gradient; None (the default) or 0
        for none.
      momentum: mu >= 0; None (the default) keeps no buffer, a number (0 included, as in
        optax) keeps one, so that `optax.inject_hyperparams` gives the same state structure.
      centered: normalise by the estimated variance (keeps the gradient average `grad_avg`).
      maximize: maximise the objective instead of minimising it.

    Returns:
      An `optax.GradientTransformationExtraArgs`; `update` needs `params` when `weight_decay` is
      not 0.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.optimizers import rmsprop
      >>> tx = rmsprop(0.01, alpha=0.75)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = tx.update(params, tx.init(params), params)
      >>> optax.apply_updates(params, updates)["w"]  # lr * g / sqrt(0.25 g^2)
      Array([ 0.98, -1.98], dtype=float32)
    """
    caller = "rmsprop"
    lr_fn = _lr_schedule(caller, learning_rate)
    checks.nonnegative(caller, "eps", eps)
    checks.nonnegative(caller, "alpha", alpha)
    _optional_nonnegative(caller, momentum=momentum, weight_decay=weight_decay)
    has_momentum = momentum is not None  # as in sgd: 0 included (the injected structure)
    has_decay = not checks.is_python_zero(weight_decay)

    def rule(scalars, leaf: Leaf, s, *rest):
        dt, g = leaf.dt, leaf.g
        a = rest[0] if centered else None
        b = rest[-1] if has_momentum else None
        decay, one_minus_decay = jnp.asarray(alpha, dt), _one_minus(alpha, dt)
        s = decay * s + one_minus_decay * (g * g)
        if centered:
            a = decay * a + one_minus_decay * g
            denom = jnp.sqrt(s - a * a) + jnp.asarray(eps, dt)
        else:
            denom = jnp.sqrt(s) + jnp.asarray(eps, dt)
        d = g / denom
        if has_momentum:
            mu = jnp.asarray(momentum, dt)
            b = jnp.where(mu == 0, d, mu * b + d)  # as in sgd: 0 * inf must not persist
            d = b
        new = (s, a) if centered else (s,)
        return -scalars.lr.astype(dt) * d, (*new, b) if has_momentum else new

    return _elementwise(
        caller,
        RmspropState,
        {
            "square_avg": _zeros(),
            "grad_avg": _zeros() if centered else None,
            "momentum_buffer": _zeros() if has_momentum else None,
        },
        lr_fn,
        rule,
        maximize=maximize,
        weight_decay=weight_decay if has_decay else None,
        needs_params=has_decay,
    )


def adagrad(
    learning_rate: optax.ScalarOrSchedule = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float | None = None,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Adagrad, exactly `torch.optim.Adagrad`.

    .. math::
      g_t \leftarrow g_t + \lambda p_{t-1}, \quad
      S_t = S_{t-1} + g_t^2, \quad
      p_t = p_{t-1} - \frac{\eta_t}{1 + (t - 1) \delta} \frac{g_t}{\sqrt{S_t} + \epsilon}

    with :math:`S_0` = `initial_accumulator_value`. `optax.adagrad` differs: its accumulator
    starts at 0.1, eps (1e-7) sits inside the square root and there is no `lr_decay`.

    Args:
      learning_rate: eta, a float >= 0 or an optax schedule of the steps already taken.
      lr_decay: delta >= 0, the inverse-time decay of the learning rate.
      weight_decay: lambda >= 0, coupled L2 decay added to the gradient; None (the default) or 0
        for none.
      initial_accumulator_value: S_0 >= 0.
      eps: epsilon >= 0, outside the square root.
      maximize: maximise the objective instead of minimising it.

    Returns:
      An `optax.GradientTransformationExtraArgs`; `update` needs `params` when `weight_decay` is
      not 0.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from lookahead_jax.optimizers import adagrad
      >>> tx = adagrad(0.5)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, state = tx.update(params, tx.init(params), params)
      >>> optax.apply_updates(params, updates)["w"]  # the first step is lr * sign(g)
      Array([ 0.5, -1.5], dtype=float32)

    References:
      Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization", JMLR 2011.
    """
    caller = "adagrad"
    lr_fn = _lr_schedule(caller, learning_rate)
    checks.nonnegative(caller, "lr_decay", lr_decay)
    checks.nonnegative(caller, "initial_accumulator_value", initial_accumulator_value)
    checks.nonnegative(caller, "eps", eps)
    _optional_nonnegative(caller, weight_decay=weight_decay)
    has_decay = not checks.is_python_zero(weight_decay)

    def step_scalars(step: Step):
        return step.lr / (1.0 + step.taken.astype(step.dtype) * jnp.asarray(lr_decay, step.dtype))

    def rule(clr, leaf: Leaf, acc):
        dt, g = leaf.dt, leaf.g
        acc = acc + g * g
        return -clr.astype(dt) * g / (jnp.sqrt(acc) + jnp.asarray(eps, dt)), (acc,)

    return _elementwise(
        caller,
        AdagradState,
        {"sum": lambda p: jnp.full_like(p, initial_accumulator_value)},
        lr_fn,
        rule,
        maximize=maximize,
        weight_decay=weight_decay if has_decay else None,
        needs_params=has_decay,
        step_scalars=step_scalars,
    )
