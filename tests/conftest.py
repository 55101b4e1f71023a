"""Strict settings for every test, as equinox has: rank promotion raises, warnings are errors.

And no test writes outside its own temporary folder: the checkout is snapshotted when a session
starts and compared when it ends (hypothesis keeps no example database in it either).
"""

import os
import tempfile
from pathlib import Path

import hypothesis
import hypothesis.configuration
import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# Hypothesis's example database and caches go to a temporary folder, not `.hypothesis/` here.
hypothesis.configuration.set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))
hypothesis.settings.register_profile("lookahead_jax", database=None)
hypothesis.settings.load_profile("lookahead_jax")

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


@pytest.fixture(scope="session")
def xla_cache_env(tmp_path_factory) -> dict[str, str]:
    """Environment variables that let subprocesses share XLA's persistent compilation cache.

    The end-to-end tests start the command many times with the same programs, and compiling them
    is most of each run (a 3-epoch `compare`: 16 s cold, 6 s with the cache warm). The cache is
    in this worker's own temporary folder: never shared between xdist workers, whose processes
    could read an entry JAX is still writing (it writes without a lock), nor between sessions.
    """
    return {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla-cache")),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }


@pytest.fixture
def x64():
    """Runs the test with float64 enabled, then restores float32 defaults."""
    with jax.enable_x64(True):
        yield
