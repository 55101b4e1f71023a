"""Two processes joined by `jax.distributed.initialize` on 127.0.0.1 (gloo CPU collectives).

Each process owns 2 host CPU devices; a global mesh spans all 4. `lookahead(adamw)` trains a small
MLP for a few steps with its params FSDP-sharded across both processes and the batch split across
them (`tests/_scripts/distributed_worker.py`), and must reach the params and slow weights of the
same run in this single process. float64 throughout, so the only difference allowed, the order
of the batch reduction, stays at rounding level.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

SCRIPTS = Path(__file__).parent / "_scripts"
sys.path.insert(0, str(SCRIPTS))
import distributed_problem as problem  # noqa: E402

NUM_PROCESSES = 2
TIMEOUT_S = 120  # both processes together; a hang (e.g. a peer that never joins) fails here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(tmp_path: Path) -> list[Path]:
    """Starts the processes, waits for all with one deadline, kills them all on a hang."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    port = free_port()
    outs = [tmp_path / f"process{i}.npz" for i in range(NUM_PROCESSES)]
    worker = [sys.executable, str(SCRIPTS / "distributed_worker.py")]
    procs = [
        subprocess.Popen(
            [*worker, str(i), str(NUM_PROCESSES), str(port), str(outs[i])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(NUM_PROCESSES)
    ]
    deadline = time.monotonic() + TIMEOUT_S
    logs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            logs.append(out)
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        logs = [proc.communicate()[0] for proc in procs]
        pytest.fail(f"distributed run hung for {TIMEOUT_S} s:\n" + "\n".join(logs)[-4000:])
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-4000:]
    return outs


def test_two_processes_reach_the_single_process_params(tmp_path, x64):
    del x64
    outs = run_workers(tmp_path)

    params, x, y = problem.make_problem()
    params = jax.tree.map(jnp.asarray, params)
    ref_params, ref_slow = problem.train(params, jnp.asarray(x), jnp.asarray(y), problem.make_tx())
    ref_params, ref_slow = jax.device_get((ref_params, ref_slow))
    # The run moved the params: equality below is not that of two untouched copies.
    assert np.max(np.abs(ref_params["w1"] - np.asarray(params["w1"]))) > 1e-3

    for out in outs:  # every process gathered the same global result
        with np.load(out) as saved:
            got_params = {k: saved[f"params/{k}"] for k in ref_params}
            got_slow = {k: saved[f"slow/{k}"] for k in ref_slow}
        chex.assert_trees_all_equal_shapes_and_dtypes(got_params, ref_params)
        chex.assert_trees_all_close(got_params, ref_params, rtol=1e-10, atol=1e-12)
        chex.assert_trees_all_close(got_slow, ref_slow, rtol=1e-10, atol=1e-12)
