"""The documentation covers the public API, carries the tested migration table, and ships its
notebooks clean. (The docs build itself, which executes the notebooks, is `docs/build.sh`.)"""

import importlib
import json
import re
from pathlib import Path

import pytest

import lookahead_jax

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_public_name_is_in_the_api_reference():
    api = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. auto\w+:: lookahead_jax\.(\w+)", api, re.M))
    missing = sorted(set(lookahead_jax.__all__) - documented)
    assert not missing, f"add these to docs/api.rst: {missing}"


def test_api_reference_names_exist():
    api = (DOCS / "api.rst").read_text()
    for target in re.findall(r"^\.\. auto\w+:: ([\w.]+)", api, re.M):
        parts = target.split(".")
        # The longest importable prefix is the module; the rest are attributes of it.
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ModuleNotFoundError:
                continue
        for part in parts[i:]:
            obj = getattr(obj, part)  # AttributeError names a stale entry


def test_migration_guide_carries_every_tested_row():
    pytest.importorskip("torch")  # the table's module runs the rows against PyTorch
    from test_torch_migration import markdown_table

    guide = (DOCS / "migration.md").read_text()
    missing = [row for row in markdown_table().splitlines() if row not in guide]
    assert not missing, "docs/migration.md lacks rows of the tested table:\n" + "\n".join(missing)


def test_migration_table_states_our_real_defaults():
    # The argument-by-argument table is hand-written: each `name=default` it shows for a
    # lookahead_jax optimizer must be that function's default.
    import ast
    import inspect

    guide = (DOCS / "migration.md").read_text()
    start = guide.index("The optimizers lookahead_jax implements, argument by argument:")
    guide = guide[start : guide.index("\n\n", guide.index("| --- |", start))]
    calls = re.findall(r"^\| `[\w.]+\(.*?\)`[^|]*\| `(\w+)\((.*?)\)` \|", guide, re.M)
    ours = {"sgd", "adam", "adamw", "bert_adamw", "rmsprop", "adagrad"}
    assert {name for name, _ in calls} >= ours
    for name, args in calls:
        if not hasattr(lookahead_jax, name):
            continue
        signature = inspect.signature(getattr(lookahead_jax, name))
        for arg in args.split(", "):
            if "=" not in arg:
                continue
            key, value = arg.split("=", 1)
            assert signature.parameters[key].default == ast.literal_eval(value), (name, arg)


def test_every_page_and_notebook_is_in_the_toctree():
    index = (DOCS / "index.md").read_text()
    pages = [p.stem for p in DOCS.glob("*.md") if p.stem != "index"] + ["api"]
    pages += [f"notebooks/{nb.stem}" for nb in NOTEBOOKS]
    missing = [page for page in pages if not re.search(rf"^{re.escape(page)}$", index, re.M)]
    assert not missing, f"add to a toctree in docs/index.md: {missing}"


def test_the_issue_notebooks_exist():
    names = {nb.stem for nb in NOTEBOOKS}
    assert {
        "lookahead_quickstart",
        "pytorch_to_lookahead_jax",
        "writing_your_own_optimizer",
        "meta_training_lstm_schedule",
        "swa_and_lbfgs_in_lookahead",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for i, cell in enumerate(notebook["cells"]):
        # nbformat >= 4.5 needs an id on every cell (a warning today, "a hard error in future").
        assert "id" in cell, f"{path.name}: cell {i} has no id; run nbformat's normalize()"
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: cell {i} has outputs; clear them"
            assert cell.get("execution_count") is None, f"{path.name}: cell {i} has a count"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
