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
  the argument and its value. Under `optax.inject_hyperparams` they are traced arrays and cannot be
  checked; an injected `momentum` or `weight_decay` is then always applied (a buffer is kept even
  at 0), since the state structure cannot depend on a traced value.
- Element-wise maths runs in the widest of the param, gradient and buffer dtypes (at least float32),
  buffers are stored in their own dtype and updates come back in the param dtype.
"""

import numbers
from collections.abc import Callable
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


# -- Validation -----------------------------------------------------------------------------------


def _concrete(caller: str, name: str, value: Any) -> float | None:
    """The Python number in `value`, or None when it is traced (under `inject_hyperparams`)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, jax.Array | np.ndarray):
        if value.size != 1:
            raise ValueError(f"{caller}: {name} must be a scalar, got {name}={value!r}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{caller}: {name} must be a real number, got {name}={value!r}")
    return float(value)


def _check_nonnegative(caller: str, name: str, value: Any) -> None:
    v = _concrete(caller, name, value)
    if v is not None and not v >= 0.0:  # `not >=` also rejects NaN
        raise ValueError(f"{caller}: {name} must be >= 0, got {name}={value!r}")


def _check_beta(caller: str, name: str, value: Any) -> None:
    v = _concrete(caller, name, value)
    if v is not None and not 0.0 <= v < 1.0:
        raise ValueError(f"{caller}: {name} must be in [0, 1), got {name}={value!r}")


def _lr_schedule(caller: str, learning_rate: optax.ScalarOrSchedule) -> optax.Schedule:
    if callable(learning_rate):
        # The count in the default int dtype: under x64, optax's schedules compute `int32 / int`
        # in float32, which would round a float64 learning rate.
        return lambda count: learning_rate(count.astype(jnp.result_type(int)))
    _check_nonnegative(caller, "learning_rate", learning_rate)
    return lambda _: learning_rate


def _is_python_zero(value: Any) -> bool:
    """True for a plain Python 0; arrays (injected hyperparams) never count as a static zero."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def _check_dtype(caller: str, name: str, dtype: Any) -> jnp.dtype | None:
    if dtype is None:
        return None
    try:
        return jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{caller}: {name} must be a dtype or None, got {name}={dtype!r}") from e


# -- Shared plumbing ------------------------------------------------------------------------------


def _compute_dtype(*arrays: jax.Array) -> jnp.dtype:
    """The widest dtype of the arrays, at least float32 (bfloat16 maths would lose the moments)."""
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _scalar_dtype(tree: Any) -> jnp.dtype:
    """dtype for step-level scalars (learning rate, bias corrections): float64 under x64 params."""
    leaves = jax.tree.leaves(tree)
    return _compute_dtype(*leaves) if leaves else jnp.dtype(jnp.float32)


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


def _unzip(treedef: Any, out: Any, n: int) -> tuple[Any, ...]:
    """Splits a tree of n-tuples (the output of one `jax.tree.map`) into n trees."""
    leaves = treedef.flatten_up_to(out)
    return tuple(treedef.unflatten([leaf[i] for leaf in leaves]) for i in range(n))


def _step_counts(count: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(t, t - 1): this step's number (saturating at 2**31 - 1) and the steps already taken.

    Everything derives from the incremented count, so the old count is dead once it is read and
    XLA updates the donated counter in place (reading the old one after would cost a copy).
    """
    t = optax.safe_increment(count)
    return t, t - 1


def _zeros(params: optax.Params, dtype: jnp.dtype | None) -> optax.Updates:
    # A fresh buffer per leaf, never aliasing the params, so both can be donated.
    # zeros_like keeps each param's sharding, so moments start sharded like their params.
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype or jnp.asarray(p).dtype), params)


def _begin_update(caller, updates, params, has_decay, count, lr_fn):
    """The checks and step quantities every optimizer's update starts with.

    Returns:
      `(ref, sdt, t, taken, lr)`: the tree to read shapes and dtypes from (params, else the
      updates), the scalar dtype, this step's number, the steps already taken, and the rate.
    """
    if has_decay:
        _require_params(caller, params)
    checks.check_like_params(caller, updates, params)
    ref = updates if params is None else params
    sdt = _scalar_dtype(ref)
    t, taken = _step_counts(count)
    return ref, sdt, t, taken, jnp.asarray(lr_fn(taken), sdt)


def _require_params(caller: str, params: optax.Params | None) -> optax.Params:
    if params is None:
        raise ValueError(
            f"{caller}: update needs the current params for weight decay; call "
            "tx.update(grads, state, params)."
        )
    return params


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
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
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
      momentum: mu >= 0; 0 keeps no buffer.
      dampening: tau, the dampening of the gradient in the momentum buffer.
      nesterov: Nesterov momentum (requires momentum > 0 and dampening = 0).
      weight_decay: lambda >= 0, coupled L2 decay added to the gradient.
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
    _check_nonnegative(caller, "momentum", momentum)
    _check_nonnegative(caller, "weight_decay", weight_decay)
    mu, tau = _concrete(caller, "momentum", momentum), _concrete(caller, "dampening", dampening)
    if nesterov and ((mu is not None and mu <= 0) or (tau is not None and tau != 0)):
        raise ValueError(
            f"{caller}: Nesterov momentum requires momentum > 0 and dampening = 0, got "
            f"{momentum=}, {dampening=}"
        )
    has_momentum = not _is_python_zero(momentum)
    has_decay = not _is_python_zero(weight_decay)

    def init_fn(params: optax.Params) -> SgdState:
        checks.check_float_params(caller, params)
        return SgdState(
            count=jnp.zeros([], jnp.int32),
            momentum_buffer=_zeros(params, None) if has_momentum else None,
        )

    def update_fn(
        updates: optax.Updates,
        state: SgdState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, SgdState]:
        del extra_args
        ref, sdt, count, _taken, lr = _begin_update(
            caller, updates, params, has_decay, state.count, lr_fn
        )
        first = count == 1
        # PyTorch's buffer starts as the first d: b = 0 * b + 1 * d on the first step.
        buf_coef = jnp.where(first, 0.0, jnp.asarray(momentum, sdt))
        grad_coef = jnp.where(first, 1.0, _one_minus(dampening, sdt))

        def leaf(g, p, b=None):
            dt = _compute_dtype(g, p) if b is None else _compute_dtype(g, p, b)
            d = -g.astype(dt) if maximize else g.astype(dt)
            if has_decay:
                d = d + jnp.asarray(weight_decay, dt) * p.astype(dt)
            if has_momentum:
                b = buf_coef.astype(dt) * b.astype(dt) + grad_coef.astype(dt) * d
                d = d + jnp.asarray(momentum, dt) * b if nesterov else b
            u = (-lr.astype(dt) * d).astype(p.dtype)
            return (u, b.astype(p.dtype)) if has_momentum else (u,)

        trees = [updates, ref] + ([state.momentum_buffer] if has_momentum else [])
        treedef = jax.tree.structure(updates)
        out = _unzip(treedef, jax.tree.map(leaf, *trees), 2 if has_momentum else 1)
        new_state = SgdState(
            count=count,
            momentum_buffer=out[1] if has_momentum else None,
        )
        return out[0], new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# -- Adam family ----------------------------------------------------------------------------------


def _adam_family(
    caller: str,
    learning_rate: optax.ScalarOrSchedule,
    b1: float,
    b2: float,
    eps: float,
    weight_decay: float,
    decay_kind: str,  # "l2" (Adam), "decoupled" (AdamW) or "bert" (HuggingFace's AdamW)
    amsgrad: bool = False,
    maximize: bool = False,
    mask: MaskOrFn = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    correct_bias: bool = True,
    check_weight_decay: bool = True,
) -> optax.GradientTransformationExtraArgs:
    lr_fn = _lr_schedule(caller, learning_rate)
    _check_nonnegative(caller, "eps", eps)
    _check_beta(caller, "b1", b1)
    _check_beta(caller, "b2", b2)
    has_decay = not _is_python_zero(weight_decay)
    if check_weight_decay:
        _check_nonnegative(caller, "weight_decay", weight_decay)
    elif (wd := _concrete(caller, "weight_decay", weight_decay)) is not None and wd <= 0:
        has_decay = False  # HuggingFace decays only `if weight_decay > 0.0`
    mu_dtype = _check_dtype(caller, "mu_dtype", mu_dtype)
    nu_dtype = _check_dtype(caller, "nu_dtype", nu_dtype)

    def init_fn(params: optax.Params) -> AdamState:
        checks.check_float_params(caller, params)
        return AdamState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=_zeros(params, mu_dtype),
            exp_avg_sq=_zeros(params, nu_dtype),
            max_exp_avg_sq=_zeros(params, nu_dtype) if amsgrad else None,
        )

    def update_fn(
        updates: optax.Updates,
        state: AdamState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, AdamState]:
        del extra_args
        ref, sdt, count, _taken, lr = _begin_update(
            caller, updates, params, has_decay, state.count, lr_fn
        )
        flags = _decay_flags(mask, ref) if has_decay else jax.tree.map(lambda _: False, ref)
        t = count.astype(sdt)
        bc1, bc2 = _bias_correction(b1, t), _bias_correction(b2, t)
        if decay_kind == "bert":
            # HuggingFace folds the bias corrections into the step size; eps stays unscaled.
            step_size = lr * jnp.sqrt(bc2) / bc1 if correct_bias else lr
            sqrt_bc2 = jnp.ones([], sdt)
        else:
            step_size = lr / bc1
            sqrt_bc2 = jnp.sqrt(bc2)

        def leaf(g, p, flag, m, v, v_max=None):
            dt = _compute_dtype(g, p, m, v)
            g = -g.astype(dt) if maximize else g.astype(dt)
            wd = _masked_decay(flag, weight_decay, dt) if has_decay else None
            pw = p.astype(dt)
            if wd is not None and decay_kind == "l2":
                g = g + wd * pw
            m = jnp.asarray(b1, dt) * m.astype(dt) + _one_minus(b1, dt) * g
            v = jnp.asarray(b2, dt) * v.astype(dt) + _one_minus(b2, dt) * (g * g)
            v_hat = v
            if amsgrad:
                v_max = jnp.maximum(v_max.astype(dt), v)
                v_hat = v_max
            denom = jnp.sqrt(v_hat) / sqrt_bc2.astype(dt) + jnp.asarray(eps, dt)
            u = -step_size.astype(dt) * m / denom
            if wd is not None and decay_kind == "decoupled":
                u = u - lr.astype(dt) * wd * pw  # p (1 - lr wd) first: the old weights
            elif wd is not None and decay_kind == "bert":
                u = u - lr.astype(dt) * wd * (pw + u)  # after the Adam step: the new weights
            out = (u.astype(p.dtype), m.astype(m_dtype(p)), v.astype(v_dtype(p)))
            return (*out, v_max.astype(v_dtype(p))) if amsgrad else out

        def m_dtype(p):
            return mu_dtype or p.dtype

        def v_dtype(p):
            return nu_dtype or p.dtype

        trees = [updates, ref, flags, state.exp_avg, state.exp_avg_sq]
        if amsgrad:
            trees.append(state.max_exp_avg_sq)
        treedef = jax.tree.structure(updates)
        out = _unzip(treedef, jax.tree.map(leaf, *trees), 4 if amsgrad else 3)
        new_state = AdamState(
            count=count,
            exp_avg=out[1],
            exp_avg_sq=out[2],
            max_exp_avg_sq=out[3] if amsgrad else None,
        )
        return out[0], new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
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
      weight_decay: lambda >= 0, L2 decay added to the gradient (coupled, not AdamW's).
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
        "l2",
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
        "decoupled",
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
    weight_decay: float = 0.0,
    correct_bias: bool = True,
    mask: MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The AdamW of HuggingFace's `pytorch-transformers`, used to train BERT, exactly.

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
        "bert",
        mask=mask,
        correct_bias=correct_bias,
        check_weight_decay=False,
    )


# -- RMSprop and Adagrad --------------------------------------------------------------------------


def rmsprop(
    learning_rate: optax.ScalarOrSchedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
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
      weight_decay: lambda >= 0, coupled L2 decay added to the gradient.
      momentum: mu >= 0; 0 keeps no buffer.
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
    _check_nonnegative(caller, "eps", eps)
    _check_nonnegative(caller, "momentum", momentum)
    _check_nonnegative(caller, "weight_decay", weight_decay)
    _check_nonnegative(caller, "alpha", alpha)
    has_momentum = not _is_python_zero(momentum)
    has_decay = not _is_python_zero(weight_decay)

    def init_fn(params: optax.Params) -> RmspropState:
        checks.check_float_params(caller, params)
        return RmspropState(
            count=jnp.zeros([], jnp.int32),
            square_avg=_zeros(params, None),
            grad_avg=_zeros(params, None) if centered else None,
            momentum_buffer=_zeros(params, None) if has_momentum else None,
        )

    def update_fn(
        updates: optax.Updates,
        state: RmspropState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, RmspropState]:
        del extra_args
        ref, _, count, _taken, lr = _begin_update(
            caller, updates, params, has_decay, state.count, lr_fn
        )

        def leaf(g, p, s, *rest):
            a = rest[0] if centered else None
            b = rest[-1] if has_momentum else None
            dt = _compute_dtype(g, p, s, *rest)
            g = -g.astype(dt) if maximize else g.astype(dt)
            if has_decay:
                g = g + jnp.asarray(weight_decay, dt) * p.astype(dt)
            decay, one_minus_decay = jnp.asarray(alpha, dt), _one_minus(alpha, dt)
            s = decay * s.astype(dt) + one_minus_decay * (g * g)
            if centered:
                a = decay * a.astype(dt) + one_minus_decay * g
                denom = jnp.sqrt(s - a * a) + jnp.asarray(eps, dt)
            else:
                denom = jnp.sqrt(s) + jnp.asarray(eps, dt)
            d = g / denom
            if has_momentum:
                b = jnp.asarray(momentum, dt) * b.astype(dt) + d
                d = b
            u = (-lr.astype(dt) * d).astype(p.dtype)
            new = (s, a) if centered else (s,)
            new = (*new, b) if has_momentum else new
            return (u, *(x.astype(p.dtype) for x in new))

        trees = [updates, ref, state.square_avg]
        trees += [state.grad_avg] if centered else []
        trees += [state.momentum_buffer] if has_momentum else []
        treedef = jax.tree.structure(updates)
        out = list(_unzip(treedef, jax.tree.map(leaf, *trees), len(trees) - 1))
        u, s = out.pop(0), out.pop(0)
        a = out.pop(0) if centered else None
        b = out.pop(0) if has_momentum else None
        new_state = RmspropState(count, s, a, b)
        return u, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adagrad(
    learning_rate: optax.ScalarOrSchedule = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
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
      weight_decay: lambda >= 0, coupled L2 decay added to the gradient.
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
    _check_nonnegative(caller, "lr_decay", lr_decay)
    _check_nonnegative(caller, "weight_decay", weight_decay)
    _check_nonnegative(caller, "initial_accumulator_value", initial_accumulator_value)
    _check_nonnegative(caller, "eps", eps)
    has_decay = not _is_python_zero(weight_decay)

    def init_fn(params: optax.Params) -> AdagradState:
        checks.check_float_params(caller, params)

        def full(p):
            dtype = jnp.asarray(p).dtype
            return jnp.full_like(p, initial_accumulator_value, dtype=dtype)

        return AdagradState(count=jnp.zeros([], jnp.int32), sum=jax.tree.map(full, params))

    def update_fn(
        updates: optax.Updates,
        state: AdagradState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, AdagradState]:
        del extra_args
        ref, sdt, count, taken, lr = _begin_update(
            caller, updates, params, has_decay, state.count, lr_fn
        )
        clr = lr / (1.0 + taken.astype(sdt) * jnp.asarray(lr_decay, sdt))

        def leaf(g, p, acc):
            dt = _compute_dtype(g, p, acc)
            g = -g.astype(dt) if maximize else g.astype(dt)
            if has_decay:
                g = g + jnp.asarray(weight_decay, dt) * p.astype(dt)
            acc = acc.astype(dt) + g * g
            u = -clr.astype(dt) * g / (jnp.sqrt(acc) + jnp.asarray(eps, dt))
            return u.astype(p.dtype), acc.astype(p.dtype)

        treedef = jax.tree.structure(updates)
        u, acc = _unzip(treedef, jax.tree.map(leaf, updates, ref, state.sum), 2)
        return u, AdagradState(count=count, sum=acc)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
