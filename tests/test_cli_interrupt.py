"""Ctrl-C at any point of the command: one line, exit status 130, never a crash, and the
checkpoints written so far resume cleanly (issue 11)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# A small compare run: 6 epochs, a checkpoint after each.
JOB = [
    "compare",
    "--optimizers",
    "optax.sgd",
    "--lookahead",
    "on",
    "--epochs",
    "6",
    "--seeds",
    "0",
    "--hidden",
    "16",
    "--batch-size",
    "128",
    "--checkpoint-every",
    "1",
    "--quiet",
]
REPEATS = 2  # interruptions per point (each run of CI adds its own moments to the last)
RESUMES = 1  # of which resumed to the end (each resume is a whole run)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    # As the console script runs it (its entry point handles SIGINT before the heavy imports),
    # and as from a terminal, with SIGINT at its default action. A suite started in the
    # background (nohup, `cmd &`, some CI runners) has SIGINT ignored, children inherit that,
    # and Python then installs no KeyboardInterrupt handler, so every run would exit 0. A
    # *handled* signal is reset to its default by exec, so SIGINT is handled here while the child
    # starts (a preexec_fn would fork a multithreaded JAX process instead).
    code = "import sys; from lookahead_jax_cli import main; sys.argv[0] = 'lookahead-jax'; "
    code += "sys.exit(main())"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
    finally:
        if previous is not None:  # None: a handler not set from Python, left as it was
            signal.signal(signal.SIGINT, previous)


def wait_for(condition, timeout: float = 120.0, poll: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(poll)
    return False


def interrupt(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def checkpoints(out: Path) -> list[Path]:
    root = out / "checkpoints"
    return [p for p in root.glob("*/*") if p.is_dir()] if root.exists() else []


def assert_clean_interrupt(returncode: int, err: str) -> None:
    assert returncode == 130, (returncode, err)
    assert err.strip().splitlines()[-1] == "lookahead-jax: interrupted", err
    assert "Traceback" not in err and "Segmentation" not in err and "Fatal" not in err, err


def assert_resumes(out: Path, cwd: Path) -> None:
    proc = start([*JOB, "--out", str(out), "--resume", "--json"], cwd)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    (run,) = report["runs"]
    assert len(run["train_loss"][0]) == 6 and report["epochs"] == 6


POINTS = {
    # As soon as the run is set up: imports done, the data loaded, the first compile under way.
    "first_compile": lambda out: (out / "checkpoints" / "run.json").exists(),
    # After the first epoch's checkpoint: mid-training.
    "mid_epoch": lambda out: len(checkpoints(out)) >= 1,
    # While orbax writes a checkpoint (its temporary folder exists), else right after one.
    "checkpoint_write": lambda out: (
        any("tmp" in p.name for p in checkpoints(out)) or len(checkpoints(out)) >= 2
    ),
}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_sigint_exits_130_in_one_line_and_the_run_resumes(point, tmp_path):
    for i in range(REPEATS):
        out = tmp_path / f"run{i}"
        proc = start([*JOB, "--out", str(out)], tmp_path)
        reached = wait_for(lambda out=out, proc=proc: POINTS[point](out) or proc.poll() is not None)
        assert reached and proc.poll() is None, f"the run ended before {point}"
        assert_clean_interrupt(*interrupt(proc))
        if i < RESUMES:
            assert_resumes(out, tmp_path)


def test_sigint_during_startup_imports(tmp_path):
    for delay in (0.05, 0.3, 0.8):
        proc = start([*JOB, "--out", str(tmp_path / "run")], tmp_path)
        time.sleep(delay)
        assert_clean_interrupt(*interrupt(proc))


def test_sigint_during_meta_train(tmp_path):
    for i in range(REPEATS):
        args = ["meta-train", "--family", "quadratic", "--budget", "60", "--horizon", "20"]
        proc = start(
            [*args, "--tune-tasks", "4", "--quiet", "--out", str(tmp_path / f"m{i}")], tmp_path
        )
        time.sleep(1.5 + 0.5 * i)  # from imports through tuning into meta-training
        assert_clean_interrupt(*interrupt(proc))
