"""Optimizers by name, as the command line names them: `"adam"`, `"sgd:learning_rate=0.1"`."""

import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import optax


class OptimizerSpec(NamedTuple):
    """A named optimizer factory and the defaults the command line uses for it."""

    factory: Callable[..., optax.GradientTransformation]
    defaults: dict[str, Any]


def _registry() -> dict[str, OptimizerSpec]:
    from lookahead_jax import optimizers as ours

    specs = {
        # Ours, with torch.optim's semantics and defaults (SGD and BERT AdamW have no default lr).
        "sgd": OptimizerSpec(ours.sgd, {"learning_rate": 0.05, "momentum": 0.9}),
        "adam": OptimizerSpec(ours.adam, {}),
        "adamw": OptimizerSpec(ours.adamw, {}),
        "bert_adamw": OptimizerSpec(ours.bert_adamw, {"learning_rate": 1e-3}),
        "rmsprop": OptimizerSpec(ours.rmsprop, {"learning_rate": 1e-3}),
        "adagrad": OptimizerSpec(ours.adagrad, {"learning_rate": 0.05}),
        # optax's, for comparison.
        "optax.adam": OptimizerSpec(optax.adam, {"learning_rate": 1e-3}),
        "optax.adamw": OptimizerSpec(optax.adamw, {"learning_rate": 1e-3}),
        "optax.sgd": OptimizerSpec(optax.sgd, {"learning_rate": 0.05, "momentum": 0.9}),
        "optax.rmsprop": OptimizerSpec(optax.rmsprop, {"learning_rate": 1e-3}),
        "optax.adagrad": OptimizerSpec(optax.adagrad, {"learning_rate": 0.05}),
    }
    return specs


OPTIMIZERS = _registry()


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    raise ValueError(f"expected a number, true, false or none, got {text!r}")


def parse_optimizer(spec: str) -> tuple[str, dict[str, Any]]:
    """Parses `"name"` or `"name:key=value,key=value"` into the name and its hyperparameters.

    Args:
      spec: the text, e.g. `"optax.sgd:learning_rate=0.1,nesterov=true"`.

    Returns:
      `(name, kwargs)`, the defaults of `OPTIMIZERS[name]` updated with the given values.

    Raises:
      ValueError: naming the unknown optimizer (with the accepted names), a malformed pair, or an
        argument the factory does not take (with the ones it takes).

    Example:
      >>> parse_optimizer("optax.sgd:learning_rate=0.1")
      ('optax.sgd', {'learning_rate': 0.1, 'momentum': 0.9})
    """
    name, _, rest = spec.partition(":")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    factory, defaults = OPTIMIZERS[name]
    kwargs = dict(defaults)
    accepted = [p for p in inspect.signature(factory).parameters if p not in ("args", "kwargs")]
    for pair in filter(None, rest.split(",")):
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ValueError(f"optimizer {spec!r}: expected key=value, got {pair!r}")
        if key not in accepted:
            raise ValueError(
                f"optimizer {name!r} takes no argument {key!r}; it takes {', '.join(accepted)}"
            )
        try:
            kwargs[key] = _parse_value(value)
        except ValueError as e:
            raise ValueError(f"optimizer {spec!r}: {key}: {e}") from None
    return name, kwargs


# The same checks for every optimizer name, ours and optax's: optax does not validate its
# arguments (a negative learning rate would silently run gradient ascent).
_NONNEGATIVE = (
    "learning_rate",
    "momentum",
    "weight_decay",
    "eps",
    "eps_root",
    "lr_decay",
    "initial_accumulator_value",
    "dampening",
    "alpha",
)
_UNIT_INTERVAL = ("b1", "b2", "decay")


def check_hyperparameters(name: str, kwargs: dict[str, Any]) -> None:
    """Raises a ValueError naming the first number out of its range (the same rule for all)."""
    from lookahead_jax import checks

    for key, value in kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"optimizer {name!r}: {key} must be finite, got {key}={value!r}")
        if value is None or isinstance(value, bool):
            continue
        if key in _NONNEGATIVE:
            checks.nonnegative(f"optimizer {name!r}", key, value)
        elif key in _UNIT_INTERVAL:
            checks.in_unit_interval(f"optimizer {name!r}", key, value)


def effective_settings(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The learning rate (the factory's default if not given) and every setting given."""
    params = inspect.signature(OPTIMIZERS[name].factory).parameters
    lr = params.get("learning_rate")
    out = {}
    if lr is not None and lr.default is not inspect.Parameter.empty:
        out["learning_rate"] = lr.default
    out.update(kwargs)
    return out


def describe_settings(settings: dict[str, Any]) -> str:
    """`"lr 0.05, momentum 0.9"`: the settings as a table shows them."""
    short = {"learning_rate": "lr"}
    return ", ".join(
        f"{short.get(k, k)} {v:g}" if isinstance(v, float) else f"{short.get(k, k)} {v}"
        for k, v in settings.items()
    )


def build_optimizer(name: str, kwargs: dict[str, Any]) -> optax.GradientTransformation:
    """Builds `OPTIMIZERS[name].factory(**kwargs)`, after `check_hyperparameters`."""
    check_hyperparameters(name, kwargs)
    return OPTIMIZERS[name].factory(**kwargs)
