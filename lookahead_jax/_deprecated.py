"""Names that moved in 0.2, still reachable for one release with a `DeprecationWarning`."""

import importlib
import warnings
from typing import Any


def moved(old: str, new_module: str, new_name: str | None = None) -> Any:
    """Warns that `old` moved to `new_module` and returns the object from there."""
    name = new_name or old.rsplit(".", 1)[1]
    warnings.warn(
        f"{old} moved to {new_module}.{name} in lookahead-jax 0.2; the old name goes in 0.3 "
        "(see CHANGELOG.md)",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), name)


def module_getattr(old_module: str, moves: dict[str, str]):
    """A module `__getattr__` that forwards each moved name (name -> new module) with a warning."""

    def __getattr__(name: str) -> Any:
        if name in moves:
            return moved(f"{old_module}.{name}", moves[name])
        raise AttributeError(f"module {old_module!r} has no attribute {name!r}")

    return __getattr__
