"""Task families built on the data sets that ship inside scikit-learn (the application's)."""

import numpy as np

from lookahead_jax.cli.data import load_arrays
from lookahead_jax.meta import TaskFamily, classification_family


def digits_mlp_family(
    hidden: tuple[int, ...] = (32,), num_train: int = 512, batch_size: int = 128
) -> TaskFamily:
    """A Flax MLP classifying scikit-learn's digits (cross-entropy).

    `lookahead_jax.meta.classification_family` on the 1797 8x8 images, pixels scaled by their
    fixed range (0-16) to [0, 1]: a fixed scale, so no task's subset is normalised with another
    task's statistics.
    """
    x, y = load_arrays("digits")
    return classification_family(
        x / np.float32(16.0), y, 10, hidden=hidden, num_train=num_train, batch_size=batch_size
    )
