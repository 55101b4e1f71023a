"""Tests of meta-training: gradients, truncations, vmap over tasks, NaN-safety, MAML, evaluation."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest

from lookahead_jax import LSTMSchedule, current_learning_rate, learned_schedule, meta
from lookahead_jax.cli.families import digits_mlp_family

QUAD = meta.quadratic_family(dim=4, max_condition=10.0)
SGD = optax.sgd(1.0)


def schedule_params(schedule, seed=0, out_scale=0.3, dtype=jnp.float32):
    """Params with a small random output layer, so the rate really depends on the features."""
    params = schedule.init_params(jax.random.key(seed))
    out = params["params"]["out"]
    k1, k2 = jax.random.split(jax.random.key(seed + 1))
    params["params"]["out"] = {
        "kernel": out_scale * jax.random.normal(k1, out["kernel"].shape),
        "bias": out_scale * jax.random.normal(k2, out["bias"].shape),
    }
    return jax.tree.map(lambda x: x.astype(dtype), params)


def fresh_state(family, schedule, meta_params, seed=0):
    tx = learned_schedule(SGD, schedule, meta_params["schedule"])
    return meta.fresh_state(family, tx, jax.random.key(seed), meta_params.get("init"))


def tree_vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize(
    ("family", "inner", "objective"),
    [
        (QUAD, SGD, "mean_log_loss"),
        (
            meta.regression_family(hidden=(4,), num_train=16, batch_size=8),
            optax.adam(1.0, eps_root=1e-8),
            "final_log_loss",
        ),
    ],
    ids=["quadratic-sgd", "mlp-adam"],
)
def test_meta_gradient_matches_central_differences_float64(x64, family, inner, objective):
    schedule = LSTMSchedule(base_lr=0.1 if inner is SGD else 0.01)
    mp = {"schedule": schedule_params(schedule, dtype=jnp.float64)}
    tx = learned_schedule(inner, schedule, mp["schedule"])
    state = meta.fresh_state(family, tx, jax.random.key(3), None)
    assert state.params is not None and jax.tree.leaves(state.params)[0].dtype == jnp.float64

    @jax.jit
    def f(mp):
        return meta.truncation_loss(mp, state, family, schedule, inner, 20, objective=objective)[0]

    grad = jax.jit(jax.grad(f))(mp)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))
    eps = 1e-6
    for seed in range(3):
        leaves, treedef = jax.tree.flatten(mp)
        keys = jax.random.split(jax.random.key(seed), len(leaves))
        v = treedef.unflatten(
            [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
        )
        plus = jax.tree.map(lambda p, d: p + eps * d, mp, v)
        minus = jax.tree.map(lambda p, d: p - eps * d, mp, v)
        fd = (f(plus) - f(minus)) / (2 * eps)
        ad = tree_vdot(grad, v)
        assert abs(fd) > 1e-6  # a non-trivial direction
        np.testing.assert_allclose(ad, fd, rtol=1e-4)


def test_check_grads_through_unroll(x64):
    """The same property through jax.test_util.check_grads (reverse mode, 10-step unroll)."""
    schedule = LSTMSchedule(base_lr=0.1)
    mp = {"schedule": schedule_params(schedule, dtype=jnp.float64)}
    state = fresh_state(QUAD, schedule, mp)

    def f(mp):
        return meta.truncation_loss(mp, state, QUAD, schedule, SGD, 10, remat=False)[0]

    jax.test_util.check_grads(jax.jit(f), (mp,), order=1, modes=["rev"], atol=1e-6, rtol=1e-4)


def test_remat_changes_nothing_but_memory():
    schedule = LSTMSchedule(base_lr=0.1)
    mp = {"schedule": schedule_params(schedule)}
    state = fresh_state(QUAD, schedule, mp)
    results = [
        jax.jit(
            jax.value_and_grad(
                lambda mp, r=remat: meta.truncation_loss(
                    mp, state, QUAD, schedule, SGD, 10, remat=r
                )[0]
            )
        )(mp)
        for remat in (True, False)
    ]
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8),
        *[r[1] for r in results],
    )


def test_truncations_carry_the_inner_state():
    schedule = LSTMSchedule(base_lr=0.05)
    inner = optax.adam(1.0, eps_root=1e-8)
    mp = {"schedule": schedule_params(schedule)}
    tx = learned_schedule(inner, schedule, mp["schedule"])
    state = meta.fresh_state(QUAD, tx, jax.random.key(0), None)
    s1 = meta.truncation_loss(mp, state, QUAD, schedule, inner, 5)[1]
    s2 = meta.truncation_loss(mp, s1, QUAD, schedule, inner, 5)[1]
    assert int(s2.step) == 10
    assert int(s2.opt_state.carry.count) == 10  # the schedule's carry went on, not restarted
    assert int(s2.opt_state.inner_state[0].count) == 10  # and so did Adam's moments
    # The same ten steps by hand, one scan of 5 then another from the carried state.
    task = QUAD(state.task_key)
    k1, sub1 = jax.random.split(state.key)
    (p, o), _ = meta.unroll(task, tx, state.params, state.opt_state, sub1, 5)
    _, sub2 = jax.random.split(k1)
    (p, o), _ = meta.unroll(task, tx, p, o, sub2, 5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p, s2.params)
    np.testing.assert_allclose(current_learning_rate(o), current_learning_rate(s2.opt_state))


def test_random_offsets_desynchronise_the_slots():
    schedule = LSTMSchedule(base_lr=0.05)
    mp = {"schedule": schedule.init_params(jax.random.key(0))}
    kwargs = dict(num_tasks=16, horizon=40, unroll_length=5)
    states = meta.init_slots(QUAD, schedule, SGD, mp, jax.random.key(0), **kwargs)
    steps = np.asarray(states.step)
    assert set(steps % 5) == {0} and steps.min() >= 0 and steps.max() < 40
    assert len(set(steps)) >= 4
    lockstep = meta.init_slots(
        QUAD, schedule, SGD, mp, jax.random.key(0), random_offsets=False, **kwargs
    )
    assert set(np.asarray(lockstep.step)) == {0}
    # Every slot is its own task.
    assert len({float(x) for x in np.asarray(states.log_loss0)}) == 16


def test_vmapped_meta_gradient_is_the_mean_of_per_task_gradients():
    schedule = LSTMSchedule(base_lr=0.1)
    mp = {"schedule": schedule_params(schedule)}
    singles = [fresh_state(QUAD, schedule, mp, seed) for seed in range(3)]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *singles)
    loss, grad, new = meta.meta_gradient(mp, batch, QUAD, schedule, SGD, 8)
    one = jax.jit(
        jax.value_and_grad(lambda mp, s: meta.truncation_loss(mp, s, QUAD, schedule, SGD, 8)[0])
    )
    per_task = [one(mp, s) for s in singles]
    np.testing.assert_allclose(loss, np.mean([lv for lv, _ in per_task]), rtol=1e-5)
    mean_grad = jax.tree.map(lambda *gs: sum(gs) / 3, *[g for _, g in per_task])
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), grad, mean_grad
    )
    assert new.step.shape == (3,) and bool(jnp.all(new.step == 8))


def test_diverged_tasks_give_finite_loss_and_no_nan_gradient():
    absurd = LSTMSchedule(base_lr=1e6, min_lr=1e3, max_lr=1e9)
    mp = {"schedule": schedule_params(absurd)}
    state = fresh_state(QUAD, absurd, mp)
    loss, grad = jax.value_and_grad(
        lambda mp: meta.truncation_loss(mp, state, QUAD, absurd, SGD, 20)[0]
    )(mp)
    # Step 1 is at the initial loss (log-ratio 0); the 19 after it diverge, each at the cap.
    assert float(loss) == pytest.approx(19 * meta.LOG_LOSS_CAP / 20, abs=1e-5)
    # The raw gradient of the diverged task is not finite (0 * inf in the backward pass) ...
    assert not all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))
    batch = jax.tree.map(lambda x: x[None], state)
    mean_loss, safe_grad, _ = meta.meta_gradient(mp, batch, QUAD, absurd, SGD, 20)
    # ... and meta_gradient keeps the meta-loss but contributes zero (no step) for the task.
    np.testing.assert_allclose(mean_loss, loss, rtol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, safe_grad, jax.tree.map(jnp.zeros_like, grad))


def test_one_diverged_task_does_not_spoil_the_batch():
    schedule = LSTMSchedule(base_lr=0.1)
    mp = {"schedule": schedule_params(schedule)}
    good = fresh_state(QUAD, schedule, mp, seed=1)
    bad = good._replace(params=jax.tree.map(lambda p: p * jnp.nan, good.params))
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), good, bad)
    loss, grad, _ = meta.meta_gradient(mp, batch, QUAD, schedule, SGD, 6)
    good_loss, good_grad = jax.value_and_grad(
        lambda mp: meta.truncation_loss(mp, good, QUAD, schedule, SGD, 6)[0]
    )(mp)
    np.testing.assert_allclose(loss, (good_loss + meta.LOG_LOSS_CAP) / 2, rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b / 2, rtol=1e-5, atol=1e-8), grad, good_grad
    )


def test_meta_gradient_clipping_bounds_the_step():
    schedule = LSTMSchedule(base_lr=0.1)
    mp = {"schedule": schedule_params(schedule)}
    result = meta.meta_train(
        QUAD,
        schedule,
        SGD,
        key=jax.random.key(0),
        num_meta_steps=1,
        horizon=10,
        num_tasks=2,
        meta_optimizer=optax.sgd(1.0),
        meta_clip=1e-3,
        meta_params=mp,
    )
    assert result.grad_norms[0] > 1e-3  # clipping was active
    delta = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), result.meta_params, mp)
    assert max(float(d) for d in jax.tree.leaves(delta)) <= 1e-3 * (1 + 1e-5)
    assert max(float(d) for d in jax.tree.leaves(delta)) > 0


def test_meta_train_improves_the_schedule_and_returns_history():
    schedule = LSTMSchedule(base_lr=0.3)
    family = meta.quadratic_family(dim=4, max_condition=10.0, scale_range=(1.0, 1.0))
    result = meta.meta_train(
        family,
        schedule,
        SGD,
        key=jax.random.key(0),
        num_meta_steps=40,
        horizon=10,
        num_tasks=4,
        meta_optimizer=optax.adam(3e-2),
        validation_keys=jax.random.split(jax.random.key(50), 4),
        validate_every=10,
    )
    assert result.history.shape == (40,) and result.grad_norms.shape == (40,)
    assert np.all(np.isfinite(result.history))
    assert np.mean(result.history[-10:]) < np.mean(result.history[:10]) - 0.1
    # Validated at steps 0, 10, ..., 40; the params returned are the best validated ones.
    np.testing.assert_array_equal(result.validation[:, 0], [0, 10, 20, 30, 40])
    assert result.validation[-1, 1] < result.validation[0, 1]
    states = meta.fresh_states(
        family, schedule, SGD, result.meta_params, jax.random.split(jax.random.key(50), 4)
    )
    again = jax.vmap(
        lambda s: meta.truncation_loss(result.meta_params, s, family, schedule, SGD, 10)[0]
    )(states)
    np.testing.assert_allclose(np.mean(again), result.validation[:, 1].min(), rtol=1e-4)
    # Held-out tasks: the trained schedule beats its untrained start (the constant base_lr).
    keys = jax.random.split(jax.random.key(99), 8)
    trained = meta.evaluate(
        family, learned_schedule(SGD, schedule, result.meta_params["schedule"]), keys, 10
    )
    untrained = meta.evaluate(family, optax.chain(SGD, optax.scale(0.3)), keys, 10)
    assert np.mean(np.log(trained.full_losses[:, -1])) < np.mean(
        np.log(untrained.full_losses[:, -1])
    )


def _mean_truncation_loss(family, schedule, mp, keys, steps, objective="mean_log_loss"):
    """The mean meta-loss of fresh tasks (`keys`) of `family` over one `steps`-step truncation."""
    states = meta.fresh_states(family, schedule, SGD, mp, keys)
    losses = jax.vmap(
        lambda s: meta.truncation_loss(mp, s, family, schedule, SGD, steps, objective=objective)[0]
    )
    return float(np.mean(losses(states)))


def test_validation_families_select_on_families_left_out_of_meta_training():
    schedule = LSTMSchedule(base_lr=0.3)
    train = meta.quadratic_family(dim=4, max_condition=10.0, scale_range=(1.0, 1.0))
    held_out = meta.quadratic_family(dim=6, max_condition=50.0, scale_range=(0.3, 3.0))
    keys = jax.random.split(jax.random.key(50), 4)
    common = dict(key=jax.random.key(0), horizon=10, num_tasks=4, validation_keys=keys)
    result = meta.meta_train(
        train,
        schedule,
        SGD,
        num_meta_steps=20,
        meta_optimizer=optax.adam(3e-2),
        validate_every=5,
        validation_families=[held_out],
        **common,
    )

    def validation_loss(family, mp):
        return _mean_truncation_loss(family, schedule, mp, keys, 10)

    # Every validation is on the held-out family: the returned (best) meta-params score there
    # exactly the lowest validation value, and the start scores what it scores on that family,
    # not on the training one.
    np.testing.assert_allclose(
        validation_loss(held_out, result.meta_params), result.validation[:, 1].min(), rtol=1e-4
    )
    start = {"schedule": schedule.init_params(jax.random.split(jax.random.key(0), 5)[0])}
    np.testing.assert_allclose(validation_loss(held_out, start), result.validation[0, 1], rtol=1e-5)
    assert abs(validation_loss(train, start) - result.validation[0, 1]) > 1e-2


def test_validation_with_truncated_unrolls_scores_the_whole_horizon():
    # The shipped schedules (v4, v5) meta-train 1000-step tasks in 200-step truncations and select
    # on whole 1000-step runs: the validation meta-loss must be the untruncated one.
    schedule = LSTMSchedule(base_lr=0.3)
    held_out = meta.quadratic_family(dim=6, max_condition=50.0, scale_range=(0.3, 3.0))
    keys = jax.random.split(jax.random.key(51), 4)
    result = meta.meta_train(
        QUAD,
        schedule,
        SGD,
        key=jax.random.key(1),
        num_meta_steps=12,
        horizon=12,
        unroll_length=3,
        num_tasks=4,
        meta_optimizer=optax.adam(3e-2),
        objective="final_log_loss",
        validation_keys=keys,
        validate_every=4,
        validation_families=[held_out],
    )

    def validation_loss(mp, steps):
        return _mean_truncation_loss(held_out, schedule, mp, keys, steps, "final_log_loss")

    best = result.validation[:, 1].min()
    np.testing.assert_allclose(validation_loss(result.meta_params, 12), best, rtol=1e-4)
    assert abs(validation_loss(result.meta_params, 3) - best) > 1e-2  # not one truncation


def test_validation_families_need_validation_keys_and_no_learned_init():
    common = dict(key=jax.random.key(0), num_meta_steps=1, horizon=4, num_tasks=2)
    with pytest.raises(ValueError, match=r"validation_families needs validation_keys"):
        meta.meta_train(QUAD, LSTMSchedule(base_lr=0.1), SGD, validation_families=QUAD, **common)
    with pytest.raises(ValueError, match=r"validation_families cannot be used with learn_init"):
        meta.meta_train(
            QUAD,
            LSTMSchedule(base_lr=0.1),
            SGD,
            learn_init=True,
            validation_keys=jax.random.split(jax.random.key(1), 2),
            validation_families=QUAD,
            **common,
        )


def _hessian_and_final(family, schedule, mp, horizon):
    state = fresh_state(family, schedule, mp)
    task = family(state.task_key)
    params = mp["init"]
    hess = jax.hessian(lambda t: task.full_loss({"theta": t}))(params["theta"])
    for _ in range(horizon):
        params = jax.tree.map(
            lambda p, g: p - schedule.base_lr * g, params, jax.grad(task.full_loss)(params)
        )
    return state, hess, params, task


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_gradient_wrt_initial_params(x64, first_order):
    """Against closed forms on a quadratic with the untrained (constant-rate) schedule.

    theta_T = theta* + (I - lr H)^T (theta_0 - theta*), objective log L(theta_T), so the exact
    gradient is (I - lr H)^T grad L(theta_T) / L(theta_T); first-order MAML drops the Jacobian:
    grad L(theta_T) / L(theta_T).
    """
    schedule = LSTMSchedule(base_lr=0.1)
    horizon = 6
    mp = {
        "schedule": jax.tree.map(
            lambda x: x.astype(jnp.float64), schedule.init_params(jax.random.key(0))
        ),
        "init": {"theta": jnp.linspace(-1.0, 1.0, 4)},
    }
    state, hess, final, task = _hessian_and_final(QUAD, schedule, mp, horizon)
    grad = jax.grad(
        lambda mp: meta.truncation_loss(
            mp,
            state,
            QUAD,
            schedule,
            SGD,
            horizon,
            objective="final_log_loss",
            first_order=first_order,
        )[0]
    )(mp)
    g_final = jax.grad(task.full_loss)(final)["theta"] / task.full_loss(final)
    jac = jnp.linalg.matrix_power(jnp.eye(4) - schedule.base_lr * hess, horizon)
    expected = g_final if first_order else jac @ g_final
    np.testing.assert_allclose(grad["init"]["theta"], expected, rtol=1e-8)
    assert not np.allclose(jac @ g_final, g_final, rtol=1e-3)  # the two really differ


def test_meta_train_with_learned_init():
    schedule = LSTMSchedule(base_lr=0.3)
    family = meta.quadratic_family(dim=4, max_condition=10.0, scale_range=(1.0, 1.0))
    # Full second-order meta-gradients here; both variants are checked in closed form above.
    result = meta.meta_train(
        family,
        schedule,
        SGD,
        key=jax.random.key(1),
        num_meta_steps=20,
        horizon=10,
        num_tasks=4,
        learn_init=True,
        first_order=False,
        meta_optimizer=optax.adam(3e-2),
    )
    assert set(result.meta_params) == {"schedule", "init"}
    assert np.all(np.isfinite(result.history))
    assert np.mean(result.history[-5:]) < np.mean(result.history[:5])
    keys = jax.random.split(jax.random.key(5), 3)
    tx = learned_schedule(SGD, schedule, result.meta_params["schedule"])
    ev = meta.evaluate(family, tx, keys, 10, init=result.meta_params["init"])
    init_loss = [family(k).full_loss(result.meta_params["init"]) for k in keys]
    np.testing.assert_allclose(ev.full_losses[:, 0], init_loss, rtol=1e-5)


def test_evaluate_curves():
    schedule = LSTMSchedule(base_lr=0.2)
    keys = jax.random.split(jax.random.key(7), 5)
    ev = meta.evaluate(
        QUAD, learned_schedule(SGD, schedule, schedule.init_params(jax.random.key(0))), keys, 12
    )
    assert ev.full_losses.shape == (5, 13) and ev.batch_losses.shape == (5, 12)
    assert ev.lrs.shape == (5, 12) and np.all(ev.lrs == np.float32(0.2))
    # Identical to the same constant rate without a schedule, whose rate is unknown (NaN).
    base = meta.evaluate(QUAD, optax.chain(SGD, optax.scale(0.2)), keys, 12)
    np.testing.assert_allclose(ev.full_losses, base.full_losses, rtol=1e-5)
    assert np.all(np.isnan(base.lrs))
    # Each curve starts at its task's own initial loss (different tasks, different inits).
    assert len(set(np.round(ev.full_losses[:, 0], 6))) == 5
    assert np.all(ev.full_losses[:, -1] < ev.full_losses[:, 0])


def test_task_families_are_vmappable_and_distinct():
    for family in (
        meta.quadratic_family(dim=3),
        digits_mlp_family(hidden=(8,), num_train=64, batch_size=16),
        meta.regression_family(hidden=(8,), num_train=32, batch_size=8),
        meta.mlp_family(4, (8,), 2, batch_size=8),
    ):

        def losses(task_key, family=family):
            task = family(task_key)
            params = task.init_params(jax.random.fold_in(task_key, 1))
            batch = task.sample_batch(jax.random.fold_in(task_key, 2))
            return task.loss(params, batch), task.full_loss(params)

        batch_loss, full = jax.jit(jax.vmap(losses))(jax.random.split(jax.random.key(0), 4))
        assert batch_loss.shape == full.shape == (4,)
        assert np.all(np.isfinite(full)) and len(set(np.asarray(full).round(6))) == 4


def test_invalid_arguments_raise():
    schedule = LSTMSchedule(base_lr=0.1)
    with pytest.raises(ValueError, match="unroll_length"):
        meta.meta_train(
            QUAD,
            schedule,
            SGD,
            key=jax.random.key(0),
            num_meta_steps=1,
            horizon=10,
            unroll_length=3,
        )
    with pytest.raises(ValueError, match="objective"):
        meta.meta_train(
            QUAD, schedule, SGD, key=jax.random.key(0), num_meta_steps=1, horizon=10, objective="x"
        )
    with pytest.raises(ValueError, match="meta_clip"):
        meta.meta_train(
            QUAD, schedule, SGD, key=jax.random.key(0), num_meta_steps=1, horizon=10, meta_clip=0.0
        )
    with pytest.raises(ValueError, match="max_condition"):
        meta.quadratic_family(max_condition=0.5)
    with pytest.raises(ValueError, match="num_train"):
        digits_mlp_family(num_train=0)


SMALL_REG = meta.regression_family(hidden=(4,), num_train=16, batch_size=8, num_test=16)


def test_hide_horizon_hides_it_from_that_fraction_of_tasks():
    schedule = LSTMSchedule(base_lr=0.1, progress_features=True, horizon=40)
    mp = {"schedule": schedule.init_params(jax.random.key(0))}
    keys = meta.task_keys(0, 64)
    inv = lambda hide: np.asarray(
        meta.fresh_states(QUAD, schedule, SGD, mp, keys, hide).opt_state.carry.inv_horizon
    )
    np.testing.assert_array_equal(inv(0.0), np.full(64, 1 / 40, np.float32))
    assert np.all(inv(1.0) == 0.0)
    half = inv(0.5)
    assert set(np.unique(half)) == {0.0, np.float32(1 / 40)}
    assert 16 <= np.sum(half == 0) <= 48


def _train(task, params, tx, num_steps=5):
    """`num_steps` steps of `tx` on `task`'s minibatches (keys 0, 1, ...)."""
    state = tx.init(params)
    for i in range(num_steps):
        g = jax.grad(task.loss)(params, task.sample_batch(jax.random.key(i)))
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
    return params


def test_rate_scaled_family_rescales_adams_rate_not_the_loss():
    scaled = meta.rate_scaled_family(SMALL_REG, (2.5, 2.5))
    key, k_init = jax.random.key(3), jax.random.key(4)
    task, task_s = SMALL_REG(key), scaled(key)
    theta0, q0 = task.init_params(k_init), task_s.init_params(k_init)
    chex_close = lambda a, b: jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=1e-6), a, b
    )
    chex_close(jax.tree.map(lambda q: 2.5 * q, q0), theta0)
    np.testing.assert_allclose(task_s.test_loss(q0), task.test_loss(theta0), rtol=1e-6)

    # Adam with rate 0.01 on q = theta / 2.5 is Adam with rate 0.025 on theta.
    q = _train(task_s, q0, optax.adam(0.01, eps=1e-12))
    theta = _train(task, theta0, optax.adam(0.025, eps=1e-12))
    chex_close(jax.tree.map(lambda x: 2.5 * x, q), theta)
    # ...and not the same rate on theta (the test can tell the two apart).
    theta_same = _train(task, theta0, optax.adam(0.01, eps=1e-12))
    assert not np.allclose(
        theta_same["params"]["Dense_0"]["kernel"], theta["params"]["Dense_0"]["kernel"], rtol=1e-3
    )
    with pytest.raises(ValueError, match="scale_range"):
        meta.rate_scaled_family(SMALL_REG, (3.0, 1.0))
    with pytest.raises(ValueError, match=r"scale_range\[0\]"):
        meta.rate_scaled_family(SMALL_REG, (0.0, 1.0))


def test_rate_scaled_family_keep_gradients_changes_only_the_rate():
    # keep_gradients=True: the gradients are the original problem's (a schedule reading their
    # norm cannot see s), losses are divided by s, and any gradient-only optimizer's step of
    # rate eta on q is one of rate s * eta on theta: SGD's too (s, not s^2).
    s = 2.5
    family = meta.classification_family(
        *_blobs_arrays(), 3, hidden=(4,), num_train=24, batch_size=8
    )
    kept = meta.rate_scaled_family(family, (s, s), keep_gradients=True)
    plain = meta.rate_scaled_family(family, (s, s))
    key, k_init = jax.random.key(3), jax.random.key(4)
    task, task_k, task_p = family(key), kept(key), plain(key)
    theta0, q0 = task.init_params(k_init), task_k.init_params(k_init)
    close = lambda a, b, rtol=2e-4: jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6), a, b
    )
    batch = task.sample_batch(jax.random.key(0))
    close(jax.grad(task_k.loss)(q0, batch), jax.grad(task.loss)(theta0, batch))
    # The default mode scales them by s (the cue keep_gradients removes).
    close(
        jax.grad(task_p.loss)(q0, batch),
        jax.tree.map(lambda g: s * g, jax.grad(task.loss)(theta0, batch)),
    )
    for name in ("full_loss", "test_loss"):
        np.testing.assert_allclose(
            getattr(task_k, name)(q0), getattr(task, name)(theta0) / s, rtol=1e-6
        )
    np.testing.assert_allclose(task_k.loss(q0, batch), task.loss(theta0, batch) / s, rtol=1e-6)
    np.testing.assert_allclose(task_k.test_accuracy(q0), task.test_accuracy(theta0))

    for make in (optax.sgd, lambda lr: optax.adam(lr, eps=1e-8)):
        q = _train(task_k, q0, make(0.1))
        close(jax.tree.map(lambda x: s * x, q), _train(task, theta0, make(0.1 * s)))
    with pytest.raises(TypeError, match="keep_gradients"):
        meta.rate_scaled_family(family, (s, s), keep_gradients=1)


def _blobs_arrays():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    x = rng.normal(size=(60, 5)) + y[:, None]
    return x.astype(np.float32), y.astype(np.int32)


def test_final_log_test_loss_objective_scores_the_held_out_split():
    schedule = LSTMSchedule(base_lr=0.05)
    mp = {"schedule": schedule_params(schedule)}
    inner = optax.adam(1.0, eps_root=1e-8)
    tx = learned_schedule(inner, schedule, mp["schedule"])
    state = meta.fresh_state(SMALL_REG, tx, jax.random.key(5), None)
    loss, new = meta.truncation_loss(
        mp, state, SMALL_REG, schedule, inner, 6, objective="final_log_test_loss"
    )
    task = SMALL_REG(state.task_key)
    expected = np.log(task.test_loss(new.params)) - np.log(task.test_loss(state.params))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Not the training-loss objective: the two differ on this task.
    train_obj, _ = meta.truncation_loss(
        mp, state, SMALL_REG, schedule, inner, 6, objective="final_log_loss"
    )
    assert abs(float(train_obj) - float(loss)) > 1e-3
    with pytest.raises(ValueError, match="test_loss"):
        meta.truncation_loss(
            mp,
            fresh_state(QUAD, schedule, mp),
            QUAD,
            schedule,
            SGD,
            2,
            objective="final_log_test_loss",
        )


def _first_meta_loss(family, schedule, inner, mp, key, j, horizon, unroll_length):
    """The meta-loss of meta_train's first meta step on family `j` of a mixture (its slots drawn
    as meta_train draws them from `key`), recomputed."""
    k_tasks = jax.random.split(key, 5)[3]
    slots = meta.init_slots(
        family,
        schedule,
        inner,
        mp,
        k_tasks if j == 0 else jax.random.fold_in(k_tasks, j),
        num_tasks=2,
        horizon=horizon,
        unroll_length=unroll_length,
    )
    return meta.meta_gradient(mp, slots, family, schedule, inner, unroll_length)[0]


def test_meta_train_on_a_mixture_takes_its_steps_round_robin():
    """Step 0 trains on the first family, step 1 on the second (checked by recomputing both)."""
    schedule = LSTMSchedule(base_lr=0.05)
    inner = optax.adam(1.0, eps_root=1e-8)
    families = [QUAD, SMALL_REG]
    key = jax.random.key(11)
    kw = dict(key=key, num_meta_steps=2, horizon=4, num_tasks=2, meta_optimizer=optax.sgd(0.0))
    result = meta.meta_train(families, schedule, inner, **kw)
    mp = {"schedule": schedule.init_params(jax.random.split(key, 5)[0])}
    for j, family in enumerate(families):
        loss = _first_meta_loss(family, schedule, inner, mp, key, j, 4, 4)
        np.testing.assert_allclose(result.history[j], loss, rtol=1e-5)
    single = meta.meta_train(QUAD, schedule, inner, **kw)
    assert abs(single.history[1] - result.history[1]) > 1e-3
    with pytest.raises(ValueError, match="learn_init"):
        meta.meta_train(families, schedule, inner, **kw, learn_init=True)
    with pytest.raises(ValueError, match="hide_horizon"):
        meta.meta_train(QUAD, schedule, inner, **kw, hide_horizon=1.5)
    with pytest.raises(TypeError, match="family"):
        meta.meta_train([], schedule, inner, **kw)


def test_tune_on_several_families_averages_their_scores():
    tunable = meta.protocol.schedule_baseline(
        optax.adam(1.0), 5, "constant", [0.01, 0.1], warmups=[0.0]
    )
    keys = meta.task_keys(1, 3)
    a = meta.protocol.tune(QUAD, tunable, keys, 5, max_extensions=0)
    b = meta.protocol.tune(SMALL_REG, tunable, keys, 5, max_extensions=0)
    both = meta.protocol.tune([QUAD, SMALL_REG], tunable, keys, 5, max_extensions=0)
    for point, score in both.scores.items():
        np.testing.assert_allclose(score, (a.scores[point] + b.scores[point]) / 2, rtol=1e-9)
    assert both.inner_steps == a.inner_steps + b.inner_steps


def test_meta_train_on_a_mixture_of_horizons_tells_each_family_its_own():
    """One family at horizons 4 and 8: each slot group runs (and its schedule reads) its own
    horizon, in truncations of their gcd, and validation scores each horizon."""
    schedule = LSTMSchedule(base_lr=0.05, progress_features=True, horizon=4)
    mp = {"schedule": schedule_params(schedule, seed=3)}  # the rate depends on the progress
    held_out = meta.quadratic_family(dim=6, max_condition=50.0, scale_range=(0.3, 3.0))
    keys = jax.random.split(jax.random.key(52), 3)
    key = jax.random.key(12)
    result = meta.meta_train(
        [QUAD, QUAD],
        schedule,
        SGD,
        key=key,
        num_meta_steps=2,
        horizon=[4, 8],
        num_tasks=2,
        meta_optimizer=optax.sgd(0.0),
        meta_params=mp,
        validation_keys=keys,
        validation_families=[held_out],
        validate_every=10,
    )
    for j, h in enumerate((4, 8)):
        loss = _first_meta_loss(QUAD, schedule.clone(horizon=h), SGD, mp, key, j, h, 4)
        np.testing.assert_allclose(result.history[j], loss, rtol=1e-5)
    # Told 8, not the schedule's 4: the second family's loss differs from the untold one.
    untold = _first_meta_loss(QUAD, schedule, SGD, mp, key, 1, 8, 4)
    assert abs(untold - result.history[1]) > 1e-4
    want = np.mean(
        [_mean_truncation_loss(held_out, schedule.clone(horizon=h), mp, keys, h) for h in (4, 8)]
    )
    np.testing.assert_allclose(result.validation[0, 1], want, rtol=1e-5)


@pytest.mark.parametrize(
    ("horizon", "unroll_length", "error", "match"),
    [
        (
            [4],
            None,
            ValueError,
            r"horizon must be an int or one per family \(2\), got horizon=\[4\]",
        ),
        ([4, 0], None, ValueError, r"every horizon must be >= 1, got horizon=\[4, 0\]"),
        ([4, 2.5], None, TypeError, r"horizon must be an int or ints, got horizon=\[4, 2.5\]"),
        (
            [4, 6],
            4,
            ValueError,
            r"unroll_length must be >= 1 and divide every horizon, got unroll_length=4, "
            r"horizon=\[4, 6\]",
        ),
        (4, 1.5, TypeError, "unroll_length must be an int, got unroll_length=1.5"),
    ],
)
def test_meta_train_rejects_bad_horizons(horizon, unroll_length, error, match):
    with pytest.raises(error, match=f"^meta_train: {match}"):
        meta.meta_train(
            [QUAD, QUAD],
            LSTMSchedule(base_lr=0.1),
            SGD,
            key=jax.random.key(0),
            num_meta_steps=1,
            horizon=horizon,
            unroll_length=unroll_length,
        )
