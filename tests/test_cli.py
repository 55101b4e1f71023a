"""End-to-end tests of the `lookahead-jax` command, run as a user runs it: in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "lookahead_jax.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "lookahead-jax"
    assert script.exists(), "pip install did not create the lookahead-jax console script"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "compare" in proc.stdout


def test_compare_json_and_results_file(tmp_path):
    out = tmp_path / "run"
    proc = cli("compare", "--epochs", "3", "--seeds", "0", "1", "--json", "--out", str(out))
    report = json.loads(proc.stdout)
    names = [r["optimizer"] for r in report["runs"]]
    assert names == ["optax.adam", "lookahead(optax.adam)", "optax.sgd", "lookahead(optax.sgd)"]
    for r in report["runs"]:
        assert len(r["final_test_accuracy"]) == 2  # one per seed
        assert min(r["final_test_accuracy"]) > 0.6  # chance is 0.1; 3 epochs get well past it
        assert len(r["train_loss"][0]) == 3  # per-epoch history
        assert r["train_loss"][0][-1] < r["train_loss"][0][0]
    saved = json.loads((out / "results.json").read_text())
    assert saved == report
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_compare_prints_a_table_with_progress():
    proc = cli("compare", "--epochs", "2", "--seeds", "0", "--optimizers", "optax.adamw")
    assert "lookahead(optax.adamw)" in proc.stdout
    assert "test accuracy" in proc.stdout and "±" in proc.stdout
    assert "2/2" in proc.stdout + proc.stderr  # the progress bar reached the end


def test_compare_quiet_has_no_progress():
    proc = cli("compare", "--epochs", "1", "--seeds", "0", "--lookahead", "on", "--quiet")
    assert "1/1" not in proc.stdout + proc.stderr
    assert "lookahead(optax.adam)" in proc.stdout and "optax.sgd " not in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--optimizers", "nadam"], "unknown optimizer 'nadam'; choose from optax.adam"),
        (["--optimizers", "optax.sgd:lr=0.1"], "takes no argument 'lr'; it takes learning_rate"),
        (["--optimizers", "optax.sgd:learning_rate"], "expected key=value"),
        (["--optimizers", "optax.sgd:learning_rate=fast"], "got 'fast'"),
        (["--dataset", "mnist"], "invalid choice: 'mnist'"),
        (["--epochs", "0"], "expected a positive integer, got '0'"),
        (["--slow-step-size", "1.5"], "expected a number in (0, 1], got '1.5'"),
        (
            ["--batch-size", "100000", "--epochs", "1"],
            "--batch-size must be in [1, 1438] for digits, got 100000",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_without_traceback(args, needle):
    proc = cli("compare", *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_help_has_an_example():
    proc = cli("compare", "--help")
    assert "examples:" in proc.stdout and "lookahead-jax compare --dataset" in proc.stdout
