"""Checks every transformation runs on the trees it is given, so bad input fails loudly.

They run at trace time on shapes and dtypes only, so they cost nothing in the compiled step.
"""

import jax
import jax.numpy as jnp
import optax


def check_float_params(caller: str, params: optax.Params) -> None:
    """Raises a TypeError naming the first integer, boolean or PRNG-key leaf of `params`.

    An optimizer's arithmetic on such a leaf would be silently truncated (0.3 * g rounds to 0),
    so they are refused rather than half-trained.
    """
    for path, p in jax.tree_util.tree_leaves_with_path(params):
        dtype = p.dtype if hasattr(p, "dtype") else jnp.result_type(p)  # key arrays have .dtype
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{caller}: params must be floating point, got dtype {dtype} at "
                f"params{jax.tree_util.keystr(path)}. Keep integer, boolean and PRNG-key leaves "
                "out of the optimizer, e.g. optax.multi_transform({'train': tx, "
                "'frozen': optax.set_to_zero()}, labels)."
            )


def check_like_params(caller: str, updates: optax.Updates, params: optax.Params | None) -> None:
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
