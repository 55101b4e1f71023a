"""Sharding checks run on 8 host CPU devices; `tests/test_sharding.py` runs this file.

The device count is an XLA flag read when jax starts, so it must be set before jax is imported and
these checks cannot run in the pytest process. Usage: `python sharded_checks.py [CHECK ...]`; the
last line of stdout is a JSON object mapping each check to "ok" or its traceback.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import functools
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import lookahead_jax as lj
from lookahead_jax import LSTMSchedule, learned_schedule, optimizers
from lookahead_jax.averaging import average

jax.config.update("jax_numpy_rank_promotion", "raise")
# float64 so that the reduction order of a sharded batch mean (~1e-16) cannot be amplified by
# Adam-type normalisation into a visible difference from the one-device run.
jax.config.update("jax_enable_x64", True)

STEPS = 4  # two Lookahead syncs at sync_period=2
CHECKS: dict[str, Callable[[], None]] = {}


def check(fn: Callable[[], None]) -> Callable[[], None]:
    CHECKS[fn.__name__] = fn
    return fn


# -- The model and the layouts ------------------------------------------------------------------


def make_problem(dtype=jnp.float64):
    """A 2-layer MLP: leaves of several ranks, one scalar and one leaf no mesh axis divides."""
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.normal(size=(16, 32)) / 4,
        "b1": rng.normal(size=(32,)) / 10,
        "w2": rng.normal(size=(32, 8)) / 6,
        "b2": rng.normal(size=(8,)) / 10,
        "odd": rng.normal(size=(3,)),
        "scale": np.array(1.5),
    }
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    x = jnp.asarray(rng.normal(size=(64, 16)), jnp.float64)
    y = jnp.asarray(rng.normal(size=(64, 8)), jnp.float64)
    return params, x, y


def loss_fn(params, x, y, gather=lambda p: p):
    """`gather` all-gathers FSDP-sharded weights before use (the identity on one device)."""
    p = {k: gather(v).astype(jnp.float64) for k, v in params.items()}
    h = jnp.tanh(x @ p["w1"] + p["b1"][None, :])
    out = (h @ p["w2"] + p["b2"][None, :]) * p["scale"] + jnp.sum(p["odd"] ** 2)
    return jnp.mean((out - y) ** 2)


def param_specs(params, layout, axis):
    """FSDP: each leaf sharded along its first dim that the axis divides; data-parallel: none."""

    def spec(p):
        if layout == "fsdp":
            for d, n in enumerate(p.shape):
                if n % 8 == 0:
                    return P(*([None] * d), axis)
        return P()

    return jax.tree.map(spec, params)


def make_mesh(axis_type):
    return jax.make_mesh((8,), ("devices",), axis_types=(axis_type,))


def gather_fn(mesh, axis_type):
    if axis_type == AxisType.Explicit:
        return lambda p: jax.sharding.reshard(p, P())
    return lambda p: jax.lax.with_sharding_constraint(p, NamedSharding(mesh, P()))


# -- What every piece of state must satisfy ----------------------------------------------------


def assert_state_follows_params(state, params, expected_copies, where):
    """Every subtree of the state shaped like the params is sharded leaf by leaf as the params;
    every other leaf (counters, a schedule's carry) is replicated over the whole mesh."""
    treedef = jax.tree.structure(params)
    is_copy = lambda x: isinstance(x, dict) and jax.tree.structure(x) == treedef
    nodes = jax.tree.leaves(state, is_leaf=is_copy)
    copies = [n for n in nodes if is_copy(n)]
    assert len(copies) == expected_copies, (where, len(copies), expected_copies)
    for copy in copies:
        for (path, p), s in zip(
            jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(copy), strict=True
        ):
            assert s.shape == p.shape, (where, path)
            assert s.sharding.is_equivalent_to(p.sharding, p.ndim), (
                where,
                jax.tree_util.keystr(path),
                s.sharding,
                p.sharding,
            )
    mesh_devices = set(jax.devices())
    for n in nodes:
        if not is_copy(n):
            assert n.sharding.is_fully_replicated, (where, n.shape, n.sharding)
            assert n.sharding.device_set == mesh_devices, (where, n.shape, n.sharding)


def assert_no_shared_buffers(tree, where):
    """Donating a step's params and state needs a distinct buffer per leaf."""
    seen = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        for shard in leaf.addressable_shards:
            ptr = (shard.device, shard.data.unsafe_buffer_pointer())
            assert ptr not in seen, (where, "shares a buffer", seen.get(ptr), path)
            seen[ptr] = jax.tree_util.keystr(path)


def run_single_device(tx, params, x, y, extra):
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params, **extra(loss))
        return optax.apply_updates(params, updates), state

    for _ in range(STEPS):
        params, state = step(params, state)
    return params, state


def place(params, x, y, mesh, layout):
    shardings = jax.tree.map(
        lambda s: NamedSharding(mesh, s), param_specs(params, layout, "devices")
    )
    data = NamedSharding(mesh, P("devices"))  # the batch is split in both layouts
    # From host copies: device_put may reuse a device-0 buffer as a shard, and the donated step
    # would then delete the caller's one-device arrays.
    params, x, y = jax.tree.map(np.asarray, (params, x, y))
    return jax.device_put(params, shardings), jax.device_put((x, y), data), shardings


def init_with_shardings(tx, params, shardings, mesh):
    """The recipe for any axis type: out_shardings of the state from optax.tree_map_params."""
    state_shardings = optax.tree_map_params(
        tx,
        lambda _, s: s,
        jax.eval_shape(tx.init, params),
        shardings,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )
    return jax.jit(tx.init, out_shardings=state_shardings)(params)


DATA_PARALLEL_TOO = (
    "lookahead_adamw",
    "average_ema_of_lookahead_sgd",
    "lookahead_learned_schedule",
)


def init_follows_params(name):
    """`tx.init` on sharded params, eagerly or jitted, shards the state as the params."""
    factory, copies, _, dtype = TRANSFORMATIONS[name]
    params, x, y = make_problem(dtype)
    cases = [
        (AxisType.Explicit, "eager"),
        (AxisType.Explicit, "jit"),
        (AxisType.Auto, "eager"),
        (AxisType.Auto, "tree_map_params"),
    ]
    failures = []
    for axis_type, init_mode in cases:
        tx, mesh = factory(), make_mesh(axis_type)
        with jax.set_mesh(mesh):
            sharded, _, shardings = place(params, x, y, mesh, "fsdp")
            if init_mode == "eager":
                state = tx.init(sharded)
            elif init_mode == "jit":
                state = jax.jit(tx.init)(sharded)
            else:
                state = init_with_shardings(tx, sharded, shardings, mesh)
            where = f"{axis_type.name}/{init_mode} init"
            for assertion, args in (
                (assert_state_follows_params, (state, sharded, copies, where)),
                (assert_no_shared_buffers, ((sharded, state), where)),
            ):
                try:
                    assertion(*args)
                except AssertionError as e:
                    failures.append(str(e))
    assert not failures, "\n".join(failures)


def run_sharded(tx, params, x, y, extra, layout, axis_type, expected_copies):
    mesh = make_mesh(axis_type)
    gather = gather_fn(mesh, axis_type) if layout == "fsdp" else (lambda p: p)
    where = f"{layout}/{axis_type.name}"
    with jax.set_mesh(mesh):
        params, (x, y), shardings = place(params, x, y, mesh, layout)
        state = init_with_shardings(tx, params, shardings, mesh)

        def step(params, state):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y, gather)
            updates, state = tx.update(grads, state, params, **extra(loss))
            return optax.apply_updates(params, updates), state

        step = jax.jit(step, donate_argnums=(0, 1))
        for t in range(STEPS):
            params, state = step(params, state)
            assert_state_follows_params(state, params, expected_copies, f"{where} step {t}")
            if t == 1:
                compilations = step._cache_size()
        for p, s in zip(jax.tree.leaves(params), jax.tree.leaves(shardings), strict=True):
            assert p.sharding.is_equivalent_to(s, p.ndim), (where, p.sharding, s)
        # Shardings reach a fixed point: no compilation after the second step. (The first step
        # may compile twice where init's PartitionSpec is spelled differently, P('d') against
        # the step's P('d', None), as optax.sgd's momentum is.)
        assert step._cache_size() == compilations, (where, step._cache_size(), compilations)
    return params, state


def train_agrees_with_one_device(name):
    """The jitted, donated train step keeps every shard in place and matches one device."""
    factory, copies, extra, dtype = TRANSFORMATIONS[name]
    params, x, y = make_problem(dtype)
    ref_params, ref_state = run_single_device(factory(), params, x, y, extra)
    tol = {"rtol": 2e-2, "atol": 1e-2} if dtype == jnp.bfloat16 else {"rtol": 1e-9, "atol": 1e-12}
    cases = [("fsdp", AxisType.Explicit), ("fsdp", AxisType.Auto)]
    if name in DATA_PARALLEL_TOO:  # elementwise optimizers on replicated params: nothing new
        cases.append(("dp", AxisType.Explicit))
    for layout, axis_type in cases:
        got_params, got_state = run_sharded(
            factory(), params, x, y, extra, layout, axis_type, copies
        )
        # Only the batch mean and the all-gathers differ from one device (reduction order).
        chex.assert_trees_all_close(jax.device_get(got_params), jax.device_get(ref_params), **tol)
        chex.assert_trees_all_close(jax.device_get(got_state), jax.device_get(ref_state), **tol)


# -- The transformations under test ---------------------------------------------------------------


def no_extra(_loss):
    return {}


def with_value(loss):
    return {"value": loss}


@functools.cache
def _schedule_params():
    schedule = LSTMSchedule(base_lr=0.05, hidden_size=4)
    return schedule, jax.jit(schedule.init_params)(jax.random.key(0))  # once: slow eagerly


# name -> (factory, param copies in the state, extra update args, param dtype)
TRANSFORMATIONS: dict[str, tuple[Callable[[], Any], int, Callable, Any]] = {
    "lookahead_adamw": (
        lambda: lj.lookahead(optimizers.adamw(1e-2), sync_period=2),
        3,
        no_extra,
        jnp.float64,
    ),
    "lookahead_optax_adam_reset_bf16_params_f32_slow": (
        lambda: lj.lookahead(
            optax.adam(1e-2), sync_period=2, reset_inner_state=True, slow_dtype=jnp.float32
        ),
        3,
        no_extra,
        jnp.bfloat16,
    ),
    "sgd_nesterov_wd": (
        lambda: optimizers.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        1,
        no_extra,
        jnp.float64,
    ),
    "adam_amsgrad": (lambda: optimizers.adam(1e-2, amsgrad=True), 3, no_extra, jnp.float64),
    "adamw": (lambda: optimizers.adamw(1e-2), 2, no_extra, jnp.float64),
    "bert_adamw": (
        lambda: optimizers.bert_adamw(1e-2, weight_decay=0.01),
        2,
        no_extra,
        jnp.float64,
    ),
    "rmsprop_centered_momentum": (
        lambda: optimizers.rmsprop(1e-3, momentum=0.5, centered=True),
        3,
        no_extra,
        jnp.float64,
    ),
    "adagrad": (lambda: optimizers.adagrad(0.05, lr_decay=0.01), 1, no_extra, jnp.float64),
    "average_ema_of_lookahead_sgd": (
        lambda: average(lj.lookahead(optax.sgd(0.05, momentum=0.9), 2), decay=0.9),
        3,  # the average, the slow weights, the momentum
        no_extra,
        jnp.float64,
    ),
    "lookahead_learned_schedule": (
        lambda: lj.lookahead(learned_schedule(optax.sgd(1.0), *_schedule_params()), 2),
        1,
        with_value,
        jnp.float64,
    ),
}


for _name in TRANSFORMATIONS:
    for _kind, _fn in (("init", init_follows_params), ("train", train_agrees_with_one_device)):
        CHECKS[f"{_name}:{_kind}"] = lambda n=_name, f=_fn: f(n)


# -- Meta-training: the batch of tasks split across devices -------------------------------------


@check
def meta_gradient_tasks_sharded():
    from lookahead_jax import meta

    family = meta.quadratic_family(dim=2)
    schedule = LSTMSchedule(base_lr=0.05, hidden_size=2)
    inner = optax.sgd(1.0)
    # Jitted set-up: eager dispatch over 8 host devices is slow.
    meta_params = {"schedule": jax.jit(schedule.init_params)(jax.random.key(1))}
    states = jax.jit(
        lambda mp, key: meta.init_slots(
            family,
            schedule,
            inner,
            mp,
            key,
            num_tasks=8,
            horizon=4,
            unroll_length=2,
            random_offsets=False,
        )
    )(meta_params, jax.random.key(2))
    meta_opt = optax.adam(1e-2)

    def meta_step(mp, opt_state, states):
        loss, grads, states = meta.meta_gradient(mp, states, family, schedule, inner, 2)
        updates, opt_state = meta_opt.update(grads, opt_state, mp)
        return optax.apply_updates(mp, updates), opt_state, states, loss

    def run(mp, states, mesh=None):
        opt_state = meta_opt.init(mp)
        if mesh is not None:
            # The caller shards from outside: tasks split over the mesh, meta-params replicated.
            replicated, by_task = NamedSharding(mesh, P()), NamedSharding(mesh, P("tasks"))
            mp, opt_state = jax.device_put((mp, opt_state), replicated)
            states = jax.device_put(states, by_task)
        step = jax.jit(meta_step).lower(mp, opt_state, states).compile()
        if mesh is not None:
            # The per-task work stays local; only the meta-gradient mean is reduced.
            assert "all-reduce" in step.as_text()
            assert "all-gather" not in step.as_text()
        for _ in range(2):
            mp, opt_state, states, loss = step(mp, opt_state, states)
            if mesh is not None:
                for leaf in jax.tree.leaves(states):
                    assert leaf.sharding.is_equivalent_to(by_task, leaf.ndim), leaf.sharding
                for leaf in jax.tree.leaves((mp, loss)):
                    assert leaf.sharding.is_fully_replicated, leaf.sharding
        return mp, states.params, loss

    ref = run(meta_params, states)
    mesh = jax.make_mesh((8,), ("tasks",), axis_types=(AxisType.Auto,))
    got = run(meta_params, states, mesh)
    chex.assert_trees_all_close(jax.device_get(got), jax.device_get(ref), rtol=1e-5, atol=1e-6)


@check
def meta_train_with_a_mesh():
    from lookahead_jax import meta

    family = meta.quadratic_family(dim=2)
    schedule = LSTMSchedule(base_lr=0.05, hidden_size=2)
    kwargs = dict(
        key=jax.random.key(0),
        num_meta_steps=3,
        horizon=4,
        unroll_length=2,
        num_tasks=8,
        random_offsets=False,
    )
    ref = meta.meta_train(family, schedule, optax.sgd(1.0), **kwargs)
    # Both axis types: Explicit is jax.make_mesh's default (the README's snippet), Auto the old.
    for axis_type in (AxisType.Explicit, AxisType.Auto):
        mesh = jax.make_mesh((8,), ("tasks",), axis_types=(axis_type,))
        got = meta.meta_train(family, schedule, optax.sgd(1.0), mesh=mesh, **kwargs)
        for leaf in jax.tree.leaves(got.meta_params):
            assert leaf.sharding.is_fully_replicated, (axis_type, leaf.sharding)
        chex.assert_trees_all_close(got.meta_params, ref.meta_params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.history, ref.history, rtol=1e-5)
    try:
        meta.meta_train(family, schedule, optax.sgd(1.0), mesh=mesh, **{**kwargs, "num_tasks": 6})
    except ValueError as e:
        assert "num_tasks must be a multiple of the mesh axis 'tasks'" in str(e), e
    else:
        raise AssertionError("num_tasks=6 on 8 devices did not raise")


@check
def readme_fsdp_snippet():
    """The README's sharding snippet, run as written (its loss body filled in), on 8 devices."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Scaling out") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    body = (
        "    x, y = batch\n"
        "    h = jnp.tanh(x @ params['w1'] + params['b1'][None])\n"
        "    return jnp.mean((h @ params['w2'] + params['b2'][None] - y) ** 2)\n"
    )
    assert code.count("    ...\n") == 1, "the snippet's loss body placeholder moved"
    code = code.replace("    ...\n", body)
    rng = np.random.default_rng(1)
    params = {
        "w1": jnp.asarray(rng.normal(size=(16, 32)) / 4),
        "b1": jnp.asarray(rng.normal(size=(32,)) / 10),  # sharded: 32 divides by 8
        "w2": jnp.asarray(rng.normal(size=(32, 8)) / 6),
        "b2": jnp.asarray(rng.normal(size=(8,)) / 10),
    }
    batch = (jnp.asarray(rng.normal(size=(16, 16))), jnp.asarray(rng.normal(size=(16, 8))))
    namespace = {"params": params, "batch": batch}
    exec(compile(code, "README.md (sharding snippet)", "exec"), namespace)
    got, shardings = namespace["params"], namespace["param_shardings"]
    for name, leaf in got.items():
        assert leaf.sharding.is_equivalent_to(shardings[name], leaf.ndim), (name, leaf.sharding)
    assert not got["b1"].sharding.is_fully_replicated  # the snippet did shard a bias
    # One step on one device, the same transformation.
    tx = namespace["tx"]

    def loss(p, batch):
        x, y = batch
        h = jnp.tanh(x @ p["w1"] + p["b1"][None])
        return jnp.mean((h @ p["w2"] + p["b2"][None] - y) ** 2)

    updates, _ = tx.update(jax.grad(loss)(params, batch), tx.init(params), params)
    chex.assert_trees_all_close(got, optax.apply_updates(params, updates), rtol=1e-12)


def main(names: list[str]) -> None:
    assert len(jax.devices()) == 8, jax.devices()
    results = {}
    for name in names or list(CHECKS):
        start = time.perf_counter()
        try:
            CHECKS[name]()
            results[name] = "ok"
        except Exception:
            results[name] = traceback.format_exc()
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
