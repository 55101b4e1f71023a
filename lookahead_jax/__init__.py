"""lookahead_jax: Lookahead over any optax transformation, PyTorch-faithful optimizers and
learned learning-rate schedules, in pure JAX."""

from lookahead_jax.lookahead import LookaheadState, lookahead, slow_params

__version__ = "0.1.0"

__all__ = [
    "LookaheadState",
    "lookahead",
    "slow_params",
]
