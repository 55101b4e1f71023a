"""Tests of LSTMSchedule, learned_schedule, current_learning_rate and ExtraArgsTrainState."""

import flax.linen as nn
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lookahead_jax import (
    ExtraArgsTrainState,
    LearnedScheduleState,
    LSTMSchedule,
    ScheduleCarry,
    current_learning_rate,
    learned_schedule,
)
from lookahead_jax.lookahead import lookahead, slow_params

BASE_LR = 0.05


def trained_like_params(schedule, seed=0, out_scale=1.0):
    """Params with a random (non-zero) output layer, as after meta-training."""
    params = schedule.init_params(jax.random.key(seed))
    k = jax.random.key(seed + 1)
    out = params["params"]["out"]
    out = {
        "kernel": out_scale * jax.random.normal(k, out["kernel"].shape),
        "bias": jnp.full_like(out["bias"], 0.3 * out_scale),
    }
    return {"params": {**params["params"], "out": out}}


def quadratic(params):
    return 0.5 * jnp.sum(params["w"] ** 2) + jnp.sum(params["b"] ** 2)


# Explicit dtypes: a weakly typed leaf would make the first jitted call compile twice.
PARAMS0 = {"w": jnp.array([1.0, -2.0, 3.0], jnp.float32), "b": jnp.array(0.5, jnp.float32)}


def run(tx, steps=6, params=PARAMS0, jit=True):
    state = tx.init(params)

    def step(params, state):
        loss, grads = jax.value_and_grad(quadratic)(params)
        updates, state = tx.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def run_plain(tx, steps=6, params=PARAMS0):
    state = tx.init(params)
    for _ in range(steps):
        grads = jax.grad(quadratic)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def assert_trees_close(a, b, rtol=1e-6, atol=1e-7):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


# --- LSTMSchedule --------------------------------------------------------------------------------


_JITTED_APPLY = {}


def jitted_apply(schedule):
    if schedule not in _JITTED_APPLY:
        _JITTED_APPLY[schedule] = jax.jit(schedule.apply)
    return _JITTED_APPLY[schedule]


@hypothesis.settings(deadline=None, max_examples=30)
@hypothesis.given(
    losses=st.lists(
        st.floats(1e-6, 1e6) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0]),
        min_size=1,
        max_size=8,
    ),
    base_lr=st.sampled_from([1e-5, 0.05, 0.7, 3.0]),
)
def test_untrained_schedule_is_exactly_base_lr(losses, base_lr):
    schedule = LSTMSchedule(base_lr=base_lr)
    apply = jitted_apply(schedule)
    params = schedule.init_params(jax.random.key(0))
    carry = schedule.initial_carry()
    for loss in losses:
        carry, lr = apply(params, carry, jnp.float32(loss), jnp.float32(1.0))
        assert lr == jnp.float32(base_lr)


def test_trained_schedule_depends_on_the_loss_and_stays_in_bounds():
    schedule = LSTMSchedule(base_lr=BASE_LR, min_lr=1e-4, max_lr=0.1)
    for out_scale in (3.0, 300.0):  # 300 saturates the tanh
        params = trained_like_params(schedule, out_scale=out_scale)
        carry, _ = schedule.apply(params, schedule.initial_carry(), jnp.float32(1.0), 1.0)
        lrs = []
        for loss in (1.0, 10.0, 0.01):
            _, lr = schedule.apply(params, carry, jnp.float32(loss), jnp.float32(1.0))
            lrs.append(float(lr))
            assert 1e-4 * (1 - 1e-6) <= lr <= 0.1 * (1 + 1e-6)  # float32 rounding of exp
        if out_scale == 3.0:
            assert len(set(lrs)) == 3  # the rate reacts to the loss
            assert BASE_LR not in lrs


@pytest.mark.parametrize("z", [-50.0, -3.0, -0.1, 0.0, 0.1, 3.0, 50.0])
def test_output_map_is_bounded_and_monotone(z):
    schedule = LSTMSchedule(base_lr=0.01, min_lr=1e-3, max_lr=1.0)
    lr = schedule.lr_from_output(jnp.float32(z))
    assert 1e-3 * (1 - 1e-6) <= lr <= 1.0 * (1 + 1e-6)
    dz = jax.grad(lambda z: jnp.log(schedule.lr_from_output(z)))(jnp.float32(z))
    assert dz >= 0 and np.isfinite(dz)
    if abs(z) < 5:
        assert dz > 0  # smooth, no hard clamp: gradients flow


def test_output_map_reaches_both_bounds():
    schedule = LSTMSchedule(base_lr=0.01, min_lr=1e-3, max_lr=1.0)
    np.testing.assert_allclose(schedule.lr_from_output(jnp.float32(20.0)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(schedule.lr_from_output(jnp.float32(-20.0)), 1e-3, rtol=1e-5)


def test_nonfinite_loss_does_not_poison_the_carry():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    params = trained_like_params(schedule)
    carry = schedule.initial_carry()
    for loss in (2.0, 1.5):
        carry, _ = schedule.apply(params, carry, jnp.float32(loss), jnp.float32(0.5))
    for bad_loss, bad_gnorm in ((np.nan, 0.5), (np.inf, 0.5), (1.0, np.nan), (-np.inf, np.inf)):
        new_carry, lr = schedule.apply(params, carry, jnp.float32(bad_loss), jnp.float32(bad_gnorm))
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in new_carry)
        assert np.isfinite(lr)
        # Running statistics skip the bad step; only the LSTM state and step count move on.
        for name in ("n_finite", "log_loss_avg", "log_loss_init", "log_gnorm_avg"):
            assert getattr(new_carry, name) == getattr(carry, name)
        assert new_carry.count == carry.count + 1
        # ... and the gradient w.r.t. the params is finite too (no NaN leaking backwards).
        grads = jax.grad(
            lambda p, c=carry, bl=bad_loss, bg=bad_gnorm: schedule.apply(
                p, c, jnp.float32(bl), jnp.float32(bg)
            )[1]
        )(params)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_nonfinite_first_loss_leaves_statistics_unset():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    params = schedule.init_params(jax.random.key(0))
    carry, _ = schedule.apply(params, schedule.initial_carry(), jnp.float32(np.nan), 1.0)
    assert carry.n_finite == 0
    carry, _ = schedule.apply(params, carry, jnp.float32(4.0), jnp.float32(2.0))
    assert carry.n_finite == 1
    np.testing.assert_allclose(carry.log_loss_init, np.log(4.0), rtol=1e-6)
    np.testing.assert_allclose(carry.log_gnorm_init, np.log(2.0), rtol=1e-6)


def test_features_are_clipped_and_scale_free():
    schedule = LSTMSchedule(base_lr=BASE_LR, feature_clip=3.0)
    carry = schedule.initial_carry()
    feats, carry = schedule.features(carry, jnp.float32(1.0), jnp.float32(1.0))
    feats, _ = schedule.features(carry, jnp.float32(1e9), jnp.float32(1e-9))
    assert feats.shape == (schedule.num_features,) == (10,)
    assert bool(jnp.all(jnp.abs(feats) <= 3.0))
    # Scaling loss and gradient norm of a whole trajectory leaves the relative features alone.
    trajectories = []
    for scale in (1.0, 1000.0):
        c = schedule.initial_carry()
        for loss in (4.0, 2.0, 3.0):
            f, c = schedule.features(c, jnp.float32(scale * loss), jnp.float32(scale * loss))
        trajectories.append(f[:4])
    np.testing.assert_allclose(trajectories[0], trajectories[1], atol=1e-5)


def test_carry_order_is_flax_c_then_h():
    schedule = LSTMSchedule(base_lr=BASE_LR, hidden_size=4)
    params = trained_like_params(schedule)
    carry = schedule.initial_carry()
    new_carry, _ = schedule.apply(params, carry, jnp.float32(1.0), jnp.float32(1.0))
    feats, _ = schedule.features(carry, jnp.float32(1.0), jnp.float32(1.0))
    cell = nn.OptimizedLSTMCell(4)
    (c, h), _ = cell.apply({"params": params["params"]["lstm"]}, (carry.c, carry.h), feats)
    np.testing.assert_allclose(new_carry.c, c, rtol=1e-6)
    np.testing.assert_allclose(new_carry.h, h, rtol=1e-6)
    assert ScheduleCarry._fields[:2] == ("c", "h")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_lr": -1.0}, "base_lr"),
        ({"base_lr": 0.0}, "base_lr"),
        ({"base_lr": float("nan")}, "base_lr"),
        ({"base_lr": 0.1, "min_lr": 0.1}, "min_lr < base_lr < max_lr"),
        ({"base_lr": 0.1, "max_lr": 0.05}, "min_lr < base_lr < max_lr"),
        ({"base_lr": 0.1, "min_lr": -1.0}, "positive"),
        ({"base_lr": 0.1, "hidden_size": 0}, "hidden_size"),
        ({"base_lr": 0.1, "avg_decay": 1.0}, "avg_decay"),
        ({"base_lr": 0.1, "feature_clip": 0.0}, "feature_clip"),
    ],
)
def test_invalid_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LSTMSchedule(**kwargs)


def test_non_numeric_hyperparameters_raise_type_error():
    with pytest.raises(TypeError, match="base_lr"):
        LSTMSchedule(base_lr="0.1")
    with pytest.raises(TypeError, match="hidden_size"):
        LSTMSchedule(base_lr=0.1, hidden_size=2.5)


# --- learned_schedule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "reference"),
    [
        (optax.sgd(1.0), optax.sgd(BASE_LR)),
        (optax.sgd(1.0, momentum=0.9), optax.sgd(BASE_LR, momentum=0.9)),
        (optax.adam(1.0), optax.adam(BASE_LR)),
    ],
)
def test_untrained_learned_schedule_matches_constant_rate(inner, reference):
    schedule = LSTMSchedule(base_lr=BASE_LR)
    tx = learned_schedule(inner, schedule, schedule.init_params(jax.random.key(0)))
    params, state = run(tx)
    expected, _ = run_plain(reference)
    assert_trees_close(params, expected, rtol=1e-5)
    assert current_learning_rate(state) == jnp.float32(BASE_LR)


def test_trained_schedule_scales_updates_by_the_emitted_rate():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    sp = trained_like_params(schedule)
    tx = learned_schedule(optax.sgd(1.0), schedule, sp)
    state = tx.init(PARAMS0)
    loss, grads = jax.value_and_grad(quadratic)(PARAMS0)
    updates, state = tx.update(grads, state, PARAMS0, value=loss)
    _, lr = schedule.apply(sp, schedule.initial_carry(), loss, optax.tree.norm(grads))
    assert lr != jnp.float32(BASE_LR)
    assert current_learning_rate(state) == lr
    assert_trees_close(updates, jax.tree.map(lambda g: -lr * g, grads))


def test_missing_value_raises_clear_error():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    tx = learned_schedule(optax.sgd(1.0), schedule, schedule.init_params(jax.random.key(0)))
    state = tx.init(PARAMS0)
    with pytest.raises(ValueError, match="value=loss"):
        tx.update(PARAMS0, state, PARAMS0)


def test_bad_arguments_raise():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    sp = schedule.init_params(jax.random.key(0))
    with pytest.raises(TypeError, match="LSTMSchedule"):
        learned_schedule(optax.sgd(1.0), lambda t: 0.1, sp)
    with pytest.raises(TypeError, match="GradientTransformation"):
        learned_schedule(0.1, schedule, sp)


def test_forwards_and_ignores_extra_args():
    seen = {}

    def update(updates, state, params=None, **extra):
        seen.update(extra)
        return updates, state

    inner = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)
    schedule = LSTMSchedule(base_lr=BASE_LR)
    tx = learned_schedule(inner, schedule, schedule.init_params(jax.random.key(0)))
    tx.update(PARAMS0, tx.init(PARAMS0), PARAMS0, value=jnp.float32(1.0), unknown=3)
    assert seen == {"value": 1.0, "unknown": 3}
    # A plain GradientTransformation as inner simply ignores them.
    tx = learned_schedule(optax.sgd(1.0), schedule, schedule.init_params(jax.random.key(0)))
    tx.update(PARAMS0, tx.init(PARAMS0), PARAMS0, value=jnp.float32(1.0), unknown=3)


def test_dtypes_are_preserved():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    tx = learned_schedule(optax.sgd(1.0), schedule, schedule.init_params(jax.random.key(0)))
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    updates, state = tx.update(params, tx.init(params), params, value=jnp.bfloat16(1.0))
    assert updates["w"].dtype == jnp.bfloat16
    assert state.lr.dtype == jnp.float32


def test_float64_schedule_params_give_float64_carry(x64):
    schedule = LSTMSchedule(base_lr=BASE_LR)
    sp = jax.tree.map(lambda x: x.astype(jnp.float64), schedule.init_params(jax.random.key(0)))
    tx = learned_schedule(optax.sgd(1.0), schedule, sp)
    params = {"w": jnp.ones(3, jnp.float64)}
    _, state = tx.update(params, tx.init(params), params, value=jnp.float64(1.0))
    assert state.carry.h.dtype == jnp.float64 and state.lr.dtype == jnp.float64


def test_jitted_transformation_matches_the_module_applied_by_hand():
    # An independent composition: the module's own rate (from the loss and the gradient's global
    # norm) times the plain gradient, step by step, outside the transformation.
    schedule = LSTMSchedule(base_lr=BASE_LR)
    sp = trained_like_params(schedule)
    jitted, state = run(learned_schedule(optax.sgd(1.0), schedule, sp), steps=4, jit=True)
    params, carry, rates = PARAMS0, schedule.initial_carry(), []
    for _ in range(4):
        loss, grads = jax.value_and_grad(quadratic)(params)
        carry, lr = schedule.apply(sp, carry, loss, optax.tree.norm(grads))
        rates.append(float(lr))
        params = jax.tree.map(lambda p, g, lr=lr: p - lr * g, params, grads)
    assert len(set(rates)) > 1  # the trained schedule's rate moves: the test sees its wiring
    assert_trees_close(jitted, params, rtol=1e-5)
    assert float(state.lr) == pytest.approx(rates[-1], rel=1e-6)


def test_no_recompilation():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    tx = learned_schedule(optax.adam(1.0), schedule, trained_like_params(schedule))
    step = jax.jit(lambda p, s: tx.update(p, s, p, value=quadratic(p)))
    state = tx.init(PARAMS0)
    _, state = step(PARAMS0, state)
    _, state = step(PARAMS0, state)
    assert step._cache_size() == 1


def test_differentiable_wrt_schedule_params():
    schedule = LSTMSchedule(base_lr=BASE_LR)

    def final_loss(sp):
        params, _ = run(learned_schedule(optax.sgd(1.0), schedule, sp), steps=5, jit=False)
        return quadratic(params)

    sp = trained_like_params(schedule, out_scale=0.5)
    grads = jax.grad(final_loss)(sp)
    assert bool(jnp.any(grads["params"]["lstm"]["hi"]["kernel"] != 0))  # reaches the LSTM
    # The output bias's derivative, against a central difference (float32: eps 1e-2).
    eps = 1e-2

    def shifted(d):
        bias = sp["params"]["out"]["bias"].at[0].add(d)
        return {"params": {**sp["params"], "out": {**sp["params"]["out"], "bias": bias}}}

    fd = (final_loss(shifted(eps)) - final_loss(shifted(-eps))) / (2 * eps)
    np.testing.assert_allclose(grads["params"]["out"]["bias"][0], fd, rtol=2e-2)
    # A larger output bias raises the rate, and on this quadratic (lr << 1) that lowers the loss.
    assert fd < 0


def test_current_learning_rate_in_wrappers_and_errors():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    sp = schedule.init_params(jax.random.key(0))
    tx = optax.chain(optax.clip(1.0), learned_schedule(optax.sgd(1.0), schedule, sp))
    _, state = run(tx, steps=2)
    assert current_learning_rate(state) == jnp.float32(BASE_LR)
    with pytest.raises(ValueError, match="current_learning_rate: no LearnedScheduleState"):
        current_learning_rate(optax.sgd(0.1).init(PARAMS0))


def test_inside_lookahead_schedules_the_fast_steps():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    sp = schedule.init_params(jax.random.key(0))
    tx = lookahead(learned_schedule(optax.sgd(1.0), schedule, sp), sync_period=3)
    params, state = run(tx, steps=7)
    expected, expected_state = run_plain(lookahead(optax.sgd(BASE_LR), sync_period=3), steps=7)
    assert_trees_close(params, expected, rtol=1e-5)
    assert_trees_close(slow_params(state), slow_params(expected_state), rtol=1e-5)
    assert current_learning_rate(state) == jnp.float32(BASE_LR)
    # The schedule saw one loss per fast step.
    inner = state.inner_state
    assert isinstance(inner, LearnedScheduleState) and inner.carry.count == 7


def test_around_lookahead_scales_the_whole_update():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    sp = schedule.init_params(jax.random.key(0))
    tx = learned_schedule(lookahead(optax.sgd(1.0), sync_period=3), schedule, sp)
    params, state = run(tx, steps=7)
    reference = optax.chain(lookahead(optax.sgd(1.0), sync_period=3), optax.scale(BASE_LR))
    expected, expected_state = run_plain(reference, steps=7)
    assert_trees_close(params, expected, rtol=1e-5)
    assert_trees_close(slow_params(state), slow_params(expected_state), rtol=1e-5)
    assert current_learning_rate(state) == jnp.float32(BASE_LR)


def test_extra_args_train_state():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    tx = lookahead(learned_schedule(optax.adam(1.0), schedule, trained_like_params(schedule)))
    state = ExtraArgsTrainState.create(apply_fn=quadratic, params=PARAMS0, tx=tx)

    @jax.jit
    def train_step(state):
        loss, grads = jax.value_and_grad(state.apply_fn)(state.params)
        return state.apply_gradients(grads=grads, value=loss), loss

    losses = []
    for _ in range(10):
        state, loss = train_step(state)
        losses.append(float(loss))
    assert state.step == 10 and losses[-1] < losses[0]
    expected, _ = run(tx, steps=10)
    assert_trees_close(state.params, expected, rtol=1e-5)
    lr = current_learning_rate(state.opt_state)
    assert 0 < lr and lr != jnp.float32(BASE_LR)
    # Other keywords are still replaced as in Flax.
    loss, grads = jax.value_and_grad(quadratic)(state.params)
    state = state.apply_gradients(grads=grads, value=loss, apply_fn=None)
    assert state.apply_fn is None


def test_progress_features_read_t_over_the_horizon_and_a_known_flag():
    known = LSTMSchedule(base_lr=BASE_LR, progress_features=True, horizon=50)
    unknown = LSTMSchedule(base_lr=BASE_LR, progress_features=True)
    assert known.num_features == unknown.num_features == 12
    for schedule, expected in (
        (known, [[0.0, 1.0], [0.02, 1.0], [0.04, 1.0]]),
        (unknown, [[0, 0]] * 3),
    ):
        carry = schedule.initial_carry()
        got = []
        for _ in range(3):
            feats, carry = schedule.features(carry, jnp.float32(1.0), jnp.float32(1.0))
            got.append(np.asarray(feats[10:]))
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    dropped = LSTMSchedule(
        base_lr=BASE_LR, progress_features=True, horizon=50, drop_features=("progress",)
    )
    feats, carry = dropped.features(dropped.initial_carry(), jnp.float32(1.0), jnp.float32(1.0))
    feats, _ = dropped.features(carry, jnp.float32(1.0), jnp.float32(1.0))
    np.testing.assert_array_equal(feats[10:], [0.0, 0.0])
    # The LSTM reads all 12: params of a 10-feature schedule do not fit.
    params = known.init_params(jax.random.key(0))
    assert params["params"]["lstm"]["ii"]["kernel"].shape[0] == 12


@pytest.mark.parametrize(
    ("horizon", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError)]
)
def test_bad_horizon_raises(horizon, error):
    with pytest.raises(error, match=rf"^LSTMSchedule: horizon must be an int .* {horizon=}$"):
        LSTMSchedule(base_lr=BASE_LR, progress_features=True, horizon=horizon)


# -- Alignment features: cos(g_t, u_{t-1}), the hypergradient's sign ------------------------------


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)]).astype(np.float64)


def test_alignment_features_are_the_cosine_with_the_previous_inner_update():
    schedule = LSTMSchedule(base_lr=BASE_LR, alignment_features=True, avg_decay=0.5)
    assert schedule.num_features == 12 and schedule.feature_groups()["alignment"] == (10, 11)
    sp = trained_like_params(schedule)
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": jnp.zeros(2)}
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
        for _ in range(4)
    ]
    losses = [3.0, 2.0, 2.5, 1.0]
    inner = optax.adam(1.0)
    # Reference: optax's unit-rate Adam updates, the cosine in NumPy, fed to the module directly.
    inner_state, prev, avg, carry = inner.init(params), None, 0.0, schedule.initial_carry()
    expected_lr, expected_avg = [], []
    for g, loss in zip(grads, losses, strict=True):
        cos = (
            0.0
            if prev is None
            else _flat(g) @ prev / np.linalg.norm(_flat(g)) / np.linalg.norm(prev)
        )
        avg = avg if prev is None else 0.5 * avg + 0.5 * cos
        carry, lr = schedule.apply(
            sp, carry, jnp.float32(loss), jnp.float32(np.linalg.norm(_flat(g))), jnp.float32(cos)
        )
        expected_lr.append(float(lr))
        expected_avg.append(avg)
        u, inner_state = inner.update(g, inner_state, params)
        prev = _flat(u)
    assert abs(cos) > 0.05 and np.ptp(expected_lr) > 0  # values a test can tell apart

    tx = learned_schedule(inner, schedule, sp)
    state, got_lr, got_avg = tx.init(params), [], []
    for g, loss in zip(grads, losses, strict=True):
        _, state = tx.update(g, state, params, value=jnp.float32(loss))
        got_lr.append(float(current_learning_rate(state)))
        got_avg.append(float(state.carry.align_avg))
    np.testing.assert_allclose(got_lr, expected_lr, rtol=1e-5)
    np.testing.assert_allclose(got_avg, expected_avg, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_flat(state.prev_update), prev, rtol=1e-6)  # the last update


def test_without_alignment_features_the_state_keeps_no_update_buffer():
    schedule = LSTMSchedule(base_lr=BASE_LR)
    tx = learned_schedule(optax.adam(1.0), schedule, schedule.init_params(jax.random.key(0)))
    state = tx.init({"w": jnp.ones(3)})
    assert state.prev_update is None
    assert len(jax.tree.leaves(state)) == len(jax.tree.leaves(state._replace(prev_update=None)))


@pytest.mark.parametrize("bad", [0.0, np.inf, np.nan], ids=["zero", "inf", "nan"])
def test_alignment_is_finite_and_differentiable_at_zero_and_non_finite_gradients(bad):
    schedule = LSTMSchedule(base_lr=BASE_LR, alignment_features=True)
    sp = trained_like_params(schedule)
    params = jnp.array([1.0, -2.0])
    grads = [jnp.array([0.5, 0.25]), jnp.full(2, bad), jnp.array([0.3, -0.1])]

    def rates(sp):
        tx = learned_schedule(optax.sgd(1.0), schedule, sp)
        state, out = tx.init(params), []
        for g in grads:
            _, state = tx.update(g, state, params, value=jnp.float32(1.0))
            out.append(current_learning_rate(state))
        return jnp.stack(out), state

    lrs, state = rates(sp)
    assert np.all(np.isfinite(lrs)) and np.isfinite(float(state.carry.align_avg))
    # The bad step reads alignment 0 and leaves the average alone: the same rates as a run fed
    # alignment 0 there by hand.
    carry, expected = schedule.initial_carry(), []
    for g, a in zip(grads, [0.0, 0.0, None], strict=True):
        gnorm = jnp.linalg.norm(g)
        if a is None:  # cos(g_3, u_2) with sgd's u_2 = -g_2 (zero, inf or nan: no direction)
            a = 0.0
        carry, lr = schedule.apply(sp, carry, jnp.float32(1.0), gnorm, jnp.float32(a))
        expected.append(float(lr))
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    grad = jax.grad(lambda sp: jnp.sum(rates(sp)[0]))(sp)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grad))


def test_alignment_features_can_be_dropped_and_unknown_groups_are_named():
    schedule = LSTMSchedule(
        base_lr=BASE_LR,
        alignment_features=True,
        progress_features=True,
        horizon=9,
        drop_features=("alignment",),
    )
    assert schedule.feature_groups()["alignment"] == (12, 13)
    feats, _ = schedule.features(
        schedule.initial_carry()._replace(count=jnp.int32(3)),
        jnp.float32(1.0),
        jnp.float32(1.0),
        jnp.float32(0.7),
    )
    np.testing.assert_array_equal(feats[12:], [0.0, 0.0])
    assert float(feats[10]) == pytest.approx(3 / 9)  # the progress features stay
    with pytest.raises(ValueError, match=r"drop_features must be a tuple of .*alignment"):
        LSTMSchedule(base_lr=BASE_LR, drop_features=("cosine",))
