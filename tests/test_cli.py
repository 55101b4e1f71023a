"""End-to-end tests of the `lookahead-jax` command, run as a user runs it: in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs the command as a user would. Runs that write to the default --out get a `cwd`."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "lookahead_jax.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "lookahead-jax"
    assert script.exists(), "pip install did not create the lookahead-jax console script"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "compare" in proc.stdout


def test_compare_json_results_file_and_plot(tmp_path):
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
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left over


def test_compare_resume_reaches_the_uninterrupted_result(tmp_path):
    common = ["compare", "--seeds", "0", "1", "--optimizers", "optax.adam", "--json", "--quiet"]
    common += ["--checkpoint-every", "2"]
    full = json.loads(cli(*common, "--epochs", "5", "--out", str(tmp_path / "a")).stdout)
    cli(*common, "--epochs", "2", "--out", str(tmp_path / "b"))  # "interrupted" after epoch 2
    resumed = json.loads(
        cli(*common, "--epochs", "5", "--resume", "--out", str(tmp_path / "b")).stdout
    )
    for a, b in zip(full["runs"], resumed["runs"], strict=True):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert a[key] == b[key], key  # bit-identical, history included


def test_compare_cnn_on_digits(tmp_path):
    report = json.loads(
        cli(
            "compare",
            "--model",
            "cnn",
            "--epochs",
            "2",
            "--seeds",
            "0",
            "--lookahead",
            "on",
            "--optimizers",
            "optax.adam:learning_rate=0.01",
            "--json",
            "--out",
            str(tmp_path),
        ).stdout
    )
    assert report["model"] == "cnn"
    assert report["runs"][0]["final_test_accuracy"][0] > 0.5


def test_robustness_sweep(tmp_path):
    report = json.loads(
        cli(
            "robustness",
            "--lrs",
            "0.01",
            "100",
            "--epochs",
            "2",
            "--seeds",
            "0",
            "--json",
            "--out",
            str(tmp_path),
        ).stdout
    )
    losses = report["final_train_loss"]
    assert list(losses) == ["optax.sgd", "lookahead(optax.sgd, k=5, alpha=0.5)"]
    for per_lr in losses.values():
        assert len(per_lr) == 2 and len(per_lr[0]) == 1  # [lrs][seeds]
        assert per_lr[0][0] < 2.0  # lr 0.01 learns
    assert (tmp_path / "robustness.png").exists() and (tmp_path / "results.json").exists()


def test_compare_prints_a_table_with_progress(tmp_path):
    proc = cli(
        "compare", "--epochs", "2", "--seeds", "0", "--optimizers", "optax.adamw", cwd=tmp_path
    )
    assert (tmp_path / "runs" / "compare" / "results.json").exists()  # the default --out
    assert "lookahead(optax.adamw)" in proc.stdout
    assert "test accuracy" in proc.stdout and "±" in proc.stdout
    assert "2/2" in proc.stdout + proc.stderr  # the progress bar reached the end


def test_compare_quiet_has_no_progress(tmp_path):
    proc = cli(
        "compare", "--epochs", "1", "--seeds", "0", "--lookahead", "on", "--quiet", cwd=tmp_path
    )
    assert "1/1" not in proc.stdout + proc.stderr
    assert "lookahead(optax.adam)" in proc.stdout and "optax.sgd " not in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--optimizers", "nadam"], "unknown optimizer 'nadam'; choose from sgd, adam"),
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


def test_bench_prints_rows_with_ratios():
    report = json.loads(cli("bench", "--suites", "lookahead", "--quick", "--json").stdout)
    variants = {(r["shape"], r["variant"]): r for r in report["rows"]}
    assert len(variants) == 12  # 2 shapes x (4 variants + 2 speed-up rows)
    for (_, variant), row in variants.items():
        if variant == "lj.lookahead(adamw)":
            assert row["baseline"] == "optax.adamw" and row["ratio"] > 0
            assert row["median_ms"] > 0


def test_meta_train_then_meta_eval(tmp_path):
    summary = json.loads(
        cli(
            "meta-train",
            "--family",
            "quadratic",
            "--budget",
            "3",
            "--horizon",
            "20",
            "--tune-tasks",
            "4",
            "--num-tasks",
            "4",
            "--out",
            str(tmp_path),
            "--json",
        ).stdout
    )
    assert summary["family"] == "quadratic" and summary["meta_steps"] >= 1
    assert (tmp_path / "meta_training.png").exists() and (tmp_path / "schedule").is_dir()
    report = json.loads(
        cli("meta-eval", str(tmp_path), "--heldout", "6", "--tune-tasks", "4", "--json").stdout
    )
    assert set(report["final_loss"]) == {"learned", "untrained", "best_constant", "cosine"}
    assert report["num_heldout_tasks"] == 6 and report["horizon"] == 20
    # The untrained schedule is the tuned constant, exactly.
    assert report["final_loss"]["untrained"] == report["final_loss"]["best_constant"]
    assert (tmp_path / "eval" / "comparison.png").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["meta-eval", "/nonexistent"], "is not a meta-train output folder"),
        (["meta-train", "--horizon", "10", "--unroll-length", "3"], "must divide --horizon"),
        (["meta-train", "--family", "mnist"], "invalid choice: 'mnist'"),
        (["robustness", "--lrs", "0"], "expected a positive number, got '0'"),
    ],
)
def test_other_subcommands_bad_input(args, needle):
    proc = cli(*args, check=False)
    assert proc.returncode == 2 and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_without_its_extra_the_command_says_what_to_install():
    # `pip install lookahead-jax` without [cli]: simulate missing packages (None in sys.modules
    # makes them unimportable), as the console script would run. (rich comes with flax.)
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = sys.modules['matplotlib'] = None\n"
        "from lookahead_jax.cli import main\n"
        "sys.exit(main(['compare']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "lookahead-jax: the command line needs its extra (scikit-learn, matplotlib not "
        'installed): pip install "lookahead-jax[cli]"'
    ]
