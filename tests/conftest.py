"""Strict settings for every test, as equinox has: rank promotion raises, warnings are errors."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Runs the test with float64 enabled, then restores float32 defaults."""
    with jax.enable_x64(True):
        yield
