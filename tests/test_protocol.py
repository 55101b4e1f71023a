"""The evaluation protocol (`lookahead_jax.meta.protocol`) on tiny budgets, against references."""

import math

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lookahead_jax import LSTMSchedule, learned_schedule, meta
from lookahead_jax.meta import protocol as P


def _reference_schedule(peak, warmup, floor, horizon, decay, t):
    """A NumPy transcription of the documented formula."""
    w = warmup * horizon
    warm = min(1.0, (t + 1) / w) if w > 0 else 1.0
    s = min(max((t - w) / max(horizon - w, 1.0), 0.0), 1.0)
    shape = {
        "constant": 1.0,
        "cosine": floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * s)),
        "linear": floor + (1 - floor) * (1 - s),
    }[decay]
    return peak * warm * shape


@pytest.mark.parametrize("decay", P.DECAYS)
@pytest.mark.parametrize("warmup,floor", [(0.0, 0.0), (0.1, 0.0), (0.25, 0.1), (0.5, 1.0)])
def test_warmup_decay_schedule_matches_its_formula(decay, warmup, floor):
    horizon = 40
    sched = P.warmup_decay_schedule(0.3, warmup, floor, horizon, decay)
    got = [float(sched(t)) for t in range(horizon + 3)]
    want = [_reference_schedule(0.3, warmup, floor, horizon, decay, t) for t in range(horizon + 3)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=3e-8)  # float32 cos


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"warmup": 1.0}, "warmup"),
        ({"warmup": -0.1}, "warmup"),
        ({"floor": 1.5}, "floor"),
        ({"decay": "step"}, "decay"),
        ({"horizon": 0}, "horizon"),
    ],
)
def test_warmup_decay_schedule_refuses_bad_input(kwargs, match):
    args = {"peak": 1.0, "warmup": 0.1, "floor": 0.0, "horizon": 10, "decay": "cosine"} | kwargs
    with pytest.raises(ValueError, match=match):
        P.warmup_decay_schedule(**args)


def _quadratics():
    return meta.quadratic_family(dim=4, max_condition=10.0, scale_range=(0.5, 1.0))


def test_tune_picks_the_brute_force_optimum_and_extends_an_edge():
    family, inner, horizon = _quadratics(), optax.sgd(1.0), 20
    keys = meta.task_keys(1, 4)
    # The best constant rate of these quadratics (curvature <= 1) is near 1: the grid's top
    # edge, 0.4, is below it, so the grid must grow past it.
    tunable = P.schedule_baseline(inner, horizon, "constant", peaks=[0.1, 0.2, 0.4], warmups=[0.0])
    result = P.tune(family, tunable, keys, horizon, max_extensions=8)
    assert result.best["peak"] > 0.4
    assert result.where == {"peak": "inside", "warmup": "fixed"}
    assert len(result.grid["peak"]) > 3
    # Independently: every grid point evaluated alone, the argmin of the mean log test loss.
    scores = {
        p: np.mean(
            np.log(
                P.final_metrics(
                    family, tunable.make({"peak": p, "warmup": 0.0}), keys, horizon
                ).test_loss
            )
        )
        for p in result.grid["peak"]
    }
    assert result.best["peak"] == pytest.approx(min(scores, key=scores.get), rel=1e-6)
    for p, score in scores.items():
        assert result.scores[(p, 0.0)] == pytest.approx(score, rel=1e-5, abs=1e-6)
    n_points = len(result.grid["peak"])
    assert result.inner_steps == n_points * len(keys) * horizon


def test_tune_compiles_once_however_often_it_extends_its_grid():
    """The hyperparameters are traced, so the grid's extensions reuse the first compilation:
    `make` runs once per family, at the trace (it ran once per extension round before)."""
    family, inner, horizon = _quadratics(), optax.sgd(1.0), 10
    traces = []
    constant = P.schedule_baseline(inner, horizon, "constant", peaks=[0.05, 0.1], warmups=[0.0])

    def make(hp):
        traces.append(hp)
        return constant.make(hp)

    tunable = P.Tunable(make, constant.grid, constant.bounds, constant.log_scale)
    result = P.tune([family, family], tunable, meta.task_keys(1, 2), horizon, max_extensions=4)
    assert len(result.grid["peak"]) == 6  # four extensions past the top edge
    assert len(traces) == 2  # one trace per family
    assert all(isinstance(hp["peak"], jax.core.Tracer) for hp in traces)


def test_tune_reports_a_natural_bound_and_an_unextended_edge():
    family, inner, horizon = _quadratics(), optax.sgd(1.0), 20
    keys = meta.task_keys(1, 3)
    # Warmup only slows these well-conditioned problems: the optimum is warmup 0, a natural bound.
    tunable = P.schedule_baseline(
        inner, horizon, "constant", peaks=[0.3, 0.6, 1.0], warmups=[0.0, 0.2, 0.4]
    )
    result = P.tune(family, tunable, keys, horizon)
    assert result.best["warmup"] == 0.0 and result.where["warmup"] == "natural bound"
    capped = P.Tunable(
        lambda hp: P.Method(optax.sgd(hp["lr"])), {"lr": [0.3, 0.6]}, {"lr": (0.0, 0.6)}
    )
    assert P.tune(family, capped, keys, horizon).where == {"lr": "upper bound"}
    low = P.schedule_baseline(inner, horizon, "constant", peaks=[1e-3, 2e-3], warmups=[0.0])
    stuck = P.tune(family, low, keys, horizon, max_extensions=0)
    assert stuck.where["peak"] == "edge" and stuck.grid["peak"] == [1e-3, 2e-3]


def test_paired_log_ratios_by_hand():
    c = np.array([1.0, 2.0, 4.0, 1e-9, np.nan])
    b = np.array([2.0, 2.0, 8.0, 1e-9, 1.0])
    out = P.paired_log_ratios(c, b, floor=1e-7)
    assert out.ties == 1 and out.num_tasks == 4 and out.diverged == (1, 0)
    r = np.log([0.5, 1.0, 0.5, P.DIVERGED_LOSS])
    assert out.wins == 2
    assert out.median_log_ratio == pytest.approx(np.median(r))
    assert out.geomean_ratio == pytest.approx(np.exp(np.mean(r)))
    lo, hi = out.median_ci
    assert lo <= out.median_log_ratio <= hi


def test_paired_log_ratios_interval_excludes_one_for_a_clear_winner():
    rng = np.random.default_rng(0)
    b = rng.uniform(1.0, 2.0, 50)
    c = b * rng.uniform(0.5, 0.7, 50)
    out = P.paired_log_ratios(c, b)
    assert out.geomean_ci[1] < 1.0 and out.median_ci[1] < 0.0 and out.wins == 50
    same = P.paired_log_ratios(b, b)
    assert same.geomean_ratio == 1.0 and same.wins == 0


@pytest.mark.parametrize(
    "c,b,match",
    [([1.0], [1.0, 2.0], "same length"), ([-1.0], [1.0], ">= 0"), ([], [], "same length")],
)
def test_paired_log_ratios_refuses_bad_input(c, b, match):
    with pytest.raises(ValueError, match=match):
        P.paired_log_ratios(c, b)


def test_final_metrics_scores_held_out_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    family = meta.classification_family(x, y, 2, num_train=40, batch_size=16)
    task = family(jax.random.key(3))
    assert task.test_accuracy is not None
    keys = meta.task_keys(5, 3)
    m = P.final_metrics(family, optax.adam(3e-2), keys, 60)
    assert np.all(m.train_loss < m.initial_loss)
    assert np.all((m.test_accuracy > 0.7) & (m.test_accuracy <= 1.0))
    # Held-out rows are not the training rows: the two losses differ.
    assert not np.allclose(m.test_loss, m.train_loss)
    none = meta.classification_family(x, y, 2, num_train=40, num_test=0)(jax.random.key(3))
    assert none.test_loss is None and none.test_accuracy is None
    with pytest.raises(ValueError, match="num_test"):
        meta.classification_family(x, y, 2, num_train=40, num_test=81)


def test_final_metrics_evaluates_schedule_free_at_its_averaged_point():
    family, keys = meta.regression_family(num_train=32, batch_size=8), meta.task_keys(2, 2)
    tx = optax.contrib.schedule_free_adamw(1e-2)
    plain = P.final_metrics(family, tx, keys, 30)
    averaged = P.final_metrics(
        family,
        P.Method(tx, lambda params, state: optax.contrib.schedule_free_eval_params(state, params)),
        keys,
        30,
    )
    assert not np.allclose(plain.test_loss, averaged.test_loss)


def _eager_heldout_curve(family, tx, task_key, horizon, every, eval_params=None, split="test"):
    """An eager, step-by-step transcription: train one task, score the held-out split (the
    test rows, or with ``split="validation"`` the validation rows) every `every` steps (the
    documented runs: `fresh_state`'s params and its minibatch keys)."""
    tx = optax.with_extra_args_support(tx)
    task = family(task_key)
    state = meta.fresh_state(family, tx, task_key, None)
    params, opt_state = state.params, state.opt_state
    batch_keys = jax.random.split(state.key, horizon)

    def score():
        p = params if eval_params is None else eval_params(params, opt_state)
        return float(getattr(task, f"{split}_loss")(p))

    curve = [score()]
    for t in range(horizon):
        loss, grads = jax.value_and_grad(task.loss)(params, task.sample_batch(batch_keys[t]))
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        params = optax.apply_updates(params, updates)
        if (t + 1) % every == 0:
            curve.append(score())
    return np.array(curve)


def _schedule_free_method(lr):
    return P.Method(
        optax.contrib.schedule_free_adamw(lr),
        lambda params, state: optax.contrib.schedule_free_eval_params(state, params),
    )


@pytest.mark.parametrize("schedule_free", [False, True])
def test_heldout_loss_curves_follow_an_eager_run_and_end_at_final_metrics(schedule_free):
    family, keys = meta.regression_family(num_train=32, batch_size=8), meta.task_keys(4, 2)
    method = _schedule_free_method(2e-2) if schedule_free else P.Method(optax.adam(2e-2))
    curves = P.heldout_loss_curves(family, method, keys, 24, every=6)
    assert curves.shape == (2, 5)
    for i, key in enumerate(keys):
        want = _eager_heldout_curve(family, method.tx, key, 24, 6, method.eval_params)
        np.testing.assert_allclose(curves[i], want, rtol=2e-5)
    final = P.final_metrics(family, method, keys, 24)
    np.testing.assert_allclose(curves[:, -1], final.test_loss, rtol=1e-6)
    assert np.all(curves[:, -1] < curves[:, 0])


def test_final_metrics_scores_the_validation_rows_at_the_end_nan_without_them():
    carved = meta.regression_family(num_train=32, batch_size=8, num_validation=8, noise=0.3)
    keys, tx = meta.task_keys(9, 2), optax.adam(2e-2)
    m = P.final_metrics(carved, tx, keys, 24)
    for i, key in enumerate(keys):
        want = _eager_heldout_curve(carved, tx, key, 24, 24, split="validation")
        np.testing.assert_allclose(m.validation_loss[i], want[-1], rtol=2e-5)
        assert abs(want[-1] - want[0]) > 1e-3  # trained: not the initial params' score
    assert not np.allclose(m.validation_loss, m.test_loss)
    plain = P.final_metrics(meta.regression_family(num_train=32, batch_size=8), tx, keys, 24)
    assert np.all(np.isnan(plain.validation_loss))


def _metrics(validation, test):
    """Metrics of three tasks whose other fields say which candidate they came from."""
    validation, test = np.asarray(validation, np.float64), np.asarray(test, np.float64)
    return P.Metrics(test + 1, test, test + 2, test + 3, validation)


def test_pick_by_validation_takes_each_tasks_lowest_validation_loss_never_its_test_loss():
    a = _metrics([0.5, 2.0, np.nan], [9.0, 1.0, 5.0])
    b = _metrics([0.7, 1.0, np.inf], [1.0, 9.0, 6.0])
    c = _metrics([0.6, 3.0, np.nan], [0.1, 0.2, 7.0])
    picked, index = P.pick_by_validation([a, b, c])
    # Task 0: a's 0.5; task 1: b's 1.0; task 2: every run diverged, so the first is kept.
    np.testing.assert_array_equal(index, [0, 1, 0])
    np.testing.assert_array_equal(picked.test_loss, [9.0, 9.0, 5.0])
    np.testing.assert_array_equal(picked.train_loss, [10.0, 10.0, 6.0])
    np.testing.assert_array_equal(picked.test_accuracy, [11.0, 11.0, 7.0])
    np.testing.assert_array_equal(picked.initial_loss, [12.0, 12.0, 8.0])
    np.testing.assert_array_equal(picked.validation_loss, [0.5, 1.0, np.nan])
    # A diverged run never beats a finite one.
    _, index = P.pick_by_validation([_metrics([np.nan, 0.1, 0.1], [0.0] * 3), c])
    np.testing.assert_array_equal(index, [1, 0, 0])


@pytest.mark.parametrize(
    "candidates,error,match",
    [
        ([], ValueError, r"^pick_by_validation: candidates is empty"),
        ([(1, 2, 3, 4, 5)], TypeError, r"candidates\[0\] must be a Metrics .* got tuple"),
        (
            [_metrics([1.0] * 3, [1.0] * 3), _metrics([1.0] * 2, [1.0] * 2)],
            ValueError,
            r"candidates\[1\] has \(2,\) tasks' metrics, candidates\[0\] \(3,\)",
        ),
        (
            [_metrics([1.0] * 3, [1.0] * 3), _metrics([np.nan] * 3, [1.0] * 3)],
            ValueError,
            r"candidates\[1\] has no validation loss \(NaN for every task\)",
        ),
    ],
)
def test_pick_by_validation_refuses_bad_input(candidates, error, match):
    with pytest.raises(error, match=match):
        P.pick_by_validation(candidates)


@pytest.mark.parametrize(
    "horizon,every,match",
    [(24, 5, "every must divide horizon=24, got every=5"), (24, 0, "every"), (24, 25, "every")],
)
def test_heldout_loss_curves_refuses_bad_input(horizon, every, match):
    family, keys = meta.regression_family(), meta.task_keys(4, 1)
    with pytest.raises(ValueError, match=match):
        P.heldout_loss_curves(family, optax.adam(1e-2), keys, horizon, every)


@hypothesis.given(
    curves=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
        elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf]),
    ),
    target=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    every=st.integers(1, 50),
)
def test_steps_to_target_is_the_first_point_at_or_below_it(curves, target, every):
    got = P.steps_to_target(curves, every, target)
    for row, steps in zip(curves, got, strict=True):
        first = next((j for j, v in enumerate(row) if math.isfinite(v) and v <= target), None)
        assert steps == (math.inf if first is None else first * every)


def test_steps_to_target_takes_a_target_per_task_and_refuses_bad_input():
    curves = np.array([[3.0, 1.0, 0.5], [3.0, 2.0, 2.5]])
    np.testing.assert_array_equal(P.steps_to_target(curves, 10, [0.5, 2.5]), [20.0, 10.0])
    with pytest.raises(ValueError, match="curves must be"):
        P.steps_to_target(curves[0], 10, 1.0)
    with pytest.raises(ValueError, match="every"):
        P.steps_to_target(curves, 0, 1.0)
    with pytest.raises(ValueError, match=r"one per task \(2\), got shape \(3,\)"):
        P.steps_to_target(curves, 10, [1.0, 1.0, 1.0])


def test_replay_schedule_replays_the_rates():
    lrs = jnp.array([0.1, 0.2, 0.3])
    tx = P.replay_schedule(optax.sgd(1.0), lrs)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    got = []
    for _ in range(5):
        u, state = tx.update({"w": jnp.ones(2)}, state)
        got.append(float(-u["w"][0]))
    np.testing.assert_allclose(got, [0.1, 0.2, 0.3, 0.3, 0.3], rtol=1e-6)
    with pytest.raises(ValueError, match="learning_rates"):
        P.replay_schedule(optax.sgd(1.0), jnp.zeros((2, 2)))


@pytest.mark.parametrize("bad", [float("nan"), -0.1, float("inf")])
def test_replay_schedule_refuses_a_bad_rate_naming_its_step(bad):
    with pytest.raises(ValueError, match=rf"^replay_schedule: .* learning_rates\[2\]={bad}$"):
        P.replay_schedule(optax.sgd(1.0), [0.1, 0.2, bad, 0.3])


def test_replay_schedule_takes_traced_rates_under_vmap():
    rates = jnp.array([[0.1, 0.2], [0.3, 0.4]])

    def second_update(r):
        tx = P.replay_schedule(optax.sgd(1.0), r)
        state = tx.init(jnp.ones(2))
        _, state = tx.update(jnp.ones(2), state)
        return tx.update(jnp.ones(2), state)[0]

    np.testing.assert_allclose(jax.vmap(second_update)(rates)[:, 0], [-0.2, -0.4], rtol=1e-6)


def test_run_ranks_an_untrained_method_below_tuned_baselines():
    family, inner, horizon = _quadratics(), optax.sgd(1.0), 15
    baselines = {
        d: P.schedule_baseline(
            inner, horizon, d, peaks=[0.3, 0.6, 1.2], warmups=[0.0, 0.2], floors=[0.0, 0.3]
        )
        for d in ("constant", "linear")
    }
    schedule = LSTMSchedule(base_lr=0.05)
    candidates = {
        "too_small": optax.sgd(0.05),
        "lstm": learned_schedule(inner, schedule, schedule.init_params(jax.random.key(0))),
    }
    oracle = P.schedule_baseline(inner, horizon, "constant", peaks=[0.3, 0.6, 1.2], warmups=[0.0])
    res = P.run(
        family,
        candidates,
        baselines,
        tune_keys=meta.task_keys(1, 3),
        heldout_keys=meta.task_keys(2, 6),
        horizon=horizon,
        oracle=oracle,
        max_extensions=1,  # compile time: the test is about ranking, not grids
        num_bootstrap=200,
    )
    assert set(res.comparisons) == {(c, b) for c in candidates for b in baselines}
    for (c, _), cmp in res.comparisons.items():
        assert cmp.wins <= 1 and cmp.geomean_ci[0] > 1.0 and cmp.median_ci[0] > 0.0, c
    # An untrained LSTM schedule returns its base rate: the same run as plain SGD at that rate.
    np.testing.assert_allclose(
        res.metrics["lstm"].test_loss, res.metrics["too_small"].test_loss, rtol=1e-5
    )
    # The per-task oracle: each task's best test loss over the oracle's grid, point by point.
    per_point = [
        P.final_metrics(
            family, oracle.make({"peak": p, "warmup": 0.0}), meta.task_keys(2, 6), horizon
        ).test_loss
        for p in (0.3, 0.6, 1.2)
    ]
    np.testing.assert_allclose(res.oracle, np.min(per_point, axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="both a candidate and a baseline"):
        P.run(
            family,
            {"linear": inner},
            baselines,
            tune_keys=meta.task_keys(1, 2),
            heldout_keys=meta.task_keys(2, 2),
            horizon=3,
        )


def test_lstm_schedule_drop_features_zeroes_a_group():
    full = LSTMSchedule(base_lr=0.1)
    no_time = LSTMSchedule(base_lr=0.1, drop_features=("time", "loss"))
    carry = full.initial_carry()
    f_full, _ = full.features(carry, jnp.float32(2.0), jnp.float32(3.0))
    f_drop, _ = no_time.features(carry, jnp.float32(2.0), jnp.float32(3.0))
    dropped = [0, 1, 6, 7, 8]
    np.testing.assert_array_equal(np.asarray(f_drop)[dropped], 0.0)
    keep = [i for i in range(10) if i not in dropped]
    np.testing.assert_array_equal(np.asarray(f_drop)[keep], np.asarray(f_full)[keep])
    assert np.any(np.asarray(f_full)[dropped] != 0)
    with pytest.raises(ValueError, match="drop_features"):
        LSTMSchedule(base_lr=0.1, drop_features=("momentum",))


def _rows(n=100, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5][:d], np.float32) + 0.3).astype(np.float32)


def test_data_regression_family_splits_rows_into_train_and_held_out():
    x, y = _rows()
    family = meta.data_regression_family(x, y, hidden=(), num_train=70, batch_size=8)
    task = family(jax.random.key(0))
    # A linear model at zero predicts 0: the two losses are mean(y^2) over the two splits, so
    # together they cover every row exactly once.
    zero = jax.tree.map(jnp.zeros_like, task.init_params(jax.random.key(1)))
    total = 70 * task.full_loss(zero) + 30 * task.test_loss(zero)
    np.testing.assert_allclose(total, np.sum(y.astype(np.float64) ** 2), rtol=1e-5)
    assert not np.isclose(task.full_loss(zero), np.mean(y[:70] ** 2))  # rows are shuffled
    assert task.test_accuracy is None
    # A different task key draws a different split.
    other = family(jax.random.key(5))
    assert not np.isclose(other.full_loss(zero), task.full_loss(zero))


def test_data_regression_family_learns_a_linear_map_and_vmaps():
    x, y = _rows()
    family = meta.data_regression_family(x, y, hidden=(), num_train=60, batch_size=16)
    m = P.final_metrics(family, optax.adam(5e-2), meta.task_keys(3, 3), 300)
    assert np.all(m.initial_loss > 0.5)
    assert np.all(m.test_loss < 1e-3)  # the held-out rows of an exact linear map


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"y": np.zeros((100, 2), np.float32)}, "y.shape"),
        ({"x": np.zeros(100, np.float32)}, "x.shape"),
        ({"num_train": 101}, "num_train"),
        ({"num_train": 0}, "num_train"),
        ({"num_test": 31}, "num_test"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_data_regression_family_refuses_bad_input(kwargs, match):
    x, y = _rows()
    args = {"x": x, "y": y, "num_train": 70} | kwargs
    with pytest.raises(ValueError, match=match):
        meta.data_regression_family(**args)
