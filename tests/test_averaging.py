"""The specification of `average`, `averaged_params` and `swa_schedule`.

Proven against `torch.optim.swa_utils` (AveragedModel, equal and EMA, and SWALR) in float64 on the
MLP of `_torch_reference`, following PyTorch's documented SWA recipe step by step.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from _torch_reference import NAMES, max_rel_diff, problem, run_jax, torch_loss
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.optim import swa_utils

from lookahead_jax.averaging import AverageState, average, averaged_params, swa_schedule
from lookahead_jax.lookahead import lookahead
from lookahead_jax.optimizers import adamw, sgd

STEPS = 100
TOL = 1e-9


class TorchMLP(torch.nn.Module):
    """The `_torch_reference` MLP as a Module, which AveragedModel needs."""

    def __init__(self, params):
        super().__init__()
        for k in NAMES:
            self.register_parameter(k, torch.nn.Parameter(torch.tensor(params[k])))

    def loss(self, x, y):
        return torch_loss([getattr(self, k) for k in NAMES], x, y)


def torch_swa_recipe(
    steps, swa_start, swa_lr, anneal, strategy, every=1, decay=None, base_lr=0.05
):  # fmt: skip
    """PyTorch's SWA recipe, one scheduler step per optimizer step.

    Returns the final params, the averaged params, n_averaged and the lr used at each step.
    """
    params0, (x, y) = problem()
    x, y = torch.tensor(x), torch.tensor(y)
    model = TorchMLP(params0)
    multi_avg_fn = None if decay is None else swa_utils.get_ema_multi_avg_fn(decay)
    swa_model = swa_utils.AveragedModel(model, multi_avg_fn=multi_avg_fn)
    optimizer = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.5)
    swa_scheduler = swa_utils.SWALR(
        optimizer, swa_lr=swa_lr, anneal_epochs=anneal, anneal_strategy=strategy
    )
    lrs = []
    for i in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad()
        model.loss(x, y).backward()
        optimizer.step()
        if i > swa_start:
            swa_scheduler.step()
            if (i - swa_start) % every == 0:
                swa_model.update_parameters(model)
        else:
            scheduler.step()
    as_numpy = lambda m: {k: getattr(m, k).detach().numpy().copy() for k in NAMES}
    return as_numpy(model), as_numpy(swa_model.module), int(swa_model.n_averaged), lrs


def our_swa_recipe(steps, swa_start, swa_lr, anneal, strategy, every=1, decay=None, base_lr=0.05):
    base = optax.exponential_decay(base_lr, 20, 0.5, staircase=True)
    schedule = swa_schedule(base, swa_lr, anneal, strategy, start_step=swa_start + 1)
    tx = average(sgd(schedule, momentum=0.9), start_step=swa_start + 1, every=every, decay=decay)
    params, state = run_jax(tx, steps)
    lrs = [float(schedule(jnp.asarray(c, jnp.result_type(int)))) for c in range(steps)]
    return params, averaged_params(state), int(state.n_averaged), lrs


@pytest.mark.parametrize(
    ("swa_start", "anneal", "strategy", "every", "decay"),
    [
        (59, 10, "cos", 1, None),
        (49, 15, "linear", 1, None),
        (39, 1, "cos", 5, None),
        (69, 5, "linear", 3, None),
        (29, 10, "cos", 1, 0.9),
        (0, 20, "linear", 2, 0.5),
    ],
)
def test_swa_recipe_matches_torch(swa_start, anneal, strategy, every, decay, x64):
    args = (STEPS, swa_start, 0.01, anneal, strategy, every, decay)
    params, averaged, n_averaged, lrs = our_swa_recipe(*args)
    t_params, t_averaged, t_n_averaged, t_lrs = torch_swa_recipe(*args)
    np.testing.assert_allclose(lrs, t_lrs, rtol=1e-12)
    assert n_averaged == t_n_averaged == len(range(swa_start + every, STEPS, every))
    assert max_rel_diff(params, t_params) <= TOL
    assert max_rel_diff(averaged, t_averaged) <= TOL
    assert max_rel_diff(averaged, params) > 1e-4  # the average is not the last iterate


def test_ema_from_the_first_step_matches_torch(x64):
    # AveragedModel's first update copies the params (EMA included), every step from step 1.
    params0, (x, y) = problem()
    x, y = torch.tensor(x), torch.tensor(y)
    model = TorchMLP(params0)
    ema = swa_utils.AveragedModel(model, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.95))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(50):
        optimizer.zero_grad()
        model.loss(x, y).backward()
        optimizer.step()
        ema.update_parameters(model)
    _, state = run_jax(average(adamw(1e-2), decay=0.95), 50)
    theirs = {k: getattr(ema.module, k).detach().numpy() for k in NAMES}
    assert max_rel_diff(averaged_params(state), theirs) <= TOL
    assert int(state.n_averaged) == int(ema.n_averaged) == 50


# -- swa_schedule against SWALR -------------------------------------------------------------------


def torch_swalr_lrs(steps, base_lr, swa_lr, anneal, strategy, swa_start):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.7)
    swa_scheduler = swa_utils.SWALR(optimizer, swa_lr, anneal, strategy)
    lrs = []
    for i in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        (swa_scheduler if i > swa_start else scheduler).step()
    return lrs


@settings(max_examples=30, deadline=None)
@given(
    base_lr=st.floats(1e-3, 1.0),
    swa_lr=st.floats(1e-4, 1.0),
    anneal=st.integers(1, 30),
    strategy=st.sampled_from(["cos", "linear"]),
    swa_start=st.integers(0, 30),
)
# Found by the suite: near the end of the cosine anneal the rate is 0.025 of a base rate of 1, so
# float32's rounding of the two terms (a few ulps of 1) is 2.1e-6 of the result.
@example(base_lr=1.0, swa_lr=0.0078125, anneal=12, strategy="cos", swa_start=0)
def test_swa_schedule_is_swalr(base_lr, swa_lr, anneal, strategy, swa_start):
    steps = 70
    base = optax.exponential_decay(base_lr, 7, 0.7, staircase=True)
    schedule = swa_schedule(base, swa_lr, anneal, strategy, start_step=swa_start + 1)
    ours = schedule(jnp.arange(steps, dtype=jnp.int32))  # element-wise in the count
    theirs = torch_swalr_lrs(steps, base_lr, swa_lr, anneal, strategy, swa_start)
    # A float32 schedule against Python floats: SWALR's alpha * swa_lr + (1 - alpha) * lr rounds
    # to a few ulps of the larger rate, which is far more than 2e-6 of a small result.
    scale = 4 * np.finfo(np.float32).eps * max(base_lr, swa_lr)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=scale)
    np.testing.assert_allclose(ours[swa_start + 1 + anneal :], swa_lr, rtol=2e-6)


def test_swa_schedule_hand_worked():
    cos = swa_schedule(1.0, swa_lr=0.0, anneal_steps=2, strategy="cos", start_step=1)
    np.testing.assert_allclose([cos(c) for c in range(5)], [1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-7)
    # 0 anneal steps behaves as 1: SWALR's steps after its construction are the same for both.
    for anneal in (0, 1):
        jump = swa_schedule(optax.linear_schedule(1.0, 0.0, 10), 0.5, anneal, start_step=3)
        np.testing.assert_allclose([jump(c) for c in range(6)], [1.0, 0.9, 0.8, 0.7, 0.5, 0.5])


# -- averaged_params, wrappers, edge cases ---------------------------------------------------------

PARAMS = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}


def _run(tx, grads_seq, params=PARAMS, jit=True):
    state = tx.init(params)
    step = jax.jit(tx.update) if jit else tx.update
    for grads in grads_seq:
        updates, state = step(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


GRADS = [jax.tree.map(lambda p, i=i: jnp.sin(p + i), PARAMS) for i in range(6)]


def test_updates_pass_through_and_average_is_exact():
    inner = sgd(0.1, momentum=0.5)
    params, state = _run(average(inner), GRADS)
    expected, _ = _run(inner, GRADS)
    chex.assert_trees_all_equal(params, expected)
    # The equal-weight average of the 6 iterates, computed from the inner trajectory.
    iterates, p, s = [], PARAMS, inner.init(PARAMS)
    for g in GRADS:
        u, s = inner.update(g, s, p)
        p = optax.apply_updates(p, u)
        iterates.append(p)
    mean = jax.tree.map(lambda *xs: sum(xs) / len(xs), *iterates)
    chex.assert_trees_all_close(averaged_params(state), mean, rtol=1e-6)
    assert int(state.n_averaged) == 6 and int(state.count) == 6


def test_before_the_first_average_the_initial_params_are_returned():
    _, state = _run(average(sgd(0.1), start_step=10), GRADS)
    chex.assert_trees_all_equal(averaged_params(state), PARAMS)
    assert int(state.n_averaged) == 0


@pytest.mark.parametrize(
    "wrap",
    [
        lambda tx: optax.chain(optax.clip(1e6), tx),
        lambda tx: optax.MultiSteps(tx, every_k_schedule=1),
        lambda tx: optax.apply_if_finite(tx, max_consecutive_errors=2),
        lambda tx: lookahead(tx, sync_period=1, slow_step_size=1.0),
        lambda tx: optax.inject_hyperparams(lambda learning_rate: tx)(learning_rate=0.1),
    ],
    ids=["chain", "MultiSteps", "apply_if_finite", "lookahead", "inject_hyperparams"],
)
def test_averaged_params_found_in_wrappers(wrap):
    params, state = _run(wrap(average(sgd(0.1))), GRADS)
    plain_params, plain_state = _run(average(sgd(0.1)), GRADS)
    chex.assert_trees_all_close(params, plain_params, rtol=1e-6)
    chex.assert_trees_all_close(averaged_params(state), averaged_params(plain_state), rtol=1e-6)


def test_skipped_steps_are_not_averaged():
    nan = jax.tree.map(lambda g: jnp.full_like(g, jnp.nan), GRADS[0])
    _, state = _run(optax.apply_if_finite(average(sgd(0.1)), 3), [GRADS[0], nan, *GRADS[1:]])
    _, plain = _run(average(sgd(0.1)), GRADS)
    chex.assert_trees_all_close(averaged_params(state), averaged_params(plain), rtol=1e-6)
    # MultiSteps: only the applied (every second) updates are averaged.
    _, state = _run(optax.MultiSteps(average(sgd(0.1)), every_k_schedule=2), GRADS)
    assert int(averaged_state(state).n_averaged) == 3


def averaged_state(state):
    return next(
        s
        for s in jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, AverageState))
        if isinstance(s, AverageState)
    )


def test_masked_average_fills_the_untracked_leaves():
    tx = optax.masked(average(sgd(0.1)), {"w": True, "b": False})
    params, state = _run(tx, GRADS)
    averaged = averaged_params(state, params)
    assert averaged["b"] is params["b"]
    _, plain = _run(average(sgd(0.1)), GRADS)
    np.testing.assert_allclose(averaged["w"], averaged_params(plain)["w"], rtol=1e-6)


def test_averaged_params_errors():
    with pytest.raises(ValueError, match="averaged_params: no AverageState"):
        averaged_params(sgd(0.1).init(PARAMS))
    two = optax.multi_transform(
        {"a": average(sgd(0.1)), "b": average(sgd(0.1))}, {"w": "a", "b": "b"}
    )
    with pytest.raises(ValueError, match="found 2 separate AverageStates"):
        averaged_params(two.init(PARAMS))


def test_donated_jitted_step():
    tx = average(adamw(1e-2), decay=0.9)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    donated = jax.jit(step.__wrapped__, donate_argnums=(0, 1))
    params = jax.tree.map(jnp.copy, PARAMS)
    state = tx.init(params)
    expected = step(params, state, GRADS[0])
    got = donated(params, state, GRADS[0])  # fails if the average aliased the params
    chex.assert_trees_all_close(got, expected)


def test_update_needs_params():
    tx = average(sgd(0.1))
    with pytest.raises(ValueError, match="average: update needs the current params"):
        tx.update(PARAMS, tx.init(PARAMS))


@pytest.mark.parametrize(
    ("kwargs", "error", "shown"),
    [
        (dict(start_step=-1), ValueError, "start_step=-1"),
        (dict(start_step=1.5), TypeError, "start_step=1.5"),
        (dict(every=0), ValueError, "every=0"),
        (dict(every=True), TypeError, "every=True"),
        (dict(decay=1.5), ValueError, "decay=1.5"),
        (dict(decay=-0.1), ValueError, "decay=-0.1"),
        (dict(decay="0.9"), TypeError, "decay='0.9'"),
    ],
)
def test_average_validation(kwargs, error, shown):
    with pytest.raises(error, match=f"^average: .*{shown}"):
        average(sgd(0.1), **kwargs)


def test_average_rejects_a_non_transformation():
    with pytest.raises(TypeError, match="average: inner must be"):
        average(0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "shown"),
    [
        (dict(strategy="exp"), ValueError, "strategy='exp'"),
        (dict(anneal_steps=-1), ValueError, "anneal_steps=-1"),
        (dict(anneal_steps=2.0), TypeError, "anneal_steps=2.0"),
        (dict(start_step=-3), ValueError, "start_step=-3"),
        (dict(swa_lr="x"), TypeError, "swa_lr='x'"),
    ],
)
def test_swa_schedule_validation(kwargs, error, shown):
    kwargs = {"swa_lr": 0.01, **kwargs}
    with pytest.raises(error, match=f"^swa_schedule: .*{shown}"):
        swa_schedule(0.1, **kwargs)
    if error is ValueError and "swa_lr" not in shown and "start_step" not in shown:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        torch_kwargs = {"anneal_strategy": kwargs.get("strategy", "cos")}
        torch_kwargs["anneal_epochs"] = kwargs.get("anneal_steps", 10)
        with pytest.raises(ValueError, match=r"^anneal_(strategy|epochs) must be"):  # as SWALR does
            swa_utils.SWALR(optimizer, 0.01, **torch_kwargs)


def test_average_weight_stays_in_range_at_the_largest_count():
    tx = average(sgd(0.0))
    state = tx.init(jnp.zeros([]))._replace(n_averaged=jnp.asarray(2**31 - 1, jnp.int32))
    _, state = tx.update(jnp.zeros([]), state, jnp.full([], 1e6))
    # n + 1 = 2**31 exactly in float32: the average moves 1e6 / 2**31 of the way from 0.
    assert float(averaged_params(state)) == pytest.approx(1e6 / 2**31, rel=1e-6)
