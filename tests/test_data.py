"""Tests of the embedded data sets."""

import re

import numpy as np
import pytest

from lookahead_jax.cli.data import DATASETS, load_dataset


@pytest.mark.parametrize("name", DATASETS)
def test_split_is_standardised_shuffled_and_reproducible(name):
    ds = load_dataset(name, seed=3)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert len(ds.x_train) + len(ds.x_test) == len(ds.y_train) + len(ds.y_test)
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-5)
    assert set(np.unique(ds.y_test)) <= set(range(ds.num_classes))
    again = load_dataset(name, seed=3)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    other = load_dataset(name, seed=4)
    assert not np.array_equal(ds.y_test, other.y_test)


def test_digits_test_split_holds_every_class():
    # digits is ordered by writer: an unshuffled tail would be a biased test set.
    ds = load_dataset("digits")
    assert len(np.unique(ds.y_test)) == 10


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose from digits"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=re.escape("test_fraction=1.0")):
        load_dataset("iris", test_fraction=1.0)
