"""Every argument and tree check of the library, in one place, with one rule for the error type.

The rule: a value of the wrong *kind* (a string for a rate, a float for a count, an integer
param) is a `TypeError`; a value of the right kind outside its range (a negative rate, a
sync period of 0, a gradient of the wrong shape) is a `ValueError`. Every message starts with
the caller and names the argument and the value.

Argument checks run at construction; tree checks run at trace time on shapes and dtypes only,
so they cost nothing in the compiled step.
"""

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

INT32_MAX = 2**31 - 1  # counters are int32: they saturate or wrap below this


# -- Arguments ------------------------------------------------------------------------------------


def transformation(caller: str, inner: Any) -> optax.GradientTransformationExtraArgs:
    """`inner` as a transformation that accepts extra args, or a TypeError."""
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"{caller}: inner must be an optax GradientTransformation (with init and update), "
            f"got {inner!r}"
        )
    # Plain transformations do not accept extra args; optax's wrapper makes them ignore them.
    return optax.with_extra_args_support(inner)


def static_number(caller: str, name: str, value: Any) -> Any:
    """`value` as a Python number where it is a concrete shape-() array (NumPy or JAX).

    For hyperparameters that fix a static choice (a period, a count, SWA's or EMA's weights):
    a traced value cannot, so it gets a `TypeError` that says so; any other shape a `ValueError`.
    Other values pass through unchanged for the caller's own check.
    """
    shape = getattr(value, "shape", None)
    if shape is not None and shape != ():
        raise ValueError(
            f"{caller}: {name} must be a scalar (shape ()), got shape {tuple(shape)}: "
            f"{name}={value!r}"
        )
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{caller}: {name} must be a concrete number, not a traced value (it is static: "
            f"pass it as a Python number, outside jit), got {name}={value!r}"
        )
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        return value.item()
    return value


def integer(caller: str, name: str, value: Any, minimum: int, maximum: int = INT32_MAX) -> int:
    """`value` as an int in [minimum, maximum] (int32 counters by default)."""
    what = f"an int in [{minimum}, {maximum}]"
    value = static_number(caller, name, value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{caller}: {name} must be {what}, got {name}={value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{caller}: {name} must be {what}, got {name}={value!r}")
    return int(value)


def scalar(caller: str, name: str, value: Any) -> float | None:
    """The Python number in `value`, or None when it is traced (under `inject_hyperparams`).

    Arrays must have shape ``()``: a shape-(1,) rate would broadcast every update it scales.
    """
    shape = getattr(value, "shape", None)
    if shape is not None and shape != ():
        raise ValueError(
            f"{caller}: {name} must be a scalar (shape ()), got shape {tuple(shape)}: "
            f"{name}={value!r}"
        )
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{caller}: {name} must be a real number, got {name}={value!r}")
    return float(value)


def nonnegative(caller: str, name: str, value: Any) -> None:
    """A scalar >= 0 (NaN refused), or traced."""
    v = scalar(caller, name, value)
    if v is not None and not v >= 0.0:  # `not >=` also rejects NaN
        raise ValueError(f"{caller}: {name} must be >= 0, got {name}={value!r}")


def positive_finite(caller: str, name: str, value: Any) -> float:
    """A Python scalar > 0 and finite (not traced: for module fields and static settings)."""
    v = scalar(caller, name, value)
    if v is None or not (math.isfinite(v) and v > 0):
        raise ValueError(f"{caller}: {name} must be positive and finite, got {name}={value!r}")
    return v


def in_unit_interval(
    caller: str, name: str, value: Any, *, closed_high: bool = False, open_low: bool = False
) -> float | None:
    """A scalar in [0, 1) (or [0, 1], (0, 1] as asked), or traced."""
    v = scalar(caller, name, value)
    lo, hi = ("(" if open_low else "["), ("]" if closed_high else ")")
    low_ok = (lambda x: x > 0.0) if open_low else (lambda x: x >= 0.0)
    high_ok = (lambda x: x <= 1.0) if closed_high else (lambda x: x < 1.0)
    if v is not None and not (low_ok(v) and high_ok(v)):
        raise ValueError(f"{caller}: {name} must be in {lo}0, 1{hi}, got {name}={value!r}")
    return v


def dtype(caller: str, name: str, value: Any, *, floating: bool = False) -> jnp.dtype | None:
    """`value` as a dtype, or None; with `floating`, a floating dtype."""
    if value is None:
        return None
    try:
        dt = jnp.dtype(value)
    except TypeError as e:
        raise TypeError(f"{caller}: {name} must be a dtype or None, got {name}={value!r}") from e
    if floating and not jnp.issubdtype(dt, jnp.inexact):
        raise TypeError(f"{caller}: {name} must be a floating dtype or None, got {name}={value!r}")
    return dt


def is_python_zero(value: Any) -> bool:
    """True for a plain Python 0 (or None); arrays (injected hyperparams) never count as static."""
    if value is None:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


# -- Trees ----------------------------------------------------------------------------------------


def float_params(caller: str, params: optax.Params, *, complex_ok: bool = True) -> None:
    """Raises a TypeError naming the first leaf that is not a floating-point array.

    An optimizer's arithmetic on an integer, boolean or PRNG-key leaf would be silently
    truncated (0.3 * g rounds to 0), so they are refused rather than half-trained. Python
    scalars are refused too: they have no dtype to keep the state in. With ``complex_ok=False``
    complex leaves are refused (rules whose element-wise squares differ from PyTorch's
    treatment of a complex number as a (real, imag) pair).
    """
    if type(params).__name__ == "_ParamsPlaceholder":  # optax.tree_map_params: nothing to check
        return
    for path, p in jax.tree_util.tree_leaves_with_path(params):
        where = f"params{jax.tree_util.keystr(path)}"
        if not hasattr(p, "dtype") or not hasattr(p, "shape"):
            raise TypeError(
                f"{caller}: {where} is a {type(p).__name__}, not an array; optimizer state is "
                f"kept in each param's dtype, so pass arrays (e.g. jnp.asarray({p!r}))."
            )
        if not jnp.issubdtype(p.dtype, jnp.inexact):
            raise TypeError(
                f"{caller}: params must be floating point, got dtype {p.dtype} at {where}. Keep "
                "integer, boolean and PRNG-key leaves out of the optimizer, e.g. "
                "optax.multi_transform({'train': tx, 'frozen': optax.set_to_zero()}, labels)."
            )
        if not complex_ok and jnp.issubdtype(p.dtype, jnp.complexfloating):
            raise TypeError(
                f"{caller}: complex params are not supported (got dtype {p.dtype} at {where}): "
                "PyTorch updates a complex param as its (real, imag) pair; split it into two "
                "real params, or use sgd, whose rule is the same either way."
            )


def like_params(caller: str, updates: optax.Updates, params: optax.Params | None) -> None:
    """Raises a ValueError unless `updates` has the tree structure and leaf shapes of `params`.

    A gradient of another shape would broadcast against its param and silently reshape it.
    Nothing is checked when `params` is None.
    """
    if params is None:
        return
    if jax.tree.structure(updates) != jax.tree.structure(params):
        raise ValueError(
            f"{caller}: the updates (gradients) must have the tree structure of the params; got "
            f"{jax.tree.structure(updates)} for params {jax.tree.structure(params)}"
        )
    for (path, u), p in zip(
        jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(params), strict=True
    ):
        if jnp.shape(u) != jnp.shape(p):
            raise ValueError(
                f"{caller}: the gradient at {jax.tree_util.keystr(path)} has shape "
                f"{jnp.shape(u)} but the param has shape {jnp.shape(p)}"
            )


def require_params(caller: str, params: optax.Params | None, why: str) -> optax.Params:
    """`params`, or a ValueError saying the update needs them (and why)."""
    if params is None:
        raise ValueError(
            f"{caller}: update needs the current params {why}; call "
            "tx.update(grads, state, params)."
        )
    return params


def family_list(caller: str, family: Any) -> list[Any]:
    """A task family, or a sequence of them (a mixture), as a non-empty list of families."""
    families = list(family) if isinstance(family, Sequence) else [family]
    if not families or not all(callable(f) for f in families):
        raise TypeError(
            f"{caller}: family must be a TaskFamily or a non-empty sequence of them, got {family!r}"
        )
    return families
