"""optax 0.2.8's own Lookahead tests (`optax/_src/lookahead_test.py`), run over `lj.lookahead`.

The cases and expected numbers are optax's. Two translations: optax's params are a
`LookaheadParams(fast, slow)` pair and the tests read `.slow`, ours are the plain params (the
fast weights, equal to the slow ones right after a sync, where every case ends) with the slow
weights in the state; and optax's `reset_state` is our `reset_inner_state`. Each case runs
eagerly and jitted, in both slow-weight layouts, and through a no-op `optax.tree_map_params`.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lookahead_jax as lj

LAYOUTS = ["tree", "flat"]
GRADS = {"x": np.array(2.0), "y": np.array(-2.0)}
INITIAL = {"x": np.array(3.0), "y": np.array(-3.0)}


class _State(NamedTuple):
    aggregate_grads: optax.Params
    is_reset: bool = True  # non-zero at init: checks that a reset restores it


def _test_optimizer(step_size: float) -> optax.GradientTransformation:
    """optax's fast optimizer for these tests: SGD with a non-trivial state."""

    def init_fn(params):
        return _State(jax.tree.map(jnp.zeros_like, params), is_reset=True)

    def update_fn(updates, state, params):
        chex.assert_trees_all_equal_shapes(updates, params)
        aggregate = optax.apply_updates(state.aggregate_grads, updates)
        return jax.tree.map(lambda u: step_size * u, updates), _State(aggregate, is_reset=False)

    return optax.GradientTransformation(init_fn, update_fn)


def _loop(tx, num_steps, params, jit):
    init, update = (jax.jit(tx.init), jax.jit(tx.update)) if jit else (tx.init, tx.update)
    state = init(params)
    if not isinstance(state.slow, lj.FlatSlow):  # the flat layout is opaque to tree_map_params
        state = optax.tree_map_params(tx, lambda v: v, state)
    for _ in range(num_steps):
        updates, state = update(GRADS, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_lookahead(jit, layout):
    sync_period = 3
    tx = lj.lookahead(
        _test_optimizer(-0.5), sync_period=sync_period, slow_step_size=1 / 3, slow_layout=layout
    )
    params, state = _loop(tx, 2 * sync_period, INITIAL, jit)
    # x: 3 -> 2 -> 1 -> 2 (sync) -> 1 -> 0 -> 1 (sync); y with the sign flipped.
    chex.assert_trees_all_close(params, {"x": 1.0, "y": -1.0})
    chex.assert_trees_all_close(lj.slow_params(state, params), {"x": 1.0, "y": -1.0})


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("reset", [False, True])
def test_lookahead_state_reset(jit, reset):
    num_steps = sync_period = 3
    fast = _test_optimizer(-0.5)
    # tree_map_params needs the per-param layout ("auto" is flat on one device).
    tx = lj.lookahead(
        fast,
        sync_period=sync_period,
        slow_step_size=0.5,
        reset_inner_state=reset,
        slow_layout="tree",
    )
    _, state = _loop(tx, num_steps, INITIAL, jit)
    state = optax.tree_map_params(tx, lambda v: v, state)
    if reset:
        expected = fast.init(INITIAL)
    else:
        params, expected = INITIAL, fast.init(INITIAL)
        for _ in range(num_steps):
            updates, expected = fast.update(GRADS, expected, params)
            params = optax.apply_updates(params, updates)
    chex.assert_trees_all_close(state.inner_state, expected)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("sync_period", "slow_step_size", "expected"),
    [
        (1, 0.5, {"x": 1.0, "y": -1.0}),
        (1, 0.0, {"x": 3.0, "y": -3.0}),
        (1, 1.0, {"x": -1.0, "y": 1.0}),
        (2, 1.0, {"x": -1.0, "y": 1.0}),
    ],
)
def test_lookahead_edge_cases(jit, layout, sync_period, slow_step_size, expected):
    # Users disable Lookahead this way in experiments (alpha 1, or k 1), or freeze it (alpha 0).
    tx = lj.lookahead(_test_optimizer(-1.0), sync_period, slow_step_size, slow_layout=layout)
    params, _ = _loop(tx, 2, INITIAL, jit)
    chex.assert_trees_all_close(params, expected)
