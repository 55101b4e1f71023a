"""The library is lean: importing it loads none of the application's dependencies, and names that
moved in 0.2 still work for one release, with a DeprecationWarning."""

import json
import pkgutil
import subprocess
import sys
import warnings

import pytest

import lookahead_jax

# The application's dependencies (the `cli` extra) and the test-only ones.
HEAVY = ("sklearn", "matplotlib", "rich", "orbax", "chex", "torch", "hypothesis")


def library_modules() -> list[str]:
    names = ["lookahead_jax"]
    for info in pkgutil.walk_packages(lookahead_jax.__path__, "lookahead_jax."):
        if not info.name.startswith("lookahead_jax.cli"):
            names.append(info.name)
    return names


def test_the_library_has_the_modules_we_expect():
    modules = library_modules()
    assert "lookahead_jax.meta.training" in modules and "lookahead_jax.checks" in modules
    assert not [m for m in modules if m.startswith("lookahead_jax.cli")]


def top_level_modules_after(*imports: str) -> set[str]:
    """The top-level packages in sys.modules of a fresh interpreter after `imports`."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(imports)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:lookahead_jax", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def test_importing_every_library_module_loads_no_application_dependency():
    ours = top_level_modules_after(*library_modules()) & set(HEAVY)
    # flax.linen itself imports rich (a dependency of flax's); we may load what our runtime
    # dependencies load, nothing more.
    theirs = top_level_modules_after("jax", "optax", "flax.linen", "flax.training.train_state")
    assert ours <= theirs, sorted(ours - theirs)
    assert not ours & {"sklearn", "matplotlib", "orbax", "chex", "torch", "hypothesis"}


def test_version_comes_from_the_installed_metadata():
    import importlib.metadata

    assert lookahead_jax.__version__ == importlib.metadata.version("lookahead-jax")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("lookahead_jax.tasks.quadratic_family", "lookahead_jax.meta.quadratic_family"),
        ("lookahead_jax.tasks.Task", "lookahead_jax.meta.Task"),
        ("lookahead_jax.schedule_eval.tune", "lookahead_jax.meta.tune"),
        ("lookahead_jax.schedule_eval.family_setup", "lookahead_jax.cli.experiment.family_setup"),
        ("lookahead_jax.lstm_schedule.learned_schedule", "lookahead_jax.learned_schedule"),
        ("lookahead_jax.lstm_schedule.ExtraArgsTrainState", "lookahead_jax.ExtraArgsTrainState"),
        (
            "lookahead_jax.meta.digits_mlp_family",
            "lookahead_jax.cli.families.digits_mlp_family",
        ),
    ],
)
def test_moved_names_still_work_with_a_deprecation_warning(old, new):
    import importlib

    def resolve(path):
        module, name = path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    with pytest.warns(DeprecationWarning, match=r"moved to|deprecated"):
        got = resolve(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert got is resolve(new)


def test_top_level_tasks_and_schedule_eval_warn():
    # In a fresh interpreter: once imported, a submodule is an attribute and warns no more.
    code = (
        "import warnings, lookahead_jax\n"
        "for name in ('tasks', 'schedule_eval'):\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        module = getattr(lookahead_jax, name)\n"
        "    assert module.__name__ == 'lookahead_jax.' + name\n"
        "    assert any(issubclass(x.category, DeprecationWarning) for x in w), name\n"
        "    assert name not in lookahead_jax.__all__\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lookahead_jax.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lookahead_jax.meta.nope  # noqa: B018
