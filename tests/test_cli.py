"""End-to-end tests of the `lookahead-jax` command, run as a user runs it: in a subprocess."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def share_compiles(xla_cache_env, monkeypatch):
    """The runs in this file share one compilation cache (see conftest.xla_cache_env)."""
    for name, value in xla_cache_env.items():
        monkeypatch.setenv(name, value)


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


def in_process(args, monkeypatch, capsys, cwd: Path | None = None) -> tuple[int, str, str]:
    """Runs the command's `main(args)` in this process: (exit status, stdout, stderr).

    For what happens before any work (parsing, help, refusals): a subprocess per case would spend
    seconds importing jax for milliseconds of parsing (`test_console_script_is_installed` and
    `test_refusals_in_a_real_process` run some as a user does)."""
    from lookahead_jax import cli as command

    if cwd is not None:
        monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps help to it, as in a pipe
    monkeypatch.setattr(command, "exit_on_interrupt", lambda: None)  # pytest keeps its Ctrl-C
    try:
        status = command.main(list(args))
    except SystemExit as e:  # argparse's refusals, --help and --version
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def refused(args, monkeypatch, capsys, cwd: Path) -> str:
    """Runs `in_process` and returns what it printed to stderr, after checking that it refused
    the input: exit status 2 and one line, no traceback."""
    status, _, err = in_process(args, monkeypatch, capsys, cwd)
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def assert_same_history(report, other):
    """Two `compare --json` reports have bit-identical losses and accuracies, history included."""
    for a, b in zip(report["runs"], other["runs"], strict=True):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert a[key] == b[key], key


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
    assert_same_history(full, resumed)


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
    assert "test accuracy" in proc.stdout
    assert "±" not in proc.stdout  # one seed: its value alone, not "± 0.0000"
    assert "lr 0.001" in proc.stdout  # the effective settings
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
def test_bad_input_is_one_line_exit_2_without_traceback(
    args, needle, tmp_path, monkeypatch, capsys
):
    assert needle in refused(["compare", *args], monkeypatch, capsys, tmp_path)
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_refusals_in_a_real_process(tmp_path):
    """A few refusals as the user meets them: the console script, exit status 2, one line."""
    for args, needle in [
        (["compare", "--optimizers", "nadam"], "unknown optimizer 'nadam'; choose from sgd, adam"),
        (["compare", "--optimizers", "optax.sgd:momentum=-0.5"], "momentum must be >= 0"),
        (["meta-eval", str(tmp_path)], "no settings.json"),
    ]:
        proc = cli(*args, check=False, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_help_has_an_example(monkeypatch, capsys):
    status, out, _ = in_process(["compare", "--help"], monkeypatch, capsys)
    assert status == 0 and "examples:" in out and "lookahead-jax compare --dataset" in out


def bench_in_process(args, monkeypatch, capsys) -> dict:
    """`lookahead-jax bench --quick --json` with `args`, run by `main()` in this process on two
    small trees: the tests check the command's tables, not the machine (the documentation's
    performance page runs the Lookahead suite at full size as it is built)."""
    from lookahead_jax import cli as command
    from lookahead_jax.cli import timing

    monkeypatch.setattr(timing, "SHAPES", {"40 leaves": (40, (8, 8)), "41 leaves": (41, (2, 3))})
    monkeypatch.setattr(command, "exit_on_interrupt", lambda: None)  # pytest keeps its Ctrl-C
    assert command.main(["bench", "--quick", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_prints_rows_with_ratios(monkeypatch, capsys):
    report = bench_in_process(["--suites", "lookahead"], monkeypatch, capsys)
    variants = {(r["shape"], r["variant"]): r for r in report["rows"]}
    assert len(variants) == 12  # 2 shapes x (4 variants + 2 speed-up rows)
    for shape in ("40 leaves", "41 leaves"):
        ms = {v: r["median_ms"] for (s, v), r in variants.items() if s == shape}
        for ours in ("lj.lookahead(adamw)", "lj.lookahead(adamw, tree)", "optax.lookahead(adamw)"):
            row = variants[shape, ours]
            assert row["baseline"] == "optax.adamw" and ms[ours] > 0
            assert row["ratio"] == pytest.approx(ms[ours] / ms["optax.adamw"])
        for ours in ("lookahead(adamw)", "lookahead(adamw, tree)"):
            speedup = variants[shape, f"optax.lookahead / {ours}"]["ratio"]
            assert speedup == pytest.approx(ms["optax.lookahead(adamw)"] / ms[f"lj.{ours}"])


def test_meta_train_then_meta_eval(tmp_path):
    proc = cli(
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
    )
    summary = json.loads(proc.stdout)
    assert summary["family"] == "quadratic"
    # The 3 s budget counts the whole run: tuning and the first compilation alone take longer,
    # so exactly the one meta step that always runs ran, and a warning says so.
    assert summary["meta_steps"] == 1 and summary["budget_s"] == 3
    assert summary["wall_time_s"] > summary["meta_training_s"]
    assert "warning: only 1 meta steps fit in the 3 s budget" in proc.stderr
    assert (tmp_path / "meta_training.png").exists() and (tmp_path / "schedule").is_dir()
    report = json.loads(
        cli("meta-eval", str(tmp_path), "--heldout", "6", "--tune-tasks", "4", "--json").stdout
    )
    baselines = {"warmup+constant", "warmup+cosine", "warmup+linear"}
    assert set(report["methods"]) == {"learned", "untrained"} | baselines
    assert report["num_heldout_tasks"] == 6 and report["horizon"] == 20
    assert set(report["tuning"]) == baselines
    for t in report["tuning"].values():
        assert set(t["where"].values()) <= {"inside", "natural bound", "upper bound", "edge"}
    for b in baselines:
        c = report["comparisons"][f"learned vs {b}"]
        assert c["num_tasks"] + c["ties"] == 6
        assert c["geomean_ci"][0] <= c["geomean_ratio"] <= c["geomean_ci"][1]
    assert (tmp_path / "eval" / "comparison.png").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["meta-eval", "/nonexistent"], "/nonexistent is not a folder"),
        (["meta-train", "--horizon", "10", "--unroll-length", "3"], "must divide --horizon"),
        (["meta-train", "--family", "mnist"], "invalid choice: 'mnist'"),
        (["robustness", "--lrs", "0"], "expected a positive number, got '0'"),
    ],
)
def test_other_subcommands_bad_input(args, needle, tmp_path, monkeypatch, capsys):
    assert needle in refused(args, monkeypatch, capsys, tmp_path)


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


# -- Issue 11: resume, hostile input, strict JSON, fail-fast output folders -----------------------

SMALL = ["--epochs", "2", "--seeds", "0", "--hidden", "8", "--optimizers", "optax.sgd", "--quiet"]


def test_resume_refuses_other_settings_naming_them(tmp_path):
    out = str(tmp_path / "run")
    cli("compare", *SMALL, "--seeds", "0", "1", "--out", out)  # SMALL's --hidden 8 --seeds 0
    proc = cli("compare", *SMALL, "--hidden", "16", "--out", out, "--resume", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"lookahead-jax compare: error: --resume: the run in {out} was started with other "
        "settings: --hidden 8 (now 16); --seeds 0 1 (now 0). Give the same settings, or "
        "another --out"
    ]


def test_resume_refuses_a_shorter_run_and_continues_a_longer_one(tmp_path):
    out = str(tmp_path / "run")
    cli("compare", *SMALL, "--out", out)
    proc = cli("compare", *SMALL[:1], "1", *SMALL[2:], "--out", out, "--resume", check=False)
    assert proc.returncode == 2 and "is for 2 epochs, got --epochs 1" in proc.stderr
    report = json.loads(
        cli("compare", "--epochs", "3", *SMALL[2:], "--out", out, "--resume", "--json").stdout
    )
    assert report["epochs"] == 3 and all(len(r["train_loss"][0]) == 3 for r in report["runs"])


def test_resume_with_nothing_to_resume_says_so(tmp_path, monkeypatch, capsys):
    args = ["compare", *SMALL, "--out", str(tmp_path / "none"), "--resume"]
    assert "nothing to resume in" in refused(args, monkeypatch, capsys, tmp_path)
    assert not (tmp_path / "none").exists()


def test_help_example_resume_is_a_real_resume(tmp_path, monkeypatch, capsys):
    # The --help example, in small: the CNN on digits learns, and the same settings with
    # --resume continue the run.
    _, help_text, _ = in_process(["compare", "--help"], monkeypatch, capsys)
    assert "--model cnn --epochs 10 --out runs/cnn --resume" in help_text
    args = ["compare", "--model", "cnn", "--epochs", "2", "--seeds", "0", "--lookahead", "on"]
    args += ["--optimizers", "optax.adam:learning_rate=0.01", "--json", "--quiet"]
    args += ["--out", str(tmp_path / "cnn")]
    report = json.loads(cli(*args).stdout)
    assert report["model"] == "cnn"
    assert report["runs"][0]["final_test_accuracy"][0] > 0.5  # chance is 0.1
    assert_same_history(report, json.loads(cli(*args, "--resume").stdout))


@pytest.mark.parametrize("kind", ["file", "read_only"])
def test_unwritable_out_fails_before_any_work(tmp_path, kind, monkeypatch, capsys):
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("x")
    else:
        target.mkdir()
        target.chmod(0o500)
        if os.access(target, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: a read-only folder is still writable")
    for args in (["compare", *SMALL], ["meta-train", "--family", "quadratic", "--budget", "600"]):
        start = time.monotonic()
        assert "--out" in refused([*args, "--out", str(target)], monkeypatch, capsys, tmp_path)
        assert time.monotonic() - start < 60  # before the work (meta-train's budget is 600 s)


def test_compare_when_every_run_diverges(tmp_path):
    out = tmp_path / "run"
    args = ["--epochs", "2", "--seeds", "0", "1", "--optimizers", "optax.sgd:learning_rate=1e6"]
    table = cli("compare", *args, "--quiet", "--out", str(out)).stdout
    assert "diverged" in table
    # The results file is what --json prints: strict JSON, no bare NaN.
    text = (out / "results.json").read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    for run in report["runs"]:
        assert run["diverged"] == [True, True]
        assert run["final_train_loss"] == [None, None]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_is_strict_for_a_resumed_finished_run(tmp_path):
    out = str(tmp_path / "run")
    cli("compare", *SMALL, "--out", out)
    stdout = cli("compare", *SMALL, "--out", out, "--resume", "--json").stdout
    assert "NaN" not in stdout
    report = json.loads(stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    run = report["runs"][0]
    assert (
        run["seconds_per_epoch"] is None
        and "resumed a finished run" in (run["seconds_per_epoch_note"])
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["compare", "--seeds", "-1"], "expected a seed in [0, 4294967295], got '-1'"),
        (["compare", "--seeds", str(2**40)], "expected a seed in [0, 4294967295]"),
        (["meta-train", "--seed", "-5"], "expected a seed in [0, 4294967295], got '-5'"),
        (
            ["compare", "--optimizers", "optax.adam:learning_rate=-1e-3"],
            "learning_rate must be >= 0, got learning_rate=-0.001",
        ),
        (["compare", "--optimizers", "optax.sgd:momentum=-0.5"], "momentum must be >= 0"),
        (["compare", "--optimizers", "optax.adam:b1=1.5"], "b1 must be in [0, 1)"),
        (["compare", "--optimizers", "adam:learning_rate=inf"], "learning_rate must be finite"),
        (["meta-eval", ".", "--heldout", "1"], "expected an integer >= 2, got '1'"),
    ],
)
def test_hostile_numbers_get_one_line(args, needle, tmp_path, monkeypatch, capsys):
    assert needle in refused(args, monkeypatch, capsys, tmp_path)


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda d: None, "no settings.json"),
        (lambda d: (d / "settings.json").write_text("{not json"), "is not valid JSON"),
        (lambda d: (d / "settings.json").write_text("{}"), "lacks family, horizon, base_lr"),
        (
            lambda d: (d / "settings.json").write_text(
                json.dumps({"family": "quadratic", "horizon": 5, "base_lr": 0.1, "hidden_size": 4})
            ),
            "has no schedule/ checkpoint",
        ),
    ],
)
def test_meta_eval_on_an_incomplete_folder(tmp_path, setup, needle, monkeypatch, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    setup(folder)
    assert needle in refused(["meta-eval", str(folder)], monkeypatch, capsys, tmp_path)


def test_help_shows_every_default_and_the_version(monkeypatch, capsys):
    for command in ("compare", "robustness", "meta-train", "meta-eval", "bench"):
        status, text, _ = in_process([command, "--help"], monkeypatch, capsys)
        assert status == 0, command
        options = [line for line in text.splitlines() if line.strip().startswith("--")]
        for line in options:
            if line.strip().split()[0] in ("--help", "--json", "--quiet", "--resume", "--quick"):
                continue
            block = text[text.index(line) :].split("\n  -", 1)[0]
            assert "default:" in block, (command, line)
    status, text, _ = in_process(["--version"], monkeypatch, capsys)
    assert status == 0 and text.startswith("lookahead-jax ")


def test_bench_says_when_torch_rows_are_skipped(monkeypatch, capsys):
    report = bench_in_process(["--suites", "optimizers", "--no-torch"], monkeypatch, capsys)
    assert report["note"] == "torch.optim rows skipped (--no-torch)"
    assert not any("torch" in r["variant"] for r in report["rows"]) and report["rows"]


def test_meta_eval_out_is_checked_before_the_evaluation(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "settings.json").write_text(
        json.dumps({"family": "quadratic", "horizon": 5, "base_lr": 0.1, "hidden_size": 4})
    )
    (folder / "schedule").mkdir()
    (tmp_path / "file").write_text("x")
    args = ["meta-eval", str(folder), "--out", str(tmp_path / "file")]
    err = refused(args, monkeypatch, capsys, tmp_path)
    assert "--out" in err and "is a file" in err
