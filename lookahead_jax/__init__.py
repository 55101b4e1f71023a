"""lookahead_jax: Lookahead over any optax transformation, PyTorch-faithful optimizers and
learned learning-rate schedules, in pure JAX."""

from lookahead_jax import meta, schedule_eval, tasks
from lookahead_jax.averaging import AverageState, average, averaged_params, swa_schedule
from lookahead_jax.lookahead import LookaheadState, lookahead, slow_params
from lookahead_jax.lstm_schedule import (
    ExtraArgsTrainState,
    LearnedScheduleState,
    LSTMSchedule,
    ScheduleCarry,
    current_learning_rate,
    learned_schedule,
)
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

__version__ = "0.1.0"

__all__ = [
    "AdagradState",
    "AdamState",
    "AverageState",
    "ExtraArgsTrainState",
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
    "rmsprop",
    "schedule_eval",
    "sgd",
    "slow_params",
    "swa_schedule",
    "tasks",
]
