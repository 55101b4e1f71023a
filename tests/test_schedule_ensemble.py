"""Tests of `LSTMSchedule(ensemble_size=E)` and `stack_schedule_params`: E schedules, one rate."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lookahead_jax import (
    LSTMSchedule,
    current_learning_rate,
    learned_schedule,
    meta,
    stack_schedule_params,
)

SINGLE = LSTMSchedule(base_lr=0.05, hidden_size=8, progress_features=True, horizon=12)


def member_params(seed):
    """A single schedule's params with a random, non-zero output layer (as after training), so
    that the members' rates differ from base_lr and from each other."""
    params = SINGLE.init_params(jax.random.key(seed))
    out = params["params"]["out"]
    k1, k2 = jax.random.split(jax.random.key(100 + seed))
    out = {
        "kernel": 2.0 * jax.random.normal(k1, out["kernel"].shape),
        "bias": 0.5 * jax.random.normal(k2, out["bias"].shape),
    }
    return {"params": {**params["params"], "out": out}}


def quadratic(p):
    return 0.5 * jnp.sum(jnp.array([1.0, 4.0, 0.25]) * p**2)


def trajectory(schedule, params, steps=12):
    """(losses, gradient norms, rates) of Adam(1) scaled by the schedule on a quadratic."""
    tx = learned_schedule(optax.adam(1.0), schedule, params)
    p = jnp.array([1.0, -2.0, 3.0])
    state = tx.init(p)
    losses, norms, rates = [], [], []
    for _ in range(steps):
        loss, g = jax.value_and_grad(quadratic)(p)
        updates, state = tx.update(g, state, p, value=loss)
        p = optax.apply_updates(p, updates)
        losses.append(loss)
        norms.append(jnp.linalg.norm(g))
        rates.append(current_learning_rate(state))
    return np.asarray(losses), np.asarray(norms), np.asarray(rates, np.float64)


def test_ensemble_rate_is_the_geometric_mean_of_its_members_rates():
    members = [member_params(s) for s in range(3)]
    ensemble = SINGLE.clone(ensemble_size=3)
    losses, norms, rates = trajectory(ensemble, stack_schedule_params(members))
    # Reference: each member alone, fed the ensemble's own losses and gradient norms.
    member_rates = []
    for params in members:
        carry, lrs = SINGLE.initial_carry(), []
        for loss, norm in zip(losses, norms, strict=True):
            carry, lr = SINGLE.apply(params, carry, loss, norm)
            lrs.append(float(lr))
        member_rates.append(lrs)
    member_rates = np.asarray(member_rates)
    assert np.ptp(np.log(member_rates), axis=0).min() > 0.1  # the members disagree
    np.testing.assert_allclose(rates, np.exp(np.log(member_rates).mean(0)), rtol=2e-6)


def test_an_ensemble_of_copies_is_the_single_schedule():
    params = member_params(0)
    single = trajectory(SINGLE, params)
    copies = trajectory(SINGLE.clone(ensemble_size=4), stack_schedule_params([params] * 4))
    np.testing.assert_allclose(copies[2], single[2], rtol=2e-6)
    assert not np.allclose(single[2], SINGLE.base_lr)  # the trained output layer is read


def test_an_untrained_ensemble_returns_base_lr():
    ensemble = SINGLE.clone(ensemble_size=3)
    params = ensemble.init_params(jax.random.key(0))
    assert jax.tree.leaves(params)[0].shape[0] == 3
    _, _, rates = trajectory(ensemble, params, steps=3)
    np.testing.assert_array_equal(rates, np.float32(SINGLE.base_lr))


def test_ensemble_meta_gradient_of_copies_is_the_singles_shared_out():
    """d/d(member) of an ensemble of E copies is the single schedule's meta-gradient over E: each
    member moves the log-rate by 1/E of its own offset."""
    family, inner, steps = meta.quadratic_family(dim=4, max_condition=10.0), optax.adam(1.0), 6
    keys = meta.task_keys(0, 3)
    params = member_params(1)

    def grad(schedule, schedule_params):
        mp = {"schedule": schedule_params}
        states = meta.fresh_states(family, schedule, inner, mp, keys)
        grads = meta.meta_gradient(mp, states, family, schedule, inner, steps, remat=False)
        return grads[1]["schedule"]

    single = grad(SINGLE, params)
    stacked = grad(SINGLE.clone(ensemble_size=2), stack_schedule_params([params, params]))
    for g1, g2 in zip(
        jax.tree.leaves(single["params"]),
        jax.tree.leaves(stacked["params"]["members"]),
        strict=True,
    ):
        np.testing.assert_allclose(g2, jnp.stack([g1, g1]) / 2, rtol=1e-4, atol=1e-7)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(single)) > 1e-4


def test_stack_schedule_params_refuses_what_is_not_e_single_schedules():
    params = member_params(0)
    with pytest.raises(ValueError, match=r"at least 2.*got 1"):
        stack_schedule_params([params])
    other = LSTMSchedule(base_lr=0.05, hidden_size=4).init_params(jax.random.key(0))
    with pytest.raises(ValueError, match=r"member_params\[1\] differs"):
        stack_schedule_params([params, other])
    stacked = stack_schedule_params([params, params])
    with pytest.raises(
        ValueError, match=r"member_params\[0\] is not a single schedule.s params.*members"
    ):
        stack_schedule_params([stacked, stacked])


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_ensemble_size_must_be_a_positive_int(size):
    with pytest.raises((ValueError, TypeError), match="ensemble_size"):
        LSTMSchedule(base_lr=0.1, ensemble_size=size)


@pytest.mark.parametrize(
    "schedule, params",
    [
        (SINGLE.clone(ensemble_size=2), member_params(0)),  # single params, ensemble schedule
        (SINGLE, stack_schedule_params([member_params(0)] * 2)),  # and the other way round
        (SINGLE.clone(hidden_size=4), member_params(0)),
        (SINGLE.clone(progress_features=False), member_params(0)),
    ],
)
def test_learned_schedule_refuses_params_that_do_not_fit(schedule, params):
    with pytest.raises(ValueError, match="learned_schedule: schedule_params do not fit"):
        learned_schedule(optax.adam(1.0), schedule, params)
