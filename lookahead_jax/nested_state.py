"""Find one of our states anywhere inside a nested optax optimizer state.

optax wrappers (`chain`, `inject_hyperparams`, `MultiSteps`, `apply_if_finite`, `masked`,
`multi_transform`) nest the wrapped state inside NamedTuples, tuples and dicts. All of those are
pytree nodes, so a pytree traversal that stops at the first instance of the wanted state type finds
it without knowing any wrapper by name, and finds the *outermost* one when states nest.
"""

from typing import Any, TypeVar

import jax
import optax

S = TypeVar("S")


def find_state(state: optax.OptState, state_type: type[S], *, caller: str) -> S:
    """Returns the outermost instance of `state_type` inside `state`.

    Args:
      state: any optimizer state, possibly nested inside optax wrappers.
      state_type: the NamedTuple class to look for.
      caller: the public function asking, named in error messages.

    Returns:
      The instance found. States nested inside it are not searched.

    Raises:
      ValueError: if there is no instance, or several that are not nested in one another (e.g.
        two `multi_transform` groups each with their own), since then no single answer is right.
    """
    found = [
        leaf
        for leaf in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, state_type))
        if isinstance(leaf, state_type)
    ]
    if not found:
        raise ValueError(
            f"{caller}: no {state_type.__name__} found in the optimizer state of type "
            f"{type(state).__name__}; was the optimizer built with the matching transformation?"
        )
    if len(found) > 1:
        raise ValueError(
            f"{caller}: found {len(found)} separate {state_type.__name__}s in the optimizer state "
            "(e.g. one per multi_transform group); pass the sub-state you mean."
        )
    return found[0]


def fill_masked(tree: Any, params: Any) -> Any:
    """Replaces the `optax.MaskedNode` leaves of `tree` with the matching leaves of `params`.

    A transformation under `optax.masked` only tracks the selected leaves; the others appear as
    `MaskedNode`. Filling them from the current params gives a complete tree to evaluate.
    """
    is_masked = lambda x: isinstance(x, optax.MaskedNode)
    return jax.tree.map(lambda t, p: p if is_masked(t) else t, tree, params, is_leaf=is_masked)
