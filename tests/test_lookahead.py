"""The specification of `lookahead` and `slow_params`."""

import functools
import re
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state
from hypothesis import given, settings
from hypothesis import strategies as st

import lookahead_jax as lj
from lookahead_jax.cli.timing import temp_bytes
from lookahead_jax.lookahead import FlatSlow

GRADS = {"x": jnp.array(2.0), "y": jnp.array(-2.0)}
PARAMS = {"x": jnp.array(3.0), "y": jnp.array(-3.0)}


class ToyState(NamedTuple):
    """A non-trivial inner state, to see whether it is kept or reset."""

    grad_sum: optax.Updates


def toy_optimizer(step_size: float) -> optax.GradientTransformation:
    """update = step_size * g, and the state sums the gradients (optax's lookahead test)."""

    def init_fn(params):
        return ToyState(jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        del params
        new_sum = jax.tree.map(jnp.add, state.grad_sum, updates)
        return jax.tree.map(lambda g: step_size * g, updates), ToyState(new_sum)

    return optax.GradientTransformation(init_fn, update_fn)


def run(tx, params, grads_fn, steps, jit=True):
    """Runs `steps` optimizer steps; returns the params after each step and the final state."""
    state = tx.init(params)

    def step(params, state):
        updates, state = tx.update(grads_fn(params), state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    history = []
    for _ in range(steps):
        params, state = step(params, state)
        history.append(params)
    return history, state


def constant_grads(_):
    return GRADS


# -- Hand-worked trajectories (optax's lookahead tests, on our API) ------------------------------


def test_hand_worked_trajectory():
    # Fast step -0.5 * g = -1: x goes 3 -> 2 -> 1 -> 0, syncs to 3 + (0 - 3)/3 = 2, then
    # 2 -> 1 -> 0 -> -1, syncs to 2 + (-1 - 2)/3 = 1.
    tx = lj.lookahead(toy_optimizer(-0.5), sync_period=3, slow_step_size=1 / 3)
    history, state = run(tx, PARAMS, constant_grads, 6)
    np.testing.assert_allclose([float(p["x"]) for p in history], [2, 1, 2, 1, 0, 1], rtol=1e-6)
    np.testing.assert_allclose([float(p["y"]) for p in history], [-2, -1, -2, -1, 0, -1], atol=1e-6)
    chex.assert_trees_all_close(lj.slow_params(state), {"x": 1.0, "y": -1.0})
    assert int(state.count) == 6


@pytest.mark.parametrize(
    ("sync_period", "slow_step_size", "expected_x"),
    [(1, 0.5, 1.0), (1, 1.0, -1.0), (2, 1.0, -1.0), (2, 0.5, 1.0)],
)
def test_edge_cases(sync_period, slow_step_size, expected_x):
    tx = lj.lookahead(toy_optimizer(-1.0), sync_period, slow_step_size)
    history, state = run(tx, PARAMS, constant_grads, 2)
    expected = {"x": expected_x, "y": -expected_x}
    chex.assert_trees_all_close(lj.slow_params(state), expected)
    chex.assert_trees_all_close(history[-1], expected)  # params sit on the slow weights


def test_k1_alpha1_is_the_inner_optimizer():
    inner = optax.sgd(0.1, momentum=0.9)
    quad = lambda p: jax.tree.map(lambda x: 2.0 * x, p)
    ours, _ = run(lj.lookahead(inner, 1, 1.0), PARAMS, quad, 7)
    plain, _ = run(inner, PARAMS, quad, 7)
    chex.assert_trees_all_close(ours, plain, rtol=1e-6)


@pytest.mark.parametrize("layout", ["tree", "flat"])
def test_slow_weights_start_at_params_and_are_a_separate_buffer(layout):
    params = {"w": jnp.arange(3.0)}
    state = lj.lookahead(optax.sgd(0.1), slow_layout=layout).init(params)
    chex.assert_trees_all_equal(lj.slow_params(state), params)
    buffer = state.slow.buffer if layout == "flat" else state.slow["w"]
    assert buffer.unsafe_buffer_pointer() != params["w"].unsafe_buffer_pointer()


def test_state_holds_inner_state_one_params_copy_and_a_scalar_counter():
    params = {"a": jnp.ones((3, 2)), "b": [jnp.zeros(4), jnp.ones(())]}
    inner = optax.adamw(1e-3)
    state = lj.lookahead(inner).init(params)
    assert state._fields == ("inner_state", "slow", "count")
    chex.assert_trees_all_equal_structs(state.inner_state, inner.init(params))
    chex.assert_trees_all_equal_shapes_and_dtypes(lj.slow_params(state), params)
    assert state.count.shape == () and state.count.dtype == jnp.int32


# -- Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sync_period": 0}, ValueError, "sync_period=0"),
        ({"sync_period": -3}, ValueError, "sync_period=-3"),
        ({"sync_period": 2.5}, TypeError, "sync_period=2.5"),
        ({"sync_period": True}, TypeError, "sync_period=True"),
        ({"sync_period": "5"}, TypeError, "sync_period='5'"),
        ({"slow_step_size": 1.5}, ValueError, "slow_step_size=1.5"),
        ({"slow_step_size": -0.1}, ValueError, "slow_step_size=-0.1"),
        ({"slow_step_size": float("nan")}, ValueError, "slow_step_size=nan"),
        ({"slow_step_size": "0.5"}, TypeError, "slow_step_size='0.5'"),
    ],
)
def test_invalid_arguments_raise_at_construction(kwargs, error, match):
    with pytest.raises(error, match=re.escape(match)):
        lj.lookahead(optax.sgd(0.1), **kwargs)


def test_numpy_integer_sync_period_is_accepted():
    tx = lj.lookahead(optax.sgd(0.1), sync_period=np.int64(3))
    _, state = run(tx, PARAMS, constant_grads, 3)
    assert int(state.count) == 3


@pytest.mark.parametrize("inner", [optax.adam, None, 0.1, "adam"])
def test_inner_must_be_a_transformation(inner):
    with pytest.raises(TypeError, match="inner must be an optax GradientTransformation"):
        lj.lookahead(inner)


def test_update_without_params_raises():
    tx = lj.lookahead(optax.sgd(0.1))
    state = tx.init(PARAMS)
    with pytest.raises(ValueError, match="needs the current params"):
        tx.update(GRADS, state)


def test_slow_params_without_lookahead_raises():
    with pytest.raises(ValueError, match="no LookaheadState found"):
        lj.slow_params(optax.adam(1e-3).init(PARAMS))


def test_slow_params_with_two_separate_lookaheads_raises():
    tx = optax.multi_transform(
        {"a": lj.lookahead(optax.sgd(0.1)), "b": lj.lookahead(optax.adam(0.1))},
        {"x": "a", "y": "b"},
    )
    with pytest.raises(ValueError, match="found 2 separate LookaheadStates"):
        lj.slow_params(tx.init(PARAMS))


# -- Independent references ----------------------------------------------------------------------


def numpy_lookahead_sgd(params, targets, steps, k, alpha, lr, momentum):
    """Algorithm 1 of Zhang et al. transcribed in NumPy, inner SGD with heavy-ball momentum
    (optax's convention: b = momentum * b + g, update = -lr * b), loss 0.5 * |p - target|^2."""
    fast = [np.array(p, np.float64) for p in params]
    slow = [f.copy() for f in fast]
    buf = [np.zeros_like(f) for f in fast]
    fast_hist, slow_hist = [], []
    for t in range(1, steps + 1):
        for i, target in enumerate(targets):
            g = fast[i] - target
            buf[i] = momentum * buf[i] + g
            fast[i] = fast[i] - lr * buf[i]
        if t % k == 0:
            for i in range(len(fast)):
                slow[i] = slow[i] + alpha * (fast[i] - slow[i])
                fast[i] = slow[i].copy()
        fast_hist.append([f.copy() for f in fast])
        slow_hist.append([s.copy() for s in slow])
    return fast_hist, slow_hist


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 6),
    alpha=st.floats(0.05, 1.0),
    steps=st.integers(1, 14),
    shapes=st.lists(
        st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple), min_size=1, max_size=3
    ),
    seed=st.integers(0, 2**16),
)
def test_matches_numpy_transcription_of_algorithm_1(k, alpha, steps, shapes, seed):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s).astype(np.float32) for s in shapes]
    targets = [rng.normal(size=s).astype(np.float32) for s in shapes]
    lr, momentum = 0.1, 0.5
    tx = lj.lookahead(optax.sgd(lr, momentum=momentum), k, alpha)
    grads_fn = lambda ps: [p - t for p, t in zip(ps, targets, strict=True)]
    history, _ = run(tx, [jnp.asarray(p) for p in params], grads_fn, steps)
    fast_ref, slow_ref = numpy_lookahead_sgd(params, targets, steps, k, alpha, lr, momentum)
    for t in range(steps):
        for ours, ref in zip(history[t], fast_ref[t], strict=True):
            np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=2e-6)
    # The slow weights in the state follow the paper's phi at every step, not only at syncs.
    tx_state = tx.init([jnp.asarray(p) for p in params])
    ps = [jnp.asarray(p) for p in params]
    for t in range(steps):
        updates, tx_state = tx.update(grads_fn(ps), tx_state, ps)
        ps = optax.apply_updates(ps, updates)
        for ours, ref in zip(lj.slow_params(tx_state), slow_ref[t], strict=True):
            np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=2e-6)


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        hidden = nn.tanh(nn.Dense(8, name="hidden")(x))
        return nn.Dense(3, name="out")(hidden)


def mlp_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.normal(size=(16, 3)).astype(np.float32)
    params = MLP().init(jax.random.key(0), x)["params"]
    loss = lambda p: jnp.mean((MLP().apply({"params": p}, x) - y) ** 2)
    return x, y, params, loss


def test_matches_a_torch_lookahead_around_torch_sgd_momentum():
    torch = pytest.importorskip("torch")
    x, y, params, loss = mlp_problem()
    k, alpha, lr, steps = 4, 0.5, 0.1, 30

    # PyTorch side: Algorithm 1 written from the paper around torch.optim.SGD(momentum=0.9).
    def to_torch(kernel_or_bias, transpose):
        a = np.asarray(kernel_or_bias)
        return torch.nn.Parameter(torch.tensor(a.T.copy() if transpose else a.copy()))

    l0, l1 = torch.nn.Linear(4, 8), torch.nn.Linear(8, 3)
    with torch.no_grad():
        l0.weight.copy_(to_torch(params["hidden"]["kernel"], True))
        l0.bias.copy_(to_torch(params["hidden"]["bias"], False))
        l1.weight.copy_(to_torch(params["out"]["kernel"], True))
        l1.bias.copy_(to_torch(params["out"]["bias"], False))
    torch_params = [l0.weight, l0.bias, l1.weight, l1.bias]
    slow = [p.detach().clone() for p in torch_params]
    opt = torch.optim.SGD(torch_params, lr=lr, momentum=0.9)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for t in range(1, steps + 1):
        opt.zero_grad()
        torch.mean((l1(torch.tanh(l0(xt))) - yt) ** 2).backward()
        opt.step()
        if t % k == 0:
            with torch.no_grad():
                for s, p in zip(slow, torch_params, strict=True):
                    s.add_(alpha * (p - s))
                    p.copy_(s)

    # Torch's SGD momentum (b = mu b + g, p -= lr b) is optax.sgd's trace.
    tx = lj.lookahead(optax.sgd(lr, momentum=0.9), k, alpha)
    history, state = run(tx, params, jax.grad(loss), steps)
    ours = history[-1]
    got = [
        ours["hidden"]["kernel"].T,
        ours["hidden"]["bias"],
        ours["out"]["kernel"].T,
        ours["out"]["bias"],
    ]
    for g, ref in zip(got, torch_params, strict=True):
        np.testing.assert_allclose(g, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    # steps = 30 is not a multiple of k: the slow weights are those of the sync at t = 28.
    slow_ours = lj.slow_params(state)
    slow_got = [
        slow_ours["hidden"]["kernel"].T,
        slow_ours["hidden"]["bias"],
        slow_ours["out"]["kernel"].T,
        slow_ours["out"]["bias"],
    ]
    for g, ref in zip(slow_got, slow, strict=True):  # every leaf of the slow weights
        np.testing.assert_allclose(g, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_params_after_each_sync_equal_optax_lookahead_slow_params():
    _, _, params, loss = mlp_problem()
    k, alpha = 3, 0.5
    inner = optax.adam(1e-2)
    ours_hist, _ = run(lj.lookahead(inner, k, alpha), params, jax.grad(loss), 4 * k)

    ref_tx = optax.lookahead(inner, sync_period=k, slow_step_size=alpha)
    pair = optax.LookaheadParams(fast=params, slow=params)
    ref_state = ref_tx.init(pair)
    for t in range(1, 4 * k + 1):
        updates, ref_state = ref_tx.update(jax.grad(loss)(pair.fast), ref_state, pair)
        pair = optax.apply_updates(pair, updates)
        if t % k == 0:
            chex.assert_trees_all_close(ours_hist[t - 1], pair.slow, rtol=1e-5, atol=1e-6)


def test_slow_step_size_schedule_is_evaluated_on_the_sync_count():
    # alpha = 1 at the first sync, 0.5 at the second: x goes 3 -> 1 (sync, alpha 1) -> -1 -> sync
    # halfway between 1 and -1 = 0.
    schedule = lambda n: jnp.where(n == 0, 1.0, 0.5)
    tx = lj.lookahead(toy_optimizer(-1.0), sync_period=1, slow_step_size=schedule)
    history, _ = run(tx, PARAMS, constant_grads, 2)
    chex.assert_trees_all_close([h["x"] for h in history], [1.0, 0.0])


def test_reset_inner_state_reinitialises_at_each_sync_only():
    inner = toy_optimizer(-0.5)
    for reset in (False, True):
        tx = lj.lookahead(inner, sync_period=3, slow_step_size=0.5, reset_inner_state=reset)
        _, state = run(tx, PARAMS, constant_grads, 3)
        expected = 0.0 if reset else 3 * 2.0
        chex.assert_trees_all_close(state.inner_state.grad_sum["x"], expected)
        _, state = run(tx, PARAMS, constant_grads, 4)  # one step past the sync
        chex.assert_trees_all_close(state.inner_state.grad_sum["x"], 2.0 if reset else 8.0)


# -- Composition ---------------------------------------------------------------------------------


def quadratic_grads(p):
    return jax.tree.map(lambda x: 2.0 * x, p)


def test_chain_as_inner():
    inner = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    _history, state = run(lj.lookahead(inner), PARAMS, quadratic_grads, 100)
    chex.assert_trees_all_close(lj.slow_params(state), {"x": 0.0, "y": 0.0}, atol=0.05)
    assert isinstance(state.inner_state[0], optax.ClipByGlobalNormState)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda tx: optax.chain(optax.clip(10.0), tx),
        lambda tx: optax.apply_if_finite(tx, max_consecutive_errors=3),
        lambda tx: optax.MultiSteps(tx, every_k_schedule=1).gradient_transformation(),
        lambda tx: optax.masked(tx, {"x": True, "y": True}),
        lambda tx: lj.lookahead(tx, sync_period=2, slow_layout="tree"),
    ],
    ids=["chain", "apply_if_finite", "MultiSteps", "masked", "lookahead"],
)
def test_slow_params_found_inside_wrappers(wrap):
    tx = wrap(lj.lookahead(toy_optimizer(-0.5), sync_period=3, slow_step_size=1 / 3))
    _, state = run(tx, PARAMS, constant_grads, 3)
    slow = lj.slow_params(state)
    if isinstance(state, lj.LookaheadState):  # lookahead(lookahead(...)): the outermost
        assert slow is state.slow
    else:
        chex.assert_trees_all_close(slow, {"x": 2.0, "y": -2.0})


def test_inject_hyperparams_changes_the_slow_step_size_in_the_state():
    tx = optax.inject_hyperparams(lj.lookahead, static_args=("sync_period",))(
        inner=toy_optimizer(-1.0), sync_period=1, slow_step_size=1.0
    )
    state = tx.init(PARAMS)
    state.hyperparams["slow_step_size"] = jnp.asarray(0.5)
    _updates, state = jax.jit(tx.update)(GRADS, state, PARAMS)
    chex.assert_trees_all_close(lj.slow_params(state), {"x": 2.0, "y": -2.0})


def test_masked_slow_params_filled_from_params():
    tx = optax.masked(lj.lookahead(toy_optimizer(-1.0), 1, 0.5), {"x": True, "y": False})
    history, state = run(tx, PARAMS, constant_grads, 1)
    filled = lj.slow_params(state, history[-1])
    # optax.masked passes the unselected gradient through: y moved by -2 outside Lookahead.
    chex.assert_trees_all_close(filled, {"x": 2.0, "y": -5.0})
    assert isinstance(lj.slow_params(state)["y"], optax.MaskedNode)


def test_nested_lookahead():
    tx = lj.lookahead(lj.lookahead(toy_optimizer(-1.0), 2, 0.5), 2, 0.5)
    history, state = run(tx, PARAMS, constant_grads, 4)
    # Inner: 3 -> 1 -> -1, syncs to 1; the outer syncs (t=2) to 3 + 0.5 (1 - 3) = 2. Then 0, -2;
    # the inner sync goes from its own slow weight 1 to 1 + 0.5 (-2 - 1) = -0.5, and the outer
    # from 2 to 2 + 0.5 (-0.5 - 2) = 0.75.
    chex.assert_trees_all_close([h["x"] for h in history], [1.0, 2.0, 0.0, 0.75])
    chex.assert_trees_all_close(lj.slow_params(state)["x"], 0.75)
    chex.assert_trees_all_close(lj.slow_params(state.inner_state)["x"], -0.5)


def test_multisteps_counts_applied_steps_only():
    k = 3
    tx = optax.MultiSteps(lj.lookahead(toy_optimizer(-1.0), k, 0.5), every_k_schedule=2)
    _, state = run(tx, PARAMS, constant_grads, 2 * k)  # 2k micro-batches = k applied steps
    inner_la = state.inner_opt_state
    assert int(inner_la.count) == k
    chex.assert_trees_all_close(lj.slow_params(state), {"x": 0.0, "y": 0.0})  # 3 + .5(-3 - 3)


def test_apply_if_finite_skips_nonfinite_steps_entirely():
    tx = optax.apply_if_finite(lj.lookahead(optax.adam(0.1), 2, 0.5), max_consecutive_errors=5)
    state = tx.init(PARAMS)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    params = PARAMS
    updates, state = step(GRADS, state, params)
    params = optax.apply_updates(params, updates)
    before_params, before_state = params, state.inner_state
    bad = {"x": jnp.array(jnp.nan), "y": jnp.array(jnp.inf)}
    updates, state = step(bad, state, params)
    params = optax.apply_updates(params, updates)
    chex.assert_trees_all_equal(params, before_params)
    chex.assert_trees_all_equal(state.inner_state, before_state)
    assert int(state.notfinite_count) == 1
    updates, state = step(GRADS, state, params)  # the next good step is the sync
    params = optax.apply_updates(params, updates)
    chex.assert_tree_all_finite((params, lj.slow_params(state)))
    assert int(state.inner_state.count) == 2
    chex.assert_trees_all_equal(params, lj.slow_params(state))


def test_extra_args_are_forwarded_to_the_inner_transformation():
    seen = {}

    def init_fn(params):
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, value=None, **extra):
        seen["value"], seen["extra"] = value, extra
        return updates, state

    inner = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    tx = lj.lookahead(inner)
    tx.update(GRADS, tx.init(PARAMS), PARAMS, value=1.5, other="z")
    assert seen == {"value": 1.5, "extra": {"other": "z"}}
    # A plain GradientTransformation ignores them rather than failing.
    plain = lj.lookahead(optax.sgd(0.1))
    plain.update(GRADS, plain.init(PARAMS), PARAMS, value=1.5)


def rosenbrock(p):
    return (1.0 - p["a"]) ** 2 + 100.0 * (p["b"] - p["a"] ** 2) ** 2


def test_lookahead_lbfgs_minimises_rosenbrock():
    # The value and gradient are computed afresh: optax.value_and_grad_from_state would reuse
    # the line search's cached value, which is stale right after a sync moved the params.
    tx = lj.lookahead(optax.lbfgs(), sync_period=5, slow_step_size=0.5)
    params = {"a": jnp.array(-1.2), "b": jnp.array(1.0)}
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(rosenbrock)(params)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=rosenbrock)
        return optax.apply_updates(params, updates), state

    for _ in range(200):
        params, state = step(params, state)
    chex.assert_trees_all_close(lj.slow_params(state), {"a": 1.0, "b": 1.0}, atol=1e-3)
    assert float(rosenbrock(params)) < 1e-6


# -- Flax ----------------------------------------------------------------------------------------


def test_flax_train_state_unchanged():
    _x, _y, params, loss = mlp_problem()
    state = train_state.TrainState.create(
        apply_fn=MLP().apply, params=params, tx=lj.lookahead(optax.adam(1e-2), 5, 0.5)
    )

    @jax.jit
    def train_step(state):
        grads = jax.grad(loss)(state.params)
        return state.apply_gradients(grads=grads)

    first = float(loss(state.params))
    for _ in range(50):
        state = train_step(state)
    assert int(state.step) == 50
    chex.assert_trees_all_close(lj.slow_params(state.opt_state), state.params)  # t=50 syncs
    assert float(loss(lj.slow_params(state.opt_state))) < 0.75 * first


@pytest.mark.parametrize("layout", ["tree", "flat"])
def test_flax_nnx_optimizer_unchanged(layout):
    # nnx.Optimizer inits on Param variables and updates on plain arrays: the flat layout must not
    # take its tree structure from the params it is updated with.
    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    tx = lj.lookahead(optax.sgd(0.05), 4, 0.5, slow_layout=layout)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32)
    loss = lambda m: jnp.mean(m(x) ** 2)

    @nnx.jit
    def train_step(model, optimizer):
        loss_value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return loss_value

    first = float(train_step(model, optimizer))
    for _ in range(7):
        last = float(train_step(model, optimizer))
    assert last < first
    slow = lj.slow_params(optimizer.opt_state)
    chex.assert_trees_all_close(slow["kernel"][...], model.kernel[...])  # t = 8 syncs


# -- Transformations of the step: jit with donation, vmap ----------------------------------------


def test_jit_with_donated_params_and_state():
    _, _, params, loss = mlp_problem()
    tx = lj.lookahead(optax.adamw(1e-2), 3, 0.5)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    expected, _ = run(tx, params, jax.grad(loss), 7)
    params = jax.tree.map(jnp.copy, params)
    state = tx.init(params)
    for _ in range(7):
        params, state = step(params, state)
    chex.assert_trees_all_equal(params, expected[-1])
    assert step._cache_size() == 1  # no recompilation after the first call


def test_vmap_over_independent_models():
    tx = lj.lookahead(optax.sgd(0.1, momentum=0.5), 3, 0.5)
    batch = {"w": jnp.linspace(-2.0, 2.0, 6).reshape(3, 2)}

    def train(params):
        state = tx.init(params)

        def body(carry, _):
            params, state = carry
            updates, state = tx.update(quadratic_grads(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(body, (params, state), length=7)
        return params, lj.slow_params(state)

    got = jax.jit(jax.vmap(train))(batch)
    for i in range(3):
        one = jax.tree.map(lambda x, i=i: x[i], batch)
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], got), train(one), rtol=1e-6)


# -- Precision and long runs ---------------------------------------------------------------------


def test_updates_keep_the_param_dtype_and_slow_dtype_is_honoured():
    params = {"w": jnp.ones(4, jnp.bfloat16)}
    tx = lj.lookahead(optax.sgd(1e-3), 2, 0.5, slow_dtype=jnp.float32)
    state = tx.init(params)
    assert lj.slow_params(state)["w"].dtype == jnp.float32
    updates, state = tx.update(params, state, params)
    assert updates["w"].dtype == jnp.bfloat16
    updates, state = tx.update(params, state, params)
    assert updates["w"].dtype == jnp.bfloat16 and lj.slow_params(state)["w"].dtype == jnp.float32


def test_float32_slow_weights_keep_learning_where_bfloat16_stall():
    # Tiny steps on a weight of 1: the slow step alpha * (theta - phi) ~ 1e-4 is below bfloat16's
    # resolution at 1 (2**-8), so bfloat16 slow weights never move; float32 ones accumulate them.
    # (The fast weights are float32 here so that only the slow-weight precision differs.)
    def final(slow_dtype):
        params = {"w": jnp.ones(3, jnp.float32)}
        tx = lj.lookahead(optax.sgd(1e-4), 2, 0.5, slow_dtype=slow_dtype)
        state = tx.init(params)
        for _ in range(40):
            updates, state = tx.update({"w": jnp.ones(3)}, state, params)
            params = optax.apply_updates(params, updates)
        return lj.slow_params(state)["w"].astype(jnp.float32)

    assert float(final(jnp.bfloat16)[0]) == 1.0
    assert float(final(jnp.float32)[0]) < 1.0 - 1e-3


def test_counter_wraps_without_losing_the_sync_phase():
    k = 7
    tx = lj.lookahead(toy_optimizer(-1.0), k, 1.0)
    state = tx.init(PARAMS)
    wrap_at = (2**31 - 1) // k * k
    state = state._replace(count=jnp.asarray(wrap_at - 2 * k, jnp.int32))
    step = jax.jit(lambda s, p: tx.update(GRADS, s, p))
    params = PARAMS
    syncs = []
    for _ in range(4 * k):
        updates, state = step(state, params)
        params = optax.apply_updates(params, updates)
        syncs.append(bool(jnp.all(lj.slow_params(state)["x"] == params["x"])))
        assert 0 < int(state.count) <= wrap_at
    assert syncs == [(t % k == 0) for t in range(1, 4 * k + 1)]


# -- Checkpointing ------------------------------------------------------------------------------


def orbax_round_trip(tmp_path, tx, params, tree):
    """Saves `tree` with orbax and restores it against the structure of a fresh `tx.init`."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "ckpt", tree)
    with ocp.StandardCheckpointer() as ckpt:
        abstract = jax.tree.map(
            ocp.utils.to_shape_dtype_struct, {"params": params, "opt_state": tx.init(params)}
        )
        return ckpt.restore(tmp_path / "ckpt", abstract)


@pytest.mark.parametrize("phase", range(4))
def test_orbax_resume_at_every_phase_is_bit_identical(tmp_path, phase):
    _, _, params, loss = mlp_problem()
    k, total = 4, 13
    tx = lj.lookahead(optax.adam(1e-2), k, 0.5)

    @jax.jit
    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    p, s = params, tx.init(params)
    stop = k + phase  # t % k == phase at the interruption
    for _ in range(stop):
        p, s = step(p, s)
    restored = orbax_round_trip(tmp_path, tx, params, {"params": p, "opt_state": s})
    assert isinstance(restored["opt_state"], lj.LookaheadState)
    assert int(restored["opt_state"].count) == stop
    rp, rs = restored["params"], restored["opt_state"]
    for _ in range(total - stop):
        rp, rs = step(rp, rs)
        p, s = step(p, s)
    chex.assert_trees_all_equal((rp, rs), (p, s))
    uninterrupted, _ = run(tx, params, jax.grad(loss), total)
    chex.assert_trees_all_equal(rp, uninterrupted[-1])


# -- Memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["tree", "flat", "auto"])
def test_compiled_step_needs_no_temporary_beyond_the_inner_step(layout):
    # 20 leaves of 4 KiB: any leaf-sized temporary (an inner update kept in memory, a copy of the
    # params) would add at least 4 KiB; scalars (the sync flag, alpha) are all we allow.
    params = {f"w{i}": jnp.full((32, 32), float(i)) for i in range(20)}

    inner = optax.adamw(1e-3)
    extra = temp_bytes(lj.lookahead(inner, slow_layout=layout), params) - temp_bytes(inner, params)
    assert extra < 32 * 32 * 4, extra


# -- The flat slow-weight layout ----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["flat", "auto"])
@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("slow_dtype", [None, jnp.float32])
def test_flat_layout_follows_the_tree_layout_bit_for_bit(reset, slow_dtype, layout):
    _, _, params, loss = mlp_problem()
    params = {**params, "scalar": jnp.asarray(0.5), "empty": jnp.zeros((0, 3))}
    if slow_dtype is not None:  # mixed dtypes: bfloat16 params under float32 slow weights
        params["hidden"] = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params["hidden"])
    grad = jax.grad(lambda p: loss({"hidden": p["hidden"], "out": p["out"]}) + p["scalar"] ** 2)
    kwargs = dict(sync_period=3, slow_step_size=0.5, reset_inner_state=reset, slow_dtype=slow_dtype)
    tree_tx = lj.lookahead(optax.adam(1e-2), slow_layout="tree", **kwargs)
    tree_hist, tree_state = run(tree_tx, params, grad, 8)
    flat_tx = lj.lookahead(optax.adam(1e-2), slow_layout=layout, **kwargs)
    flat_hist, flat_state = run(flat_tx, params, grad, 8)
    chex.assert_trees_all_equal(flat_hist, tree_hist)
    assert isinstance(flat_state.slow, FlatSlow) and flat_state.slow.buffer.ndim == 1
    chex.assert_trees_all_equal(lj.slow_params(flat_state), lj.slow_params(tree_state))


def test_flat_layout_with_donation_vmap_and_orbax(tmp_path):
    tx = lj.lookahead(optax.sgd(0.1, momentum=0.5), 3, 0.5, slow_layout="flat")
    params = {"a": jnp.ones((2, 3)), "b": [jnp.full(4, 2.0)]}

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state):
        updates, state = tx.update(quadratic_grads(params), state, params)
        return optax.apply_updates(params, updates), state

    p, s = jax.tree.map(jnp.copy, params), tx.init(params)
    for _ in range(4):
        p, s = step(p, s)
    restored = orbax_round_trip(tmp_path, tx, params, {"params": p, "opt_state": s})
    chex.assert_trees_all_equal(restored["opt_state"].slow.buffer, s.slow.buffer)
    batched = jax.vmap(tx.init)(jax.tree.map(lambda x: jnp.stack([x, -x]), params))
    assert batched.slow.buffer.shape == (2, 10)
    chex.assert_trees_all_equal(
        jax.tree.map(lambda x: x[1], lj.slow_params(batched)), jax.tree.map(jnp.negative, params)
    )


def test_auto_layout_is_flat_on_one_device_where_it_changes_no_number():
    # "auto" decides from static facts only, so eager, jitted and eval_shape inits agree (a
    # checkpoint restores into the structure it was saved from).
    assert jax.device_count() == 1  # the sharded checks cover "auto" on 8 devices (per-param)
    one_dtype = {"a": jnp.ones((3, 2)), "b": [jnp.zeros(4)]}
    mixed = {"a": jnp.ones((3, 2)), "b": [jnp.zeros(4, jnp.bfloat16)]}
    cases = [
        (one_dtype, None, lj.FlatSlow),
        (mixed, jnp.float32, lj.FlatSlow),  # one slow dtype: flat stores it exactly
        (mixed, None, dict),  # flat would widen the bfloat16 slow weights: per-param instead
    ]
    for params, slow_dtype, layout in cases:
        tx = lj.lookahead(optax.adam(1e-3), slow_dtype=slow_dtype)
        states = [tx.init(params), jax.jit(tx.init)(params), jax.eval_shape(tx.init, params)]
        assert {type(s.slow) for s in states} == {layout}, (slow_dtype, layout)
        structures = {jax.tree.structure(s) for s in states}
        assert len(structures) == 1


def test_unknown_layouts_are_rejected():
    with pytest.raises(ValueError, match="slow_layout='flattened'"):
        lj.lookahead(optax.sgd(0.1), slow_layout="flattened")
