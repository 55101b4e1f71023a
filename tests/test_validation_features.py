"""The validation-loss features of `LSTMSchedule` and the validation split of the task families."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lookahead_jax as lj
from lookahead_jax import LSTMSchedule, learned_schedule, meta

CLIP = 5.0


def reference_validation_features(val_losses, log_loss_avgs, clip=CLIP):
    """A NumPy transcription: per step, log(V_t / best before t), log(V_t / V_0), log V_t - the
    training loss's running average; +clip for a non-finite V_t, which skips the statistics."""
    best = init = None
    out = []
    for v, avg in zip(val_losses, log_loss_avgs, strict=True):
        if not np.isfinite(v):
            out.append([clip, clip, clip])
            continue
        lv = np.log(v)
        if best is None:
            best = init = lv
        out.append([np.clip(d, -clip, clip) for d in (lv - best, lv - init, lv - avg)])
        best = min(best, lv)
    return np.array(out)


def test_validation_features_match_a_numpy_transcription():
    schedule = LSTMSchedule(base_lr=0.01, validation_features=True, avg_decay=0.5)
    assert schedule.num_features == 13
    assert schedule.feature_groups()["validation"] == (10, 11, 12)
    val = [2.0, 1.0, np.nan, 1.5, 0.5, 4.0, 1e-9]
    losses = [3.0, 2.0, 1.5, 1.0, 0.8, 0.7, 0.6]
    carry, feats, avgs, log_avg = schedule.initial_carry(), [], [], None
    for loss, v in zip(losses, val, strict=True):
        f, carry = schedule.features(carry, jnp.float32(loss), jnp.float32(1.0), val_loss=v)
        # The gap reads the training average updated by this step.
        log_avg = np.log(loss) if log_avg is None else 0.5 * log_avg + 0.5 * np.log(loss)
        feats.append(np.asarray(f)[10:13])
        avgs.append(log_avg)
    np.testing.assert_allclose(
        np.array(feats), reference_validation_features(val, avgs), rtol=1e-5, atol=1e-5
    )
    assert int(carry.n_val_finite) == 6
    np.testing.assert_allclose(float(carry.log_val_init), np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(float(carry.log_val_best), np.log(1e-9), rtol=1e-6)


def test_a_nonfinite_first_validation_loss_leaves_the_statistics_unset():
    schedule = LSTMSchedule(base_lr=0.01, validation_features=True)
    carry = schedule.initial_carry()
    f, carry = schedule.features(carry, jnp.float32(1.0), jnp.float32(1.0), val_loss=np.inf)
    np.testing.assert_array_equal(np.asarray(f)[10:13], [CLIP] * 3)
    assert int(carry.n_val_finite) == 0
    f, carry = schedule.features(carry, jnp.float32(1.0), jnp.float32(1.0), val_loss=3.0)
    np.testing.assert_allclose(np.asarray(f)[10:12], [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(float(carry.log_val_init), np.log(3.0), rtol=1e-6)


def test_learned_schedule_needs_val_loss_and_its_rate_reads_it():
    schedule = LSTMSchedule(base_lr=0.01, validation_features=True, progress_features=True)
    params = schedule.init_params(jax.random.key(0))
    # A trained-like output layer (the LSTM's init is random): the rate reads every feature.
    params["params"]["out"]["kernel"] = jnp.ones_like(params["params"]["out"]["kernel"])
    tx = learned_schedule(optax.sgd(1.0), schedule, params)
    w = jnp.ones(3)
    state = tx.init(w)
    with pytest.raises(ValueError, match="val_loss"):
        tx.update(w, state, w, value=jnp.float32(1.0))
    rates = []
    for v in (1.0, 4.0):  # the same training loss; a validation loss 4x its first one
        _, s1 = tx.update(w, state, w, value=jnp.float32(1.0), val_loss=jnp.float32(1.0))
        _, s2 = tx.update(w, s1, w, value=jnp.float32(1.0), val_loss=jnp.float32(v))
        rates.append(float(s2.lr))
    assert rates[0] != rates[1]


def test_classification_validation_rows_are_carved_from_the_training_rows():
    n, d = 60, 3
    x = np.arange(n * d, dtype=np.float32).reshape(n, d) / (n * d)
    y = (np.arange(n) % 2).astype(np.int32)
    plain = meta.classification_family(x, y, 2, num_train=30, num_test=20, batch_size=4)
    split = meta.classification_family(
        x, y, 2, num_train=30, num_test=20, batch_size=4, num_validation=8
    )
    key = jax.random.key(3)
    a, b = plain(key), split(key)
    params = a.init_params(jax.random.key(1))
    # The test rows are the same with or without a validation split.
    np.testing.assert_array_equal(a.test_loss(params), b.test_loss(params))
    assert a.validation_loss is None and b.validation_loss is not None
    # The 30 rows are the 22 trained on and the 8 held out: the full loss of the plain task is
    # their row-weighted mean.
    whole = float(a.full_loss(params))
    parts = (22 * float(b.full_loss(params)) + 8 * float(b.validation_loss(params))) / 30
    np.testing.assert_allclose(parts, whole, rtol=1e-5)
    assert float(b.validation_loss(params)) != pytest.approx(whole, rel=1e-6)


def test_data_regression_validation_split_keeps_the_test_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2)).astype(np.float32)
    y = x.sum(1)
    plain = meta.data_regression_family(x, y, num_train=20, batch_size=4)
    split = meta.data_regression_family(x, y, num_train=20, batch_size=4, num_validation=5)
    a, b = plain(jax.random.key(0)), split(jax.random.key(0))
    params = a.init_params(jax.random.key(1))
    np.testing.assert_array_equal(a.test_loss(params), b.test_loss(params))
    whole = (15 * float(b.full_loss(params)) + 5 * float(b.validation_loss(params))) / 20
    np.testing.assert_allclose(whole, float(a.full_loss(params)), rtol=1e-5)


def test_generated_regression_validation_inputs_are_the_last_training_inputs():
    plain = meta.regression_family(num_train=32, num_test=16, noise=0.3)
    split = meta.regression_family(num_train=32, num_test=16, noise=0.3, num_validation=12)
    a, b = plain(jax.random.key(5)), split(jax.random.key(5))
    params = a.init_params(jax.random.key(1))
    np.testing.assert_array_equal(a.test_loss(params), b.test_loss(params))
    whole = (20 * float(b.full_loss(params)) + 12 * float(b.validation_loss(params))) / 32
    np.testing.assert_allclose(whole, float(a.full_loss(params)), rtol=1e-5)


@pytest.mark.parametrize("bad", [30, 31, -1])
def test_bad_num_validation_is_named(bad):
    x = np.zeros((40, 2), np.float32)
    with pytest.raises(ValueError, match="num_validation"):
        meta.classification_family(x, np.zeros(40, np.int32), 2, num_train=30, num_validation=bad)
    with pytest.raises(ValueError, match="num_validation"):
        meta.regression_family(num_train=30, num_validation=bad)


def test_rate_scaled_family_scales_the_validation_loss_as_the_others():
    base = meta.regression_family(num_train=32, num_validation=8, noise=0.1)
    scaled = meta.rate_scaled_family(base, (0.3, 3.0), keep_gradients=True)
    key = jax.random.key(2)
    a, b = base(key), scaled(key)
    q = b.init_params(jax.random.key(1))
    theta = a.init_params(jax.random.key(1))
    ratio = float(b.full_loss(q)) / float(a.full_loss(theta))  # 1 / s
    np.testing.assert_allclose(
        float(b.validation_loss(q)) / float(a.validation_loss(theta)), ratio, rtol=1e-5
    )
    assert ratio != pytest.approx(1.0)


def test_the_inner_loop_passes_the_validation_loss_at_the_params_it_steps_from():
    family = meta.regression_family(num_train=32, num_validation=8, batch_size=8)
    task = family(jax.random.key(0))
    schedule = LSTMSchedule(base_lr=0.01, validation_features=True)
    tx = learned_schedule(optax.adam(1.0), schedule, schedule.init_params(jax.random.key(0)))
    params = task.init_params(jax.random.key(1))
    (_, state), _ = meta.unroll(
        task, tx, params, tx.init(params), jax.random.key(2), 5, remat=False
    )
    carry = state.carry
    assert int(carry.n_val_finite) == 5
    # The first validation loss is read at the initial params (before the first update).
    np.testing.assert_allclose(
        float(carry.log_val_init), np.log(float(task.validation_loss(params))), rtol=1e-5
    )
    # Trained at base rate (untrained schedule), 5 steps of Adam lower the validation loss.
    assert float(carry.log_val_best) < float(carry.log_val_init)


def test_a_schedule_with_validation_features_on_a_family_without_a_split_is_refused():
    family = meta.regression_family(num_train=32)
    schedule = LSTMSchedule(base_lr=0.01, validation_features=True)
    tx = learned_schedule(optax.adam(1.0), schedule, schedule.init_params(jax.random.key(0)))
    with pytest.raises(ValueError, match="val_loss"):
        meta.protocol.final_metrics(family, tx, jax.random.split(jax.random.key(0), 2), 5)


def test_meta_gradient_reaches_the_validation_feature_weights():
    family = meta.regression_family(num_train=32, num_validation=8, batch_size=8, noise=0.3)
    schedule = LSTMSchedule(base_lr=0.01, validation_features=True)
    params = schedule.init_params(jax.random.key(0))
    params["params"]["out"]["kernel"] = jnp.full_like(params["params"]["out"]["kernel"], 0.1)
    task = family(jax.random.key(4))
    init = task.init_params(jax.random.key(1))
    rows = list(schedule.feature_groups()["validation"])

    def test_loss(sp):
        tx = learned_schedule(optax.adam(1.0, eps_root=1e-8), schedule, sp)
        (p, _), _ = meta.unroll(task, tx, init, tx.init(init), jax.random.key(2), 8)
        return task.test_loss(p)

    grad = jax.grad(test_loss)(params)
    g = np.asarray(grad["params"]["lstm"]["ii"]["kernel"])[rows]
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


def test_dropping_an_absent_group_drops_nothing():
    # Before the validation features, "progress" named indices 10-11 even without progress
    # features, so dropping it zeroed the alignment features that sit there then.
    schedule = LSTMSchedule(base_lr=0.01, alignment_features=True, drop_features=("progress",))
    assert schedule.feature_groups()["progress"] == ()
    feats, _ = schedule.features(
        schedule.initial_carry(), jnp.float32(1.0), jnp.float32(1.0), jnp.float32(0.7)
    )
    np.testing.assert_allclose(np.asarray(feats)[10:12], [0.7, 0.07], rtol=1e-6)


def test_validation_features_can_be_dropped():
    schedule = LSTMSchedule(
        base_lr=0.01,
        validation_features=True,
        alignment_features=True,
        drop_features=("validation",),
    )
    assert schedule.feature_groups()["validation"] == (12, 13, 14)
    carry = schedule.initial_carry()
    _, carry = schedule.features(carry, jnp.float32(1.0), jnp.float32(1.0), 0.3, 2.0)
    feats, _ = schedule.features(carry, jnp.float32(1.0), jnp.float32(1.0), 0.3, 8.0)
    np.testing.assert_array_equal(np.asarray(feats)[12:15], [0.0, 0.0, 0.0])
    assert np.asarray(feats)[10] == pytest.approx(0.3)


def test_extra_args_train_state_forwards_val_loss():
    schedule = LSTMSchedule(base_lr=0.05, validation_features=True)
    params = schedule.init_params(jax.random.key(0))
    params["params"]["out"]["kernel"] = jnp.ones_like(params["params"]["out"]["kernel"])
    tx = learned_schedule(optax.adam(1.0), schedule, params)
    state = lj.ExtraArgsTrainState.create(apply_fn=None, params={"w": jnp.ones(3)}, tx=tx)
    loss_fn = lambda p: jnp.sum(p["w"] ** 2)
    for v in (1.0, 2.0):
        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        state = state.apply_gradients(grads=grads, value=loss, val_loss=jnp.float32(v))
    assert int(state.step) == 2 and int(state.opt_state.carry.n_val_finite) == 2
    np.testing.assert_allclose(float(state.opt_state.carry.log_val_best), 0.0, atol=1e-7)
