"""The training run that `tests/test_multiprocess.py` does in two processes and in one.

Importing this module imports jax but sets nothing: the two-process worker sets its flags first.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lookahead_jax as lj
from lookahead_jax import optimizers

STEPS = 5  # syncs at t = 2 and t = 4, and one fast step after


def make_tx() -> optax.GradientTransformation:
    return lj.lookahead(optimizers.adamw(1e-2), sync_period=2, slow_step_size=0.5)


def make_problem() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Host (NumPy, float64) params and batch, identical in every process."""
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.normal(size=(16, 32)) / 4,
        "b1": rng.normal(size=(32,)) / 10,
        "w2": rng.normal(size=(32, 8)) / 6,
        "b2": rng.normal(size=(8,)) / 10,
        "odd": rng.normal(size=(3,)),  # no mesh axis divides it: replicated
    }
    return params, rng.normal(size=(64, 16)), rng.normal(size=(64, 8))


def loss_fn(params, x, y, gather=lambda p: p):
    """`gather` all-gathers FSDP-sharded weights before use (the identity on one device)."""
    p = {k: gather(v) for k, v in params.items()}
    h = jnp.tanh(x @ p["w1"] + p["b1"][None, :])
    out = h @ p["w2"] + p["b2"][None, :] + jnp.sum(p["odd"] ** 2)
    return jnp.mean((out - y) ** 2)


def train(params, x, y, tx, gather=lambda p: p, init=None):
    """STEPS jitted steps; returns the params and the slow weights."""
    state = tx.init(params) if init is None else init(params)

    # The batch is an argument, not a closed-over constant: a global array spanning other
    # processes' devices cannot be embedded in the program.
    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(loss_fn)(params, x, y, gather)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(STEPS):
        params, state = step(params, state, x, y)
    return params, lj.slow_params(state)
