"""Correctness at the edges (issue 10): mixed precision, zero gradients, zero losses, hostile
hyperparameters, and the optax/Flax contracts a drop-in transformation must keep.

Each defect's test failed on the code before its fix; a parametrised row that pins a case which
already held (the comment says which) sits beside it so the fix cannot break that case.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import FrozenDict
from flax.linen.fp8_ops import OVERWRITE_WITH_GRADIENT

import lookahead_jax as lj
from lookahead_jax import meta

# -- 1. Lookahead keeps its slow weights at their own precision, whatever the update dtype --------


@pytest.mark.parametrize("slow_layout", ["tree", "flat"])
def test_slow_weights_are_exact_to_their_dtype_under_bfloat16_updates(slow_layout):
    # f32 params, bf16 gradients: optax.sgd returns bf16 updates.
    k, alpha, lr = 2, 0.3, 0.1
    p0 = np.linspace(-1.3, 2.1, 7).astype(np.float32)
    grads = [jnp.asarray(np.sin(np.arange(7) + i) * 1.37, jnp.bfloat16) for i in range(k)]
    tx = lj.lookahead(optax.sgd(lr), k, alpha, slow_layout=slow_layout)
    params, state = jnp.asarray(p0), tx.init(jnp.asarray(p0))
    fast = p0.astype(np.float64)
    for g in grads:
        inner_u = np.asarray(optax.sgd(lr).update(g, optax.sgd(lr).init(params))[0], np.float64)
        updates, state = tx.update(g, state, params)
        assert updates.dtype == jnp.bfloat16  # updates in the gradient's dtype, as optax's
        params = optax.apply_updates(params, updates)
        fast_before_sync = np.asarray(fast, np.float32).astype(np.float64) + inner_u
        fast = np.asarray(params, np.float64)
    # Algorithm 1 in float64 from the updates the transformation received.
    expected = p0.astype(np.float64) + alpha * (fast_before_sync - p0.astype(np.float64))
    slow = np.asarray(lj.slow_params(state), np.float64)
    np.testing.assert_allclose(slow, expected, rtol=3e-7, atol=1e-7)
    assert lj.slow_params(state).dtype == jnp.float32


# -- 2. Optimizer state keeps its dtype when params are omitted ------------------------------------

OPTIMIZERS_WITHOUT_PARAMS = {
    "sgd": lambda: lj.sgd(0.1, momentum=0.9),
    "adam": lambda: lj.adam(1e-3),
    "adam_amsgrad": lambda: lj.adam(1e-3, amsgrad=True),
    "adamw_no_decay": lambda: lj.adamw(1e-3, weight_decay=0.0),
    "bert_adamw_no_decay": lambda: lj.bert_adamw(1e-3, weight_decay=0.0),
    "rmsprop": lambda: lj.rmsprop(1e-3, momentum=0.9, centered=True),
    "adagrad": lambda: lj.adagrad(1e-2),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS_WITHOUT_PARAMS))
def test_state_dtypes_survive_an_update_without_params(name):
    tx = OPTIMIZERS_WITHOUT_PARAMS[name]()
    params = {"w": jnp.ones(3, jnp.float32)}
    state = tx.init(params)
    grads = {"w": jnp.full(3, 0.5, jnp.bfloat16)}
    updates, new_state = tx.update(grads, state)
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)
    assert updates["w"].dtype == jnp.bfloat16
    # ... so the step is a valid lax.scan carry.
    jax.lax.scan(lambda s, _: (tx.update(grads, s)[1], None), state, length=2)


# -- 3. The meta-gradient is finite through an exactly zero inner gradient ------------------------


def _at_optimum_family(task_key):
    del task_key

    def loss(p, batch=None):
        return 0.5 * jnp.sum(p["w"] ** 2) + 1.0

    return meta.Task(
        init_params=lambda key: {"w": jnp.zeros(3)},  # the optimum: the gradient is exactly 0
        loss=loss,
        sample_batch=lambda key: jnp.zeros([]),
        full_loss=loss,
    )


def _drift_from(step: int, drift: float) -> optax.GradientTransformation:
    """Adds `drift` to every update from `step` on: it walks a run off its optimum."""

    def update(updates, count, params=None):
        del params
        on = jnp.where(count >= step, drift, 0.0)
        return jax.tree.map(lambda u: u + on.astype(u.dtype), updates), count + 1

    return optax.GradientTransformation(lambda params: jnp.zeros([], jnp.int32), update)


@pytest.mark.parametrize("alignment", [False, True], ids=["plain", "alignment"])
def test_meta_gradient_is_exact_through_exactly_zero_inner_gradients(x64, alignment):
    # The run sits at its optimum for 4 steps (gradients exactly 0) while its params already
    # depend on the schedule (w = 0 - lr * 0): the path on which sqrt's infinite derivative at 0
    # made the meta-gradient NaN. Then a drift walks it off, by steps the rate sets, so the true
    # meta-gradient is not zero and a wrong one shows against central differences. With the
    # alignment features the cosine's norms are 0 there too (gradient and previous update).
    inner = optax.chain(_drift_from(3, 1.0), optax.sgd(1.0))
    schedule = lj.LSTMSchedule(base_lr=0.1, hidden_size=4, alignment_features=alignment)
    mp = {
        "schedule": jax.tree.map(
            lambda x: x.astype(jnp.float64), schedule.init_params(jax.random.key(0))
        )
    }
    tx = lj.learned_schedule(inner, schedule, mp["schedule"])
    state = meta.fresh_state(_at_optimum_family, tx, jax.random.key(1), None)
    steps = 8

    params, opt_state, zero_steps = state.params, state.opt_state, 0
    loss_fn = _at_optimum_family(None).loss
    for _ in range(steps):
        loss, g = jax.value_and_grad(loss_fn)(params)
        zero_steps += int(float(jnp.sum(g["w"] ** 2)) == 0.0)
        updates, opt_state = tx.update(g, opt_state, params, value=loss)
        params = optax.apply_updates(params, updates)
    assert zero_steps == 4  # steps 0-3: the drift first moves w in the update of step 3

    @jax.jit
    def f(mp):
        return meta.truncation_loss(
            mp, state, _at_optimum_family, schedule, inner, steps, objective="mean_log_loss"
        )[0]

    grads = jax.jit(jax.grad(f))(mp)
    leaves, treedef = jax.tree.flatten(mp)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    v = treedef.unflatten(
        [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
    )
    eps = 1e-6
    plus = f(jax.tree.map(lambda p, d: p + eps * d, mp, v))
    minus = f(jax.tree.map(lambda p, d: p - eps * d, mp, v))
    fd = (plus - minus) / (2 * eps)
    pairs = zip(jax.tree.leaves(grads), jax.tree.leaves(v), strict=True)
    ad = sum(jnp.vdot(a, b) for a, b in pairs)
    assert abs(fd) > 1e-6  # the direction moves the objective
    np.testing.assert_allclose(ad, fd, rtol=1e-5)


@pytest.mark.parametrize("grad_norm", [0.0, np.inf, np.nan])
def test_schedule_features_and_their_gradient_stay_finite(grad_norm):
    schedule = lj.LSTMSchedule(base_lr=0.1, hidden_size=4)
    params = schedule.init_params(jax.random.key(0))
    clip = schedule.feature_clip

    def lr_of(params, grad_norm):
        carry = schedule.initial_carry()
        for loss in (2.0, 1.0):
            carry, lr = schedule.apply(params, carry, loss, grad_norm)
        return lr

    def features(grad_norm):
        return schedule.apply(
            params, schedule.initial_carry(), 1.0, grad_norm, method=lj.LSTMSchedule.features
        )[0]

    feats = features(jnp.float32(grad_norm))
    grads = jax.grad(lr_of)(params, jnp.float32(grad_norm))
    if grad_norm == 0.0:
        # Zero reads as the smallest normal norm (log space is floored there), value and
        # derivative alike: no -inf feature, no 0 * inf in the backward pass.
        tiny = jnp.finfo(jnp.float32).tiny
        np.testing.assert_array_equal(feats, features(tiny))
        expected = jax.grad(lr_of)(params, tiny)
    else:
        # A non-finite norm is flagged and its three features sit at the clip.
        np.testing.assert_array_equal(feats[2:6], [clip, clip, clip, 1.0])
        expected = jax.grad(lr_of)(params, jnp.float32(np.inf))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    jax.tree.map(np.testing.assert_array_equal, grads, expected)


# -- 4. A loss of exactly 0 is the floor of the meta-objective, not a divergence -----------------


def _reaches_zero_family(task_key):
    del task_key
    # sgd at rate 0.5 on sum(w^2) lands exactly on w = 0 in one step: the loss is exactly 0.
    return meta.Task(
        init_params=lambda key: {"w": jnp.ones(3)},
        loss=lambda p, batch: jnp.sum(p["w"] ** 2),
        sample_batch=lambda key: jnp.zeros([]),
        full_loss=lambda p: jnp.sum(p["w"] ** 2),
    )


@pytest.mark.parametrize("objective", ["final_log_loss", "mean_log_loss"])
def test_zero_loss_scores_as_the_floor(objective):
    schedule = lj.LSTMSchedule(base_lr=0.5, hidden_size=4)
    mp = {"schedule": schedule.init_params(jax.random.key(0))}
    tx = lj.learned_schedule(optax.sgd(1.0), schedule, mp["schedule"])
    state = meta.fresh_state(_reaches_zero_family, tx, jax.random.key(1), None)
    value, _ = meta.truncation_loss(
        mp, state, _reaches_zero_family, schedule, optax.sgd(1.0), 2, objective=objective
    )
    floor = float(np.log(np.finfo(np.float32).tiny)) - float(np.log(3.0))
    if objective == "final_log_loss":
        assert float(value) == pytest.approx(floor, rel=1e-6)
    else:  # step 1's loss is 3 (log ratio 0), step 2's is 0 (the floor)
        assert float(value) == pytest.approx(floor / 2, rel=1e-6)


def test_meta_train_refuses_a_negative_loss_with_a_clear_error():
    def negative(task_key):
        del task_key
        return meta.Task(
            init_params=lambda key: {"w": jnp.ones(2)},
            loss=lambda p, batch: jnp.sum(p["w"] ** 2) - 5.0,
            sample_batch=lambda key: jnp.zeros([]),
            full_loss=lambda p: jnp.sum(p["w"] ** 2) - 5.0,
        )

    # horizon / unroll_length = 8 truncations: the slots start at random offsets, so the params
    # have moved by the time of the check; the message names the loss at the initial params.
    with pytest.raises(ValueError, match=r"full_loss must be >= 0.*got -3;"):
        meta.meta_train(
            negative,
            lj.LSTMSchedule(base_lr=0.1, hidden_size=4),
            optax.sgd(1.0),
            key=jax.random.key(0),
            num_meta_steps=1,
            horizon=16,
            unroll_length=2,
            num_tasks=4,
        )


def _goes_negative_family(task_key):
    del task_key
    # >= 0 at the initial params (w = 1: loss 1), negative from w^2 < 0.5 on: sgd gets there.
    return meta.Task(
        init_params=lambda key: {"w": jnp.ones(2)},
        loss=lambda p, batch: jnp.sum(p["w"] ** 2) - 1.0,
        sample_batch=lambda key: jnp.zeros([]),
        full_loss=lambda p: jnp.sum(p["w"] ** 2) - 1.0,
    )


def test_a_loss_going_negative_in_the_unroll_is_an_error_not_a_divergence():
    # Before: the negative loss was capped as a divergence and meta-training went on, silently.
    schedule = lj.LSTMSchedule(base_lr=0.3, hidden_size=4)
    mp = {"schedule": schedule.init_params(jax.random.key(0))}
    tx = lj.learned_schedule(optax.sgd(1.0), schedule, mp["schedule"])
    state = meta.fresh_state(_goes_negative_family, tx, jax.random.key(1), None)
    value, _ = meta.truncation_loss(
        mp, state, _goes_negative_family, schedule, optax.sgd(1.0), 4, objective="final_log_loss"
    )
    assert np.isnan(value)  # no score, rather than the divergence cap
    with pytest.raises(ValueError, match=r"loss went negative during meta-step 0"):
        meta.meta_train(
            _goes_negative_family,
            schedule,
            optax.sgd(1.0),
            key=jax.random.key(0),
            num_meta_steps=2,
            horizon=4,
            num_tasks=2,
        )


def test_a_non_finite_initial_loss_is_named_as_such():
    def nan_at_init(task_key):
        del task_key
        return meta.Task(
            init_params=lambda key: {"w": jnp.full(2, jnp.nan)},
            loss=lambda p, batch: jnp.sum(p["w"] ** 2),
            sample_batch=lambda key: jnp.zeros([]),
            full_loss=lambda p: jnp.sum(p["w"] ** 2),
        )

    with pytest.raises(ValueError, match=r"full_loss at its initial params is nan"):
        meta.meta_train(
            nan_at_init,
            lj.LSTMSchedule(base_lr=0.1, hidden_size=4),
            optax.sgd(1.0),
            key=jax.random.key(0),
            num_meta_steps=1,
            horizon=4,
            num_tasks=2,
        )


# -- 5. slow_layout="flat" and optax.tree_map_params ----------------------------------------


@pytest.mark.parametrize("layout", ["flat", "auto"])  # "auto" is flat on one device
def test_flat_layout_refuses_tree_map_params_with_a_clear_error(layout):
    # The flat buffer is not shaped like the params: the documented exception, said clearly
    # (before: a pytree structure error about `inner_state[0].count`).
    assert jax.device_count() == 1
    params = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
    tx = lj.lookahead(optax.adam(1e-3), slow_layout=layout)
    with pytest.raises(
        TypeError, match=r"tree_map_params cannot map this state.*slow_layout='tree'"
    ):
        optax.tree_map_params(
            tx, lambda p, s: "param", tx.init(params), params, transform_non_params=lambda x: 0
        )


def test_tree_layout_works_with_the_readme_sharding_recipe():
    params = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
    tx = lj.lookahead(optax.adam(1e-3), slow_layout="tree")  # the default on several devices
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shardings = optax.tree_map_params(
        tx,
        lambda _, s: s,
        jax.eval_shape(tx.init, params),
        jax.tree.map(lambda _: one, params),
        transform_non_params=lambda _: one,
    )
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    assert lj.slow_params(state)["w"].sharding == one


# -- 6. Hyperparameters are scalars ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: lj.sgd(jnp.array([0.1])),
        lambda: lj.adam(np.array([1e-3])),
        lambda: lj.sgd(0.1, momentum=jnp.array([0.9])),
        lambda: lj.rmsprop(1e-3, alpha=np.array([0.9])),
        lambda: lj.lookahead(optax.sgd(0.1), sync_period=np.array([5])),
        lambda: lj.average(optax.sgd(0.1), decay=np.array([0.9])),
        lambda: lj.swa_schedule(0.1, swa_lr=jnp.array([0.01])),
    ],
)
def test_array_hyperparameters_must_have_shape_empty(make):
    with pytest.raises(ValueError, match=r"must be a scalar \(shape \(\)\), got shape \(1,\)"):
        make()


def test_static_hyperparameters_take_shape_empty_arrays_as_their_numbers():
    # A shape-() NumPy or JAX array is a scalar (before: a TypeError for average's decay and
    # every int argument): it gives exactly what the Python number gives.
    params = jnp.array([1.0, -2.0])
    grads = [jnp.array([0.5, 0.25]), jnp.array([-1.0, 2.0]), jnp.array([0.3, 0.1])]

    def run(tx):
        state = tx.init(params)
        for g in grads:
            _, state = tx.update(g, state, params)
        return state

    as_numbers = run(lj.average(lj.lookahead(optax.sgd(0.1), 2, 0.5), decay=0.75, start_step=1))
    as_arrays = run(
        lj.average(
            lj.lookahead(optax.sgd(0.1), np.array(2), jnp.array(0.5)),
            decay=np.array(0.75),
            start_step=np.int64(1),
        )
    )
    chex.assert_trees_all_equal(as_arrays, as_numbers)
    assert float(lj.averaged_params(as_numbers)[0]) != 1.0  # the average did move


def _initial_loss(task):
    return task.full_loss(task.init_params(jax.random.key(1)))


_INT_ARGUMENTS = {
    "LSTMSchedule.hidden_size": lambda n: lj.LSTMSchedule(base_lr=0.1, hidden_size=n).hidden_size,
    "LSTMSchedule.horizon": lambda n: lj.LSTMSchedule(base_lr=0.1, horizon=n).horizon,
    "pretrained_schedule.horizon": lambda n: lj.pretrained_schedule(horizon=n)[0].horizon,
    "quadratic_family.dim": lambda n: _initial_loss(meta.quadratic_family(dim=n)(KEY)),
    "regression_family.num_train": lambda n: _initial_loss(
        meta.regression_family(num_train=n)(KEY)
    ),
    "regression_family.num_test": lambda n: meta.regression_family(num_test=n)(KEY).test_loss(
        meta.regression_family()(KEY).init_params(KEY)
    ),
    "warmup_decay_schedule.horizon": lambda n: meta.protocol.warmup_decay_schedule(
        1.0, 0.1, 0.0, n, "linear"
    )(5),
}
KEY = jax.random.key(0)


@pytest.mark.parametrize("name", list(_INT_ARGUMENTS))
def test_int_arguments_take_a_shape_empty_array_as_the_python_int(name):
    # checks.integer accepts shape-() arrays; each caller must then use the int it returns, not
    # the array (before: an array hidden_size or num_train reached Flax or a shape and failed
    # there, or was kept as an array).
    make = _INT_ARGUMENTS[name]
    as_int, as_array = make(8), make(jnp.array(8))
    assert type(as_array) is type(as_int)
    np.testing.assert_array_equal(np.asarray(as_array), np.asarray(as_int))


def test_a_traced_static_hyperparameter_says_it_must_be_concrete():
    with pytest.raises(TypeError, match=r"lookahead: sync_period must be a concrete number"):
        jax.jit(lambda k: lj.lookahead(optax.sgd(0.1), sync_period=k).init(jnp.ones(2)))(5)


# -- 7. average checks gradients against params ---------------------------------------------------


def test_average_names_a_mismatched_gradient_leaf():
    tx = lj.average(optax.sgd(0.1))
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"average: the gradient at \['b'\] has shape \(3,\)"):
        tx.update({"a": jnp.ones(3), "b": jnp.ones(3)}, state, params)


# -- 8. The slow-step schedule is only evaluated at sync counts >= 0 ------------------------------


def test_slow_step_schedule_is_evaluated_only_at_nonnegative_counts():
    seen = []

    def schedule(n):
        seen.append(int(n))
        return jnp.array([0.5, 0.25, 0.125])[n]

    tx = lj.lookahead(optax.sgd(0.1), sync_period=3, slow_step_size=schedule)
    params = jnp.ones(2)
    state = tx.init(params)
    for _ in range(7):
        updates, state = tx.update(params, state, params)
        params = optax.apply_updates(params, updates)
    assert seen and min(seen) >= 0, seen


# -- 9. Clear errors for hostile arguments --------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: lj.lookahead(optax.sgd(0.1)),
        lambda: lj.sgd(0.1),
        lambda: lj.adam(1e-3),
        lambda: lj.average(optax.sgd(0.1)),
    ],
)
def test_python_float_leaves_are_refused_at_init(make):
    with pytest.raises(TypeError, match=r"params\['x'\] is a float.*jnp.asarray"):
        make().init({"x": 1.0, "y": jnp.ones(2)})


def test_sync_period_beyond_int32_is_refused():
    with pytest.raises(ValueError, match=r"sync_period must be an int in \[1, 2147483647\]"):
        lj.lookahead(optax.sgd(0.1), sync_period=2**31)


def test_meta_train_refuses_validate_every_zero():
    with pytest.raises(
        ValueError,
        match=r"validate_every must be an int in \[1, 2147483647\], got validate_every=0",
    ):
        meta.meta_train(
            meta.quadratic_family(dim=2),
            lj.LSTMSchedule(base_lr=0.1, hidden_size=4),
            optax.sgd(1.0),
            key=jax.random.key(0),
            num_meta_steps=1,
            horizon=4,
            num_tasks=2,
            validation_keys=jax.random.split(jax.random.key(1), 2),
            validate_every=0,
        )


def test_meta_train_draws_the_learned_init_from_its_own_key():
    # The learned init must not be drawn with the key that also defines its task (correlated).
    quadratic, calls = meta.quadratic_family(dim=3), []

    def family(task_key):
        task = quadratic(task_key)

        def init_params(key):
            if not isinstance(key, jax.core.Tracer):  # the eager call that draws the init
                calls.append((jax.random.key_data(task_key), jax.random.key_data(key)))
            return task.init_params(key)

        return task._replace(init_params=init_params)

    meta.meta_train(
        family,
        lj.LSTMSchedule(base_lr=0.1, hidden_size=4),
        optax.sgd(1.0),
        key=jax.random.key(0),
        num_meta_steps=0,
        horizon=4,
        num_tasks=2,
        learn_init=True,
    )
    assert calls
    for task_key, init_key in calls:
        assert not np.array_equal(task_key, init_key)


def test_stats_of_one_value_is_a_clear_error():
    with pytest.raises(ValueError, match="stats: a standard error needs at least 2 values"):
        meta.stats([1.0])
    assert meta.stats([1.0, 3.0]) == {"mean": 2.0, "se": 1.0}


# -- 10. ExtraArgsTrainState keeps Flax's overwrite-with-gradient handling -------------------------


def test_extra_args_train_state_overwrites_with_gradient_like_flax():
    from flax.training import train_state

    params = FrozenDict(
        {"params": {"w": jnp.ones(2)}, OVERWRITE_WITH_GRADIENT: {"scale": jnp.ones(1)}}
    )
    grads = FrozenDict(
        {"params": {"w": jnp.full(2, 0.5)}, OVERWRITE_WITH_GRADIENT: {"scale": jnp.full(1, 7.0)}}
    )
    ours = lj.ExtraArgsTrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.1))
    flax_state = train_state.TrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.1))
    got = ours.apply_gradients(grads=grads, value=jnp.float32(1.0)).params
    want = flax_state.apply_gradients(grads=grads).params
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), got, want))
    np.testing.assert_array_equal(got[OVERWRITE_WITH_GRADIENT]["scale"], [7.0])


# -- 12. optax's contracts: complex params, inject_hyperparams structure, alpha = 0 ---------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: lj.adam(1e-3),
        lambda: lj.adamw(1e-3),
        lambda: lj.bert_adamw(1e-3),
        lambda: lj.rmsprop(1e-3),
        lambda: lj.adagrad(1e-2),
    ],
    ids=["adam", "adamw", "bert_adamw", "rmsprop", "adagrad"],
)
def test_complex_params_are_refused_where_the_rule_would_be_wrong(make):
    with pytest.raises(TypeError, match=r"complex.*params\['z'\]"):
        make().init({"z": jnp.ones(2, jnp.complex64)})


def test_sgd_on_complex_params_matches_torch():
    torch = pytest.importorskip("torch")
    p0 = np.array([1.0 + 2.0j, -0.5 + 0.25j], np.complex128)
    with jax.enable_x64(True):
        tx = lj.sgd(0.1, momentum=0.9, weight_decay=0.01)
        p = jnp.asarray(p0)
        state = tx.init(p)
        for _ in range(3):
            g = jnp.conj(p)  # the gradient of |p|^2 / 2 in torch's convention is p; any g works
            u, state = tx.update(g, state, p)
            p = optax.apply_updates(p, u)
    tp = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.SGD([tp], lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        tp.grad = torch.conj(tp.detach()).clone()
        opt.step()
    np.testing.assert_allclose(np.asarray(p), tp.detach().numpy(), rtol=1e-12)


def _complex_parabola():
    # optax's alias_test parabola in complex64: sum |p - target|^2, target scaled by 1 + 1j.
    start = jnp.array([-1.0, 10.0, 1.0], jnp.complex64)
    target = jnp.array([1.0, -1.0, 1.0], jnp.complex64) * (1 + 1j)
    return start, target, lambda p: jnp.sum(jnp.square(jnp.abs(p - target)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: lj.sgd(0.1),
        lambda: lj.sgd(0.05, momentum=0.9, nesterov=True),
        lambda: lj.lookahead(lj.sgd(0.1), sync_period=5, slow_step_size=0.5),
        lambda: lj.learned_schedule(
            optax.sgd(1.0), *lj.pretrained_schedule(horizon=500, base_lr=0.1)
        ),
    ],
    ids=["sgd", "sgd-nesterov", "lookahead-sgd", "learned_schedule-sgd"],
)
def test_complex_parabola_converges_as_in_optax_contract(make):
    # optax's test_optimization: gradients conjugated before the update (JAX's convention).
    start, target, objective = _complex_parabola()
    tx = make()
    params, state = start, tx.init(start)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(objective)(params)
        updates, state = tx.update(jnp.conj(grads), state, params, value=value)
        return optax.apply_updates(params, updates), state

    for _ in range(500):
        params, state = step(params, state)
    assert params.dtype == jnp.complex64
    np.testing.assert_allclose(params, target, atol=1e-2)


@pytest.mark.parametrize("alignment", [False, True], ids=["pretrained", "alignment"])
def test_learned_schedule_reads_a_complex_param_as_its_real_pair(alignment):
    # torch's view of a complex param: a (real, imag) pair. The schedule must read the same
    # gradient norm (and alignment), so emit the same rates and give the same trajectory
    # (before: u^2, not |u|^2).
    start, target, objective = _complex_parabola()
    schedule, sp = lj.pretrained_schedule(horizon=20, base_lr=0.05)
    if alignment:
        schedule = lj.LSTMSchedule(base_lr=0.05, alignment_features=True)
        sp = schedule.init_params(jax.random.key(0))
        k = jax.random.key(1)  # a non-zero output layer, so the rate reads the features
        out = sp["params"]["out"]
        sp = {
            "params": {
                **sp["params"],
                "out": {"kernel": jax.random.normal(k, out["kernel"].shape), "bias": out["bias"]},
            }
        }

    def run(params, objective, conj):
        tx = lj.learned_schedule(optax.sgd(1.0), schedule, sp)
        state, rates = tx.init(params), []
        for _ in range(20):
            value, grads = jax.value_and_grad(objective)(params)
            updates, state = tx.update(conj(grads), state, params, value=value)
            params = optax.apply_updates(params, updates)
            rates.append(float(lj.current_learning_rate(state)))
        return params, np.array(rates)

    z, z_rates = run(start, objective, jnp.conj)
    pair = jnp.stack([start.real, start.imag], axis=-1)
    t_pair = jnp.stack([target.real, target.imag], axis=-1)
    x, x_rates = run(pair, lambda x: jnp.sum(jnp.square(x - t_pair)), lambda g: g)
    np.testing.assert_allclose(z_rates, x_rates, rtol=1e-5)
    assert np.ptp(z_rates) > 0  # the rate did move with what the schedule read
    np.testing.assert_allclose(np.stack([z.real, z.imag], -1), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (lj.sgd, {"learning_rate": 0.1}),
        (lj.rmsprop, {"learning_rate": 1e-3}),
        (lj.adam, {"learning_rate": 1e-3}),
        (lj.adagrad, {"learning_rate": 1e-2}),
    ],
)
def test_inject_hyperparams_keeps_the_bare_state_structure(factory, kwargs):
    params = {"w": jnp.ones(3)}
    bare = factory(**kwargs).init(params)
    injected = optax.inject_hyperparams(factory)(**kwargs)
    state = injected.init(params)
    assert jax.tree.structure(state.inner_state) == jax.tree.structure(bare)
    # ... and it updates without params, as the bare one does.
    injected.update(params, state)


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (lj.sgd, {"learning_rate": 0.1, "momentum": 0.0}),
        (lj.sgd, {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.1}),
        (lj.rmsprop, {"learning_rate": 1e-3, "momentum": 0.0}),
    ],
    ids=["sgd-momentum0", "sgd-momentum0.9", "rmsprop-momentum0"],
)
def test_inject_hyperparams_with_an_explicit_momentum_keeps_the_structure(factory, kwargs):
    # optax's contract for every argument, 0 included (before: a Python 0 kept no buffer while
    # the injected, traced 0 had to keep one). The momentum-0.9 row already held; it pins it.
    params = {"w": jnp.ones(3)}
    bare = factory(**kwargs).init(params)
    state = optax.inject_hyperparams(factory)(**kwargs).init(params)
    assert jax.tree.structure(state.inner_state) == jax.tree.structure(bare)


@pytest.mark.parametrize("inject", [False, True], ids=["bare", "injected"])
def test_sgd_at_momentum_zero_with_dampening_matches_torch(inject):
    # PyTorch skips the buffer at momentum 0: no dampening. Ours keeps a buffer (above), so the
    # dampening must not reach the update from step 2 on, whether momentum is static or traced.
    torch = pytest.importorskip("torch")
    p0 = np.array([1.0, -2.0, 0.5])
    grads = [np.sin(np.arange(3) + i) for i in range(4)]
    with jax.enable_x64(True):
        factory = optax.inject_hyperparams(lj.sgd) if inject else lj.sgd
        tx = factory(learning_rate=0.1, momentum=0.0, dampening=0.5)
        p, state = jnp.asarray(p0), tx.init(jnp.asarray(p0))
        for g in grads:
            u, state = tx.update(jnp.asarray(g), state, p)
            p = optax.apply_updates(p, u)
    tp = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.SGD([tp], lr=0.1, momentum=0.0, dampening=0.5)
    for g in grads:
        tp.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(np.asarray(p), tp.detach().numpy(), rtol=1e-14)


@pytest.mark.parametrize("inject", [False, True], ids=["bare", "injected"])
@pytest.mark.parametrize("name", ["sgd", "rmsprop"])
def test_momentum_zero_forgets_a_non_finite_gradient_as_torch_does(name, inject):
    # At momentum 0 PyTorch keeps no buffer, so one inf gradient does not poison later steps. Our
    # buffer (kept for the injected structure) must not carry it either: 0 * inf is NaN.
    torch = pytest.importorskip("torch")
    p0 = np.array([1.0, -2.0, 0.5])
    grads = [np.array([np.inf, 1.0, -1.0])] + [np.sin(np.arange(3) + i) for i in range(3)]
    lr = {"sgd": 0.1, "rmsprop": 0.01}[name]
    with jax.enable_x64(True):
        factory = getattr(lj, name)
        tx = (optax.inject_hyperparams(factory) if inject else factory)(
            learning_rate=lr, momentum=0.0
        )
        state, steps = tx.init(jnp.asarray(p0)), []
        for g in grads:  # every step from p0, so an inf parameter does not hide the update
            u, state = tx.update(jnp.asarray(g), state, jnp.asarray(p0))
            steps.append(np.asarray(u))
    cls = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}[name]
    tp = torch.tensor(p0, requires_grad=True)
    opt = cls([tp], lr=lr, momentum=0.0)
    expected = []
    for g in grads:
        before = tp.detach().clone()
        tp.grad = torch.tensor(g)
        opt.step()
        expected.append((tp.detach() - before).numpy())
        with torch.no_grad():
            tp.copy_(before)
    for i, (ours, theirs) in enumerate(zip(steps, expected, strict=True)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=f"step {i + 1}")


def test_slow_step_size_zero_resets_to_fixed_slow_weights():
    tx = lj.lookahead(optax.sgd(0.1), sync_period=2, slow_step_size=0.0)
    params = jnp.array([1.0, -2.0])
    state = tx.init(params)
    for _ in range(4):
        updates, state = tx.update(params, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params, [1.0, -2.0])
    np.testing.assert_array_equal(lj.slow_params(state), [1.0, -2.0])


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_slow_step_size_outside_the_closed_interval_is_refused(bad):
    with pytest.raises(ValueError, match=r"slow_step_size must be in \[0, 1\]"):
        lj.lookahead(optax.sgd(0.1), slow_step_size=bad)


# -- 13. Docstrings say what the code does ---------------------------------------------------------


def test_bert_adamw_docstring_names_huggingface_not_the_tf_optimizer():
    doc = lj.bert_adamw.__doc__
    assert "transformers.AdamW" in doc and "original BERT" in doc


# -- A dtype matrix: every transformation x param dtype x gradient dtype --------------------------

_SCHEDULE = lj.LSTMSchedule(base_lr=0.05, hidden_size=3)
_SCHEDULE_PARAMS = _SCHEDULE.init_params(jax.random.key(0))
_ALIGNED = lj.LSTMSchedule(base_lr=0.05, hidden_size=3, alignment_features=True)
_ALIGNED_PARAMS = _ALIGNED.init_params(jax.random.key(0))


def _rounding(dtype):
    """In the float64 reference: the inner updates rounded as the real run's inner returns them
    (in the gradient's dtype), so a wrapper's reference receives the very same updates."""
    if dtype is None:
        return optax.identity()
    return optax.stateless(lambda u, p: jax.tree.map(lambda x: x.astype(dtype).astype(x.dtype), u))


# Each entry builds the transformation; `r` rounds a wrapped inner's updates in the reference.
# Wrapped inners use a power-of-two rate: optax rounds the rate itself to the update dtype
# (bf16(0.1) != 0.1), which the reference could not reproduce; 0.125 is exact in every dtype.
MATRIX = {
    "lookahead": lambda r: lj.lookahead(optax.chain(optax.sgd(0.125), r), 2, 0.5),  # "auto"
    "lookahead-tree": lambda r: lj.lookahead(
        optax.chain(optax.sgd(0.125), r), 2, 0.5, slow_layout="tree"
    ),
    "lookahead-flat": lambda r: lj.lookahead(
        optax.chain(optax.sgd(0.125), r), 2, 0.5, slow_layout="flat"
    ),
    "lookahead-slow-f32": lambda r: lj.lookahead(
        optax.chain(optax.sgd(0.125), r), 2, 0.5, slow_dtype=jnp.float32
    ),
    "lookahead-tree-slow-f32": lambda r: lj.lookahead(
        optax.chain(optax.sgd(0.125), r), 2, 0.5, slow_dtype=jnp.float32, slow_layout="tree"
    ),
    "sgd": lambda r: lj.sgd(0.1, momentum=0.9, weight_decay=0.01),
    "adam": lambda r: lj.adam(1e-2, amsgrad=True),
    "adam-mu-bf16-nu-f32": lambda r: lj.adam(1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.float32),
    "adamw": lambda r: lj.adamw(1e-2),
    "adamw-nu-f32": lambda r: lj.adamw(1e-2, nu_dtype=jnp.float32),
    "bert_adamw": lambda r: lj.bert_adamw(1e-2, weight_decay=0.01),
    "rmsprop": lambda r: lj.rmsprop(1e-2, momentum=0.9, centered=True),
    "adagrad": lambda r: lj.adagrad(0.1),
    "average": lambda r: lj.average(optax.chain(lj.sgd(0.125), r)),
    "learned_schedule": lambda r: lj.learned_schedule(
        optax.chain(optax.sgd(1.0), r), _SCHEDULE, _SCHEDULE_PARAMS
    ),
    # Its previous-update buffer keeps the params' dtypes under narrower or wider updates.
    "learned_schedule-alignment": lambda r: lj.learned_schedule(
        optax.chain(optax.sgd(1.0), r), _ALIGNED, _ALIGNED_PARAMS
    ),
}
PARAM_DTYPES = ["float32", "bfloat16", "float64"]
GRAD_DTYPES = ["same", "bfloat16", "float32"]
STEPS = 3


def _eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


@pytest.mark.parametrize("grad_dtype", GRAD_DTYPES)
@pytest.mark.parametrize("param_dtype", PARAM_DTYPES)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_dtype_matrix(name, param_dtype, grad_dtype):
    """State dtypes stay what init made them, updates come back in the gradient's dtype, and
    every state leaf and every update equal a float64 run given the same inputs, to the rounding
    of the dtype it is stored or returned in.

    The float64 reference is the library's own float64 path, which the torch.optim grid
    (`test_optimizers.py`) and the NumPy transcription of Algorithm 1 (`test_lookahead.py`)
    check (to 1e-9 relative, the torch grid's TOL, and to the NumPy transcription's tolerance):
    so each mixed-precision run is held to those references through it.
    """
    x64 = param_dtype == "float64"
    gdt = param_dtype if grad_dtype == "same" else grad_dtype
    rng = np.random.default_rng(0)
    p0 = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))}
    grads = [jax.tree.map(lambda p: rng.normal(size=p.shape), p0) for _ in range(STEPS)]
    losses = [2.0, 1.5, 1.2]

    with jax.enable_x64(x64):
        tx = MATRIX[name](optax.identity())
        params = jax.tree.map(lambda p: jnp.asarray(p, param_dtype), p0)
        state = tx.init(params)
        init_dtypes = [x.dtype for x in jax.tree.leaves(state)]
        seen_params, seen_updates = [], []
        for g, loss in zip(grads, losses, strict=True):
            g = jax.tree.map(lambda x: jnp.asarray(x, gdt), g)
            seen_params.append(params)
            updates, state = tx.update(g, state, params, value=jnp.float32(loss))
            assert jax.tree.all(jax.tree.map(lambda u: u.dtype == jnp.dtype(gdt), updates))
            seen_updates.append(updates)
            params = optax.apply_updates(params, updates)
        assert [x.dtype for x in jax.tree.leaves(state)] == init_dtypes

    with jax.enable_x64(True):  # the reference: float64 maths on the very same inputs
        ref_tx = MATRIX[name](_rounding(jnp.dtype(gdt)))
        ref_state = ref_tx.init(jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), seen_params[0]))
        ref_updates = []
        for g, loss, p in zip(grads, losses, seen_params, strict=True):
            g = jax.tree.map(lambda x: jnp.asarray(jnp.asarray(x, gdt), jnp.float64), g)
            p = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), p)
            u, ref_state = ref_tx.update(g, ref_state, p, value=jnp.float64(loss))
            ref_updates.append(u)

        def close(ours, ref):
            ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
            if not jnp.issubdtype(jnp.dtype(init_leaf_dtype.pop(0)), jnp.inexact):
                return bool(np.array_equal(ours, ref))
            dtype = dtypes.pop(0)
            scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-30)
            return float(np.max(np.abs(ours - ref), initial=0.0)) <= 4 * STEPS * _eps(dtype) * scale

        dtypes = [x.dtype for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
        dtypes_all = list(dtypes)
        init_leaf_dtype = [x.dtype for x in jax.tree.leaves(state)]
        bad = [
            path
            for (path, o), r in zip(
                jax.tree_util.tree_leaves_with_path(state), jax.tree.leaves(ref_state), strict=True
            )
            if not close(o, r)
        ]
        assert not bad, [jax.tree_util.keystr(p) for p in bad]

        # The updates: rounded to the gradient's dtype on return, after maths on state that was
        # rounded to its storage dtypes on the steps before.
        coarsest_eps = max([_eps(gdt)] + [_eps(d) for d in dtypes_all])
        for t, (ours, ref) in enumerate(zip(seen_updates, ref_updates, strict=True)):
            for (path, o), r in zip(
                jax.tree_util.tree_leaves_with_path(ours), jax.tree.leaves(ref), strict=True
            ):
                o, r = np.asarray(o, np.float64), np.asarray(r, np.float64)
                scale = max(float(np.max(np.abs(r))), 1e-30)
                err = float(np.max(np.abs(o - r)))
                assert err <= 4 * STEPS * coarsest_eps * scale, (t, jax.tree_util.keystr(path), err)


@pytest.mark.parametrize(
    "make",
    [
        lambda: lj.adamw(1e-2),
        lambda: lj.sgd(0.1, momentum=0.9),
        lambda: lj.rmsprop(0.1),
        lambda: lj.adagrad(0.1),
        lambda: lj.bert_adamw(0.1),
        lambda: lj.lookahead(lj.adamw(0.1), sync_period=2),
        lambda: lj.lookahead(optax.adam(0.1), sync_period=2, slow_layout="flat"),
    ],
)
def test_eager_numpy_float64_leaves_without_x64(make):
    # NumPy float64 arrays are float32 to JAX without x64: no float64 is asked for (which JAX
    # warns about, an error under this suite's filterwarnings), and the step is float32's.
    params, grads = {"x": np.array([3.0, 1.0])}, {"x": np.array([2.0, 1.0])}
    tx = make()
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
    assert updates["x"].dtype == jnp.float32
    ref_state = tx.init(jax.tree.map(lambda a: a.astype(np.float32), params))
    for _ in range(2):
        ref, ref_state = tx.update(
            jax.tree.map(lambda a: a.astype(np.float32), grads),
            ref_state,
            jax.tree.map(lambda a: a.astype(np.float32), params),
        )
    np.testing.assert_array_equal(updates["x"], ref["x"])
