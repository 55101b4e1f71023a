"""The shipped pretrained schedule: it loads, it is trained, it runs in the user's optimizers."""

import json
from pathlib import Path

import chex
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lookahead_jax as lj
from lookahead_jax import meta


def test_the_shipped_params_fit_the_schedule_and_are_trained():
    schedule, params = lj.pretrained_schedule(horizon=300)
    info = lj.pretrained_info()
    assert schedule.base_lr == info["base_lr"] and schedule.horizon == 300
    assert schedule.progress_features
    untrained = schedule.init_params(jax.random.key(0))
    assert jax.tree.structure(params) == jax.tree.structure(untrained)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(untrained), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    # Trained: the output layer (zero at init) is not.
    assert float(jnp.abs(params["params"]["out"]["kernel"]).max()) > 1e-3
    assert info["families"] and info["meta_steps"] > 0


def test_the_default_base_rate_is_the_calibrated_multiple_of_the_meta_training_rate():
    info = lj.pretrained_info()
    assert info["base_lr"] == info["meta_trained_base_lr"] * info["base_lr_multiple"]
    assert lj.pretrained_schedule()[0].base_lr == info["base_lr"] != info["meta_trained_base_lr"]
    # The multiple is the one its calibration chose (where the checkout has the benchmarks).
    path = Path(__file__).parents[1] / info["base_lr_calibration_file"]
    if path.parent.exists():
        assert info["base_lr_multiple"] == json.loads(path.read_text())["best"]


@pytest.mark.parametrize("horizon", [200, None])
def test_it_trains_a_task_it_never_saw_with_a_varying_rate(horizon):
    family = meta.regression_family(noise=0.3)
    task = family(jax.random.key(42))
    tx = lj.learned_schedule(optax.adam(1.0, eps_root=1e-8), *lj.pretrained_schedule(horizon))
    params = task.init_params(jax.random.key(0))
    state = tx.init(params)

    @jax.jit
    def step(params, state, key):
        loss, g = jax.value_and_grad(task.loss)(params, task.sample_batch(key))
        u, state = tx.update(g, state, params, value=loss)
        return optax.apply_updates(params, u), state, lj.current_learning_rate(state)

    lrs = []
    for i in range(200):
        params, state, lr = step(params, state, jax.random.key(i))
        lrs.append(float(lr))
    schedule, _ = lj.pretrained_schedule(horizon)
    lo, hi = schedule.lr_bounds
    assert all(lo <= r <= hi for r in lrs)
    assert np.ptp(lrs) > 0.05 * schedule.base_lr  # a schedule, not a constant
    initial = float(task.test_loss(task.init_params(jax.random.key(0))))
    assert float(task.test_loss(params)) < 0.5 * initial


def test_inside_lookahead_and_with_a_users_base_rate():
    schedule, params = lj.pretrained_schedule(100, base_lr=1e-3)
    assert schedule.base_lr == 1e-3 and schedule.lr_bounds == (1e-5, 1e-2)
    tx = lj.lookahead(lj.learned_schedule(optax.adam(1.0), schedule, params), sync_period=5)
    p = {"w": jnp.ones(4)}
    state = tx.init(p)
    u, state = tx.update({"w": jnp.ones(4)}, state, p, value=jnp.float32(2.0))
    lr = float(lj.current_learning_rate(state))
    assert 1e-5 <= lr <= 1e-2 and lr != 1e-3  # in the user's bounds, and read from the run
    # Adam's first step at unit rate is g / (|g| + eps): the update is the emitted rate itself.
    np.testing.assert_allclose(u["w"], -lr / (1 + 1e-8) * np.ones(4), rtol=2e-5)  # f32 maths
    np.testing.assert_array_equal(lj.slow_params(state)["w"], p["w"])  # no sync yet


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"base_lr": 0.0}, ValueError, "base_lr must be positive and finite, got base_lr=0.0"),
        ({"base_lr": float("nan")}, ValueError, "base_lr must be positive .* got base_lr=nan"),
        ({"horizon": 0}, ValueError, r"horizon must be an int in \[1, .*got horizon=0"),
        ({"horizon": 1.5}, TypeError, r"horizon must be an int in \[1, .*got horizon=1.5"),
        ({"validation": "yes"}, TypeError, "validation must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, match):
    with pytest.raises(error, match=f"^pretrained_schedule: {match}"):
        lj.pretrained_schedule(**kwargs)


def test_the_candidate_reads_a_validation_loss_at_the_default_rate():
    schedule, params = lj.pretrained_schedule(horizon=300, validation=True)
    info = lj.pretrained_info(validation=True)
    assert schedule.validation_features and schedule.progress_features
    assert schedule.base_lr == info["base_lr"] == lj.pretrained_info()["base_lr"]
    assert 0 < info["validation_split"] < 1 and info["meta_steps"] > 0
    untrained = schedule.init_params(jax.random.key(0))
    assert jax.tree.structure(params) == jax.tree.structure(untrained)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(untrained), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert float(jnp.abs(params["params"]["out"]["kernel"]).max()) > 1e-3  # trained
    # Its params are the seed its selection picked (where the checkout has the benchmarks).
    seed = Path(__file__).parents[1] / "benchmarks" / "results" / info["trained_in"]
    if seed.exists():
        stored = (seed / f"seed{info['seed']}.msgpack").read_bytes()
        chex.assert_trees_all_equal(flax.serialization.from_bytes(untrained, stored), params)
    # The rates its first run is tried at (the base rate among them), as the tenth suite ran it.
    multiples = info["base_lr_multiples"]
    assert multiples == sorted(multiples) and 1.0 in multiples and min(multiples) > 0
    tenth = Path(__file__).parents[1] / "benchmarks" / "results" / "tenth_suite.json"
    if tenth.exists():
        row = "the candidate, two runs, base rate picked on validation"
        for cell in json.loads(tenth.read_text())["cells"].values():
            picked = cell["picked_multiple"][row]
            assert all(min(abs(m - x) for m in multiples) < 1e-12 for x in picked)
    tx = lj.learned_schedule(optax.adam(1.0), schedule, params)
    p = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="val_loss"):
        tx.update({"w": jnp.ones(3)}, tx.init(p), p, value=jnp.float32(1.0))
    with pytest.raises(TypeError, match=r"^pretrained_info: validation must be True or False"):
        lj.pretrained_info(validation=1)
