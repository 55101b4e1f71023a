"""Small classification data sets that ship inside scikit-learn: no download, ever."""

from typing import NamedTuple

import numpy as np

DATASETS = ("digits", "breast_cancer", "wine", "iris")


class Dataset(NamedTuple):
    """A standardised train/test split."""

    x_train: np.ndarray  # [n_train, features], float32
    y_train: np.ndarray  # [n_train], int32 class labels
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str


def load_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of an embedded scikit-learn data set as they ship: (float32 features, int32 labels).

    Args:
      name: one of `DATASETS`.

    Returns:
      ``(x, y)``, in scikit-learn's order, features unscaled.
    """
    from sklearn import datasets  # imported lazily: it is slow

    loaders = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
    }
    if name not in loaders:
        raise ValueError(
            f"load_arrays: unknown dataset {name!r}; choose from {', '.join(DATASETS)}"
        )
    x, y = loaders[name](return_X_y=True)
    return x.astype(np.float32), y.astype(np.int32)


def load_dataset(name: str, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Loads an embedded scikit-learn data set, shuffled and split, features standardised.

    The rows are shuffled before splitting (digits is ordered by writer). Standardisation uses the
    training split's mean and standard deviation only.

    Args:
      name: one of `DATASETS`.
      test_fraction: share of the rows held out for testing, in (0, 1).
      seed: seed of the shuffle, so that a split is reproducible.

    Returns:
      A `Dataset`.

    Example:
      >>> ds = load_dataset("digits")
      >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes
      ((1438, 64), (359, 64), 10)
    """
    if name not in DATASETS:
        raise ValueError(
            f"load_dataset: unknown dataset {name!r}; choose from {', '.join(DATASETS)}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_dataset: test_fraction must be in (0, 1), got {test_fraction=}")
    x, y = load_arrays(name)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = round(len(x) * test_fraction)
    x_train, x_test = x[n_test:], x[:n_test]
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 0, std, 1.0)  # constant pixels (digits' borders) stay 0
    return Dataset(
        x_train=((x_train - mean) / std).astype(np.float32),
        y_train=y[n_test:],
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=y[:n_test],
        num_classes=int(y.max()) + 1,
        name=name,
    )
