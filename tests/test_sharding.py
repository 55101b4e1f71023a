"""Sharded training on 8 host CPU devices: FSDP-style and data-parallel layouts over a Mesh.

The checks live in `tests/_scripts/sharded_checks.py`, run once in a subprocess (the device count
is an XLA flag that must be set before jax starts), at XLA's default optimisation level (the
subprocess starts without the suite's XLA_FLAGS). For each transformation:

- `<name>:init`: `tx.init` on FSDP-sharded params, eagerly and jitted, under Explicit and Auto mesh
  axes, gives every state leaf that mirrors a param that param's sharding, replicates the rest
  (counters), and gives each leaf its own buffer (so the step can be donated).
- `<name>:train`: from a state placed by `optax.tree_map_params`, the jitted, donated train step
  keeps every param and state leaf on its sharding for several steps (Lookahead syncs included),
  compiles no more after the second step, and matches a one-device run (float64, so only the
  reduction order of the batch mean differs).

`readme_fsdp_snippet`: the README's sharding snippet, run as written, matches a one-device step.

`meta_gradient_tasks_sharded`: meta-training's batch of tasks split across the devices by the
caller (tasks sharded, meta-params replicated), equal to the unsharded meta step.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "_scripts" / "sharded_checks.py"
TIMEOUT_S = 300  # about 60 s of work on 2 idle cores

TRANSFORMATIONS = [
    "lookahead_adamw",
    "lookahead_optax_adam_reset_bf16_params_f32_slow",
    "sgd_nesterov_wd",
    "adam_amsgrad",
    "adamw",
    "bert_adamw",
    "rmsprop_centered_momentum",
    "adagrad",
    "average_ema_of_lookahead_sgd",
    "lookahead_learned_schedule",
]

CHECKS = [
    pytest.param(name, id=name)
    for name in [f"{t}:{kind}" for t in TRANSFORMATIONS for kind in ("init", "train")]
    + ["meta_gradient_tasks_sharded", "meta_train_with_a_mesh", "readme_fsdp_snippet"]
]


def _run_checks():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(f"{SCRIPT.name} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The checks' results, {name: "ok" or what failed}.

    Under pytest-xdist every worker that gets a test of this file sets this fixture up. The
    first runs the subprocess (about a minute of both cores) and leaves its results in the
    session's shared temporary folder; the others wait on a lock and read them.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _run_checks()
    import fcntl  # POSIX only: imported where it is needed

    shared = tmp_path_factory.getbasetemp().parent / "sharded_checks.json"
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not shared.exists():
            shared.write_text(json.dumps(_run_checks()))
        return json.loads(shared.read_text())


def test_every_check_ran(results):
    assert sorted(results) == sorted(p.values[0] for p in CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_sharded(results, name):
    if results[name] != "ok":
        pytest.fail(results[name], pytrace=False)
