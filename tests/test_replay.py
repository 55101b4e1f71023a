"""`meta.ReplayedFamily`: meta-training a schedule whose rates are replayed on every row."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lookahead_jax as lj
from lookahead_jax import LSTMSchedule, learned_schedule, meta

INNER = optax.adam(1.0, eps_root=1e-8)
STEPS = 12


def carved_and_plain(**kwargs):
    """The same regression problems with 8 of their 32 training rows kept out, and with all."""
    common = dict(num_train=32, batch_size=8, noise=0.3) | kwargs
    return meta.regression_family(num_validation=8, **common), meta.regression_family(**common)


def a_schedule():
    """A schedule whose rate moves with what it reads (a zero output layer would hold it)."""
    schedule = LSTMSchedule(base_lr=0.02, validation_features=True)
    params = schedule.init_params(jax.random.key(0))
    out = params["params"]["out"]["kernel"]
    params["params"]["out"]["kernel"] = 0.3 * jax.random.normal(jax.random.key(1), out.shape)
    return schedule, params


def the_two_runs(first, replay, tx, task_key, num_steps):
    """A transcription of what a user does: the schedule's run on `first`, recording its rate at
    each step, then the unit-rate inner optimizer on `replay` at those rates, from the same
    initial params and minibatch keys. Returns the replay's log test-loss ratio, and both runs'
    final params."""
    task1, task2 = first(task_key), replay(task_key)
    k_init, k_data = jax.random.split(jax.random.fold_in(task_key, 1))
    p1, p2 = task1.init_params(k_init), task2.init_params(k_init)
    test0 = task2.test_loss(p2)
    step_keys = jax.random.split(jax.random.split(k_data)[1], num_steps)

    def first_run(carry, k):
        p, s = carry
        loss, g = jax.value_and_grad(task1.loss)(p, task1.sample_batch(k))
        u, s = tx.update(g, s, p, value=loss, val_loss=task1.validation_loss(p))
        return (optax.apply_updates(p, u), s), s.lr

    def second_run(carry, k_rate):
        (p, s), (k, rate) = carry, k_rate
        u, s = INNER.update(jax.grad(task2.loss)(p, task2.sample_batch(k)), s, p)
        return (optax.apply_updates(p, jax.tree.map(lambda x: rate * x, u)), s), None

    (p1, _), rates = jax.lax.scan(first_run, (p1, tx.init(p1)), step_keys)
    (p2, _), _ = jax.lax.scan(second_run, (p2, INNER.init(p2)), (step_keys, rates))
    return jnp.log(task2.test_loss(p2) / test0), p1, p2


def meta_loss_and_state(family, meta_params, schedule, objective="final_log_test_loss"):
    tx = learned_schedule(INNER, schedule, meta_params["schedule"])
    state = meta.fresh_state(family, tx, jax.random.key(4), None, inner=INNER)
    return meta.truncation_loss(
        meta_params, state, family, schedule, INNER, STEPS, objective=objective
    )


def test_the_replay_is_the_two_runs_a_user_makes():
    first, replay = carved_and_plain()
    schedule, params = a_schedule()
    tx = learned_schedule(INNER, schedule, params)
    runs = jax.jit(lambda k: the_two_runs(first, replay, tx, k, STEPS))
    want, p1, p2 = runs(jax.random.key(4))
    loss, state = jax.jit(meta_loss_and_state, static_argnums=(0, 2))(
        meta.ReplayedFamily(first, replay), {"schedule": params}, schedule
    )
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(state.params, p1, rtol=1e-5, atol=1e-6)  # the schedule's run
    chex.assert_trees_all_close(state.replay[0], p2, rtol=1e-5, atol=1e-6)
    # The replay trains on other rows, so it is another run (else this test could not tell).
    diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), p1, p2)
    assert max(jax.tree.leaves(diff)) > 1e-3


def test_replaying_a_run_on_its_own_rows_changes_nothing_not_even_the_meta_gradient():
    # The replay of a task on the same rows follows the first run exactly, so its meta-loss is
    # the first run's, and so is the meta-gradient, which reaches the replay through the rates.
    first, _ = carved_and_plain()
    schedule, params = a_schedule()
    meta_params = {"schedule": params}

    def loss_and_grad(family):
        f = lambda mp: meta_loss_and_state(family, mp, schedule)[0]
        return jax.jit(jax.value_and_grad(f))(meta_params)

    want, want_grad = loss_and_grad(first)
    got, got_grad = loss_and_grad(meta.ReplayedFamily(first, first))
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(want_grad)) > 1e-4
    chex.assert_trees_all_close(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    # The objective that reads every step's minibatch loss reads the replay's too.
    mean_log = jax.jit(
        lambda family: meta_loss_and_state(family, meta_params, schedule, "mean_log_loss")[0],
        static_argnums=0,
    )
    np.testing.assert_allclose(
        float(mean_log(meta.ReplayedFamily(first, first))), float(mean_log(first)), rtol=1e-6
    )


def test_meta_train_on_replayed_families_validates_on_the_replay():
    first, replay = carved_and_plain()
    twice = meta.ReplayedFamily(first, replay)
    schedule, _ = a_schedule()
    keys = jax.random.split(jax.random.key(9), 3)
    result = meta.meta_train(
        twice,
        schedule,
        INNER,
        key=jax.random.key(0),
        num_meta_steps=2,
        horizon=STEPS,
        num_tasks=2,
        objective="final_log_test_loss",
        validation_keys=keys,
        validate_every=2,
        validation_families=[twice],
    )
    assert np.all(np.isfinite(result.history)) and result.validation.shape == (2, 2)
    # The first validation is of the starting params: the two runs of each validation task.
    k_sched = jax.random.split(jax.random.key(0), 5)[0]  # meta_train's own start
    tx = learned_schedule(INNER, schedule, schedule.init_params(k_sched))
    runs = jax.jit(jax.vmap(lambda k: the_two_runs(first, replay, tx, k, STEPS)[0]))
    np.testing.assert_allclose(result.validation[0, 1], np.mean(runs(keys)), rtol=1e-4)
    assert result.validation[1, 1] != result.validation[0, 1]  # the schedule has moved


def test_a_replayed_family_is_not_a_task_family():
    first, replay = carved_and_plain()
    with pytest.raises(TypeError, match="two runs, not a TaskFamily"):
        meta.ReplayedFamily(first, replay)(jax.random.key(0))
    with pytest.raises(TypeError, match="replay must be a TaskFamily, got 3"):
        meta.ReplayedFamily(first, 3)
    with pytest.raises(TypeError, match="first must be a TaskFamily"):
        meta.ReplayedFamily(meta.ReplayedFamily(first, replay), replay)


def test_a_replay_of_another_architecture_is_refused():
    first, _ = carved_and_plain()
    _, wider = carved_and_plain(hidden=(64,))
    schedule, params = a_schedule()
    with pytest.raises(ValueError, match="same initial params"):
        meta_loss_and_state(meta.ReplayedFamily(first, wider), {"schedule": params}, schedule)


def test_a_replay_needs_its_optimizer_and_cannot_learn_the_init():
    first, replay = carved_and_plain()
    twice = meta.ReplayedFamily(first, replay)
    schedule, params = a_schedule()
    tx = learned_schedule(INNER, schedule, params)
    with pytest.raises(ValueError, match="needs inner="):
        meta.fresh_state(twice, tx, jax.random.key(0), None)
    with pytest.raises(ValueError, match="learn_init cannot be used with a ReplayedFamily"):
        meta.meta_train(
            twice,
            schedule,
            INNER,
            key=jax.random.key(0),
            num_meta_steps=1,
            horizon=4,
            learn_init=True,
        )


@functools.cache
def two_runs_of_a_schedule():
    """(first, replay, tx, keys, the two runs' `final_metrics`): shared by the tests below, one
    compilation."""
    first, replay = carved_and_plain()
    schedule, params = a_schedule()
    tx = learned_schedule(INNER, schedule, params)
    keys = jax.random.split(jax.random.key(5), 3)
    twice = meta.protocol.final_metrics(
        meta.ReplayedFamily(first, replay), tx, keys, STEPS, inner=INNER
    )
    return first, replay, tx, keys, twice


def test_final_metrics_of_a_run_replayed_on_its_own_rows_is_that_run():
    first, _, tx, keys, twice = two_runs_of_a_schedule()
    one = meta.protocol.final_metrics(first, tx, keys, STEPS)
    again = meta.protocol.final_metrics(
        meta.ReplayedFamily(first, first), tx, keys, STEPS, inner=INNER
    )
    for got, want in zip(again, one, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # On all the rows it is another result (else these tests could not tell).
    assert np.max(np.abs(one.test_loss - twice.test_loss)) > 1e-4


def test_replay_schedule_of_the_recorded_rates_is_that_second_run():
    # A user's way: record the first run's rates (here with `meta.evaluate`), then replay them
    # with `lj.replay_schedule` on all the rows.
    first, replay = carved_and_plain()
    schedule, params = a_schedule()
    tx = learned_schedule(INNER, schedule, params)
    keys = jax.random.split(jax.random.key(6), 2)
    twice = meta.protocol.final_metrics(
        meta.ReplayedFamily(first, replay), tx, keys, STEPS, inner=INNER
    )
    rates = meta.evaluate(first, tx, keys, STEPS).lrs
    assert np.ptp(rates) > 1e-4  # the schedule moved the rate
    for i in range(len(keys)):
        again = meta.protocol.final_metrics(
            replay, lj.replay_schedule(INNER, rates[i]), keys[i : i + 1], STEPS
        )
        np.testing.assert_allclose(again.test_loss[0], twice.test_loss[i], rtol=1e-5)


def test_final_metrics_needs_inner_exactly_with_a_replayed_family():
    first, replay = carved_and_plain()
    schedule, params = a_schedule()
    tx = learned_schedule(INNER, schedule, params)
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"^final_metrics: a ReplayedFamily is two runs"):
        meta.protocol.final_metrics(meta.ReplayedFamily(first, replay), tx, keys, STEPS)
    with pytest.raises(ValueError, match=r"^final_metrics: inner= is the replay's optimizer"):
        meta.protocol.final_metrics(first, tx, keys, STEPS, inner=INNER)


def test_the_two_runs_are_scored_on_the_tasks_and_batches_of_a_plain_run():
    # An untrained schedule's rate is its base rate at every step, so its replay is Adam at that
    # rate: the same score as `final_metrics` gives that Adam on the family without the split
    # (same initial params, minibatch keys and test rows), so paired ratios compare like with like.
    first, replay = carved_and_plain()
    schedule = LSTMSchedule(base_lr=0.02, validation_features=True)
    tx = learned_schedule(INNER, schedule, schedule.init_params(jax.random.key(0)))
    keys = jax.random.split(jax.random.key(7), 3)
    twice = meta.protocol.final_metrics(
        meta.ReplayedFamily(first, replay), tx, keys, STEPS, inner=INNER
    )
    plain = meta.protocol.final_metrics(replay, optax.chain(INNER, optax.scale(0.02)), keys, STEPS)
    for field in ("train_loss", "test_loss", "test_accuracy", "initial_loss"):
        np.testing.assert_allclose(getattr(twice, field), getattr(plain, field), rtol=1e-5)
    # The plain family has no validation rows; the two runs report their first run's.
    assert np.all(np.isnan(plain.validation_loss)) and np.all(twice.validation_loss > 0)


def test_the_two_runs_report_the_first_runs_final_validation_loss():
    # What a user sees at the end of the first run (the rows that chose the rates), checked
    # against an eager transcription of that run (`fresh_state`'s params and minibatch keys, as
    # `final_metrics` documents): what `pick_by_validation` chooses on.
    first, _, tx, keys, twice = two_runs_of_a_schedule()

    @jax.jit
    def step(p, s, task_key, k):
        task = first(task_key)
        loss, g = jax.value_and_grad(task.loss)(p, task.sample_batch(k))
        u, s = tx.update(g, s, p, value=loss, val_loss=task.validation_loss(p))
        return optax.apply_updates(p, u), s

    for i, key in enumerate(keys):
        task, state = first(key), meta.fresh_state(first, tx, key, None)
        p, s = state.params, state.opt_state
        for k in jax.random.split(state.key, STEPS):
            p, s = step(p, s, key, k)
        np.testing.assert_allclose(twice.validation_loss[i], task.validation_loss(p), rtol=1e-5)
        assert abs(float(task.validation_loss(p) - task.validation_loss(state.params))) > 1e-3
