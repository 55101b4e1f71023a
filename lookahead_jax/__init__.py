"""lookahead_jax: Lookahead over any optax transformation, PyTorch-faithful optimizers and
learned learning-rate schedules, in pure JAX."""

import importlib.metadata

from lookahead_jax import meta
from lookahead_jax.averaging import AverageState, average, averaged_params, swa_schedule
from lookahead_jax.flax_train_state import ExtraArgsTrainState
from lookahead_jax.learned_schedule import (
    LearnedScheduleState,
    current_learning_rate,
    learned_schedule,
)
from lookahead_jax.lookahead import FlatSlow, LookaheadState, lookahead, slow_params
from lookahead_jax.lstm_schedule import LSTMSchedule, ScheduleCarry, stack_schedule_params
from lookahead_jax.optimizers import (
    AdagradState,
    AdamState,
    RmspropState,
    SgdState,
    adagrad,
    adam,
    adamw,
    bert_adamw,
    rmsprop,
    sgd,
)
from lookahead_jax.pretrained import pretrained_info, pretrained_schedule
from lookahead_jax.rate_search import search_base_rate
from lookahead_jax.replay import replay_schedule

try:
    __version__ = importlib.metadata.version("lookahead-jax")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AdagradState",
    "AdamState",
    "AverageState",
    "ExtraArgsTrainState",
    "FlatSlow",
    "LSTMSchedule",
    "LearnedScheduleState",
    "LookaheadState",
    "RmspropState",
    "ScheduleCarry",
    "SgdState",
    "adagrad",
    "adam",
    "adamw",
    "average",
    "averaged_params",
    "bert_adamw",
    "current_learning_rate",
    "learned_schedule",
    "lookahead",
    "meta",
    "pretrained_info",
    "pretrained_schedule",
    "replay_schedule",
    "rmsprop",
    "search_base_rate",
    "sgd",
    "slow_params",
    "stack_schedule_params",
    "swa_schedule",
]


def __getattr__(name: str):
    # `lj.tasks` and `lj.schedule_eval` moved in 0.2 (see CHANGELOG.md): one release of warnings.
    if name in ("tasks", "schedule_eval"):
        import importlib
        import warnings

        warnings.warn(
            f"lookahead_jax.{name} is deprecated since 0.2: use lookahead_jax.meta (the digits "
            "family and our suites' experiment moved to lookahead_jax.cli)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(f"lookahead_jax.{name}")
    raise AttributeError(f"module 'lookahead_jax' has no attribute {name!r}")
