"""Strict settings for every test, as equinox has: rank promotion raises, warnings are errors.

And no test writes outside its own temporary folder: the checkout is snapshotted when a session
starts and compared when it ends (hypothesis keeps no example database in it either).
"""

import os
import shutil
import tempfile
from pathlib import Path

# The suite is compile-bound (most tests compile a few small programs and run them a few steps),
# so it compiles with XLA:CPU's backend optimisation off: the whole suite took 725-772 s against
# 949 s on 2 cores, all passing either way (2026-12-07). The flag sets how hard the CPU backend
# optimises the code it generates; it moves float rounding in the last bits, as another CPU
# does, which every test's tolerance allows. The default stays covered: the sharded and
# multi-process checks start their subprocesses without XLA_FLAGS (float64 comparisons with
# one-device runs of every transformation), and the docs' live benchmark page runs with it.
# Set before jax reads it (at its first computation); the end-to-end tests' subprocesses
# inherit it. A level the caller set in XLA_FLAGS is kept.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import hypothesis
import hypothesis.configuration
import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# Hypothesis's example database and caches go to a temporary folder, not `.hypothesis/` here.
hypothesis.configuration.set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))
hypothesis.settings.register_profile("lookahead_jax", database=None)
hypothesis.settings.load_profile("lookahead_jax")

# The subprocess scripts are not tests, and --doctest-modules would import them into a worker,
# where their module-level settings (x64, a device count) would change every later test.
collect_ignore = ["_scripts"]

ROOT = Path(__file__).resolve().parent.parent
# What installing and running the tools legitimately leave in a checkout (all git-ignored).
_TOOL_DIRS = {
    ".git",
    ".venv",
    ".venv-lean",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "_build",
}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _TOOL_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except FileNotFoundError:  # removed while we walked
                continue
            files[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return files


@pytest.fixture(scope="session", autouse=True)
def checkout_is_left_unchanged():
    """Fails the session if any test created, changed or removed a file in the checkout."""
    before = _snapshot(ROOT)
    yield
    after = _snapshot(ROOT)
    changed = sorted({p for p in before.keys() | after.keys() if before.get(p) != after.get(p)})
    assert not changed, f"tests wrote into the checkout (use tmp_path): {changed[:20]}"


# XLA's persistent compilation cache, in a temporary folder of this process's own (each xdist
# worker has one): the tests compile many programs another test already compiled (the same
# optimizer step, the same meta-gradient at other values), and each is compiled once per worker
# instead of once per test (about 15 % of the suite's time). Set before anything compiles: JAX
# decides at its first compilation whether the cache is used. Never shared between processes
# that could run at the same time: JAX writes an entry without a lock, so another process could
# read half of it.
_XLA_CACHE = tempfile.mkdtemp(prefix="xla-cache-")
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    shutil.rmtree(_XLA_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def xla_cache_env() -> dict[str, str]:
    """Environment variables that let subprocesses share this worker's compilation cache.

    The end-to-end tests start the command many times with the same programs, and compiling them
    is most of each run (a 3-epoch `compare`: 16 s cold, 6 s with the cache warm). Only for
    subprocesses that run one at a time while this worker waits for them, and run to the end: a
    process killed while it writes an entry would leave half of it for the next to read.
    """
    return {
        "JAX_COMPILATION_CACHE_DIR": _XLA_CACHE,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


@pytest.fixture
def x64():
    """Runs the test with float64 enabled, then restores float32 defaults."""
    with jax.enable_x64(True):
        yield
