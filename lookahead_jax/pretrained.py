"""`pretrained_schedule`: the shipped, meta-trained `LSTMSchedule`s for Adam, with their params.

Two ship: the default (v6), one run that reads only the training loss and its progress, and one
that reads a validation loss, for a two-run recipe (it picks the rates on a validation
split, then the plain inner optimizer replays them over all the rows; `replay_schedule`). Their
params (a few KB each) ship in the package (`lookahead_jax/_data/`); how they were trained is in
`benchmarks/pretrained_train.py` and `benchmarks/validation_feature.py`, and what they are worth,
measured on families they never saw, in the README's evidence section.
"""

import importlib.resources
import json
from typing import Any

import flax.serialization
import jax

from lookahead_jax import checks
from lookahead_jax.lstm_schedule import LSTMSchedule

_NAMES = {False: "pretrained_adam_v6", True: "pretrained_adam_vf"}


def _read(validation: bool, suffix: str) -> bytes:
    name = _NAMES[validation] + suffix
    return importlib.resources.files("lookahead_jax").joinpath("_data", name).read_bytes()


def _validation_flag(caller: str, validation: Any) -> bool:
    if not isinstance(validation, bool):
        raise TypeError(f"{caller}: validation must be True or False, got {validation!r}")
    return validation


def pretrained_info(validation: bool = False) -> dict[str, Any]:
    """How a shipped schedule was meta-trained: families, horizon, base rate, seed, steps.

    Args:
      validation: False for the default schedule, True for the two-run recipe's, which reads a
        validation loss (its ``"validation_split"`` is the fraction of training rows it was
        meta-trained to hold out, its ``"base_lr_multiples"`` the multiples of the base rate
        the recipe's first run is made at, ``"base_lr_search_factor"`` and
        ``"base_lr_search_steps"`` how much further `search_base_rate` may go).

    Example:
      >>> import lookahead_jax as lj
      >>> lj.pretrained_info(validation=True)["validation_split"]
      0.2
    """
    return json.loads(_read(_validation_flag("pretrained_info", validation), ".json"))


def pretrained_schedule(
    horizon: int | None = None, *, base_lr: float | None = None, validation: bool = False
) -> tuple[LSTMSchedule, Any]:
    """The shipped meta-trained schedule for a unit-rate Adam, and its params.

    Meta-trained once on a mixture of task families (small MLP classifiers and a regression,
    with every task's rate randomly 0.3x-3x off and its gradients unchanged, so it learns to
    correct a mis-set base rate from how training goes),
    to minimise each task's held-out loss after training. Pass the number of training steps as
    ``horizon`` when you know it (the schedule then reads its progress t/T); with ``None`` it
    runs without (it was meta-trained both ways).

    With ``validation=True`` it is the schedule of the two-run recipe instead: a schedule that
    also reads the loss on rows the run does not train on (each update then needs
    ``val_loss=``). Run it with `pretrained_info(validation=True)["validation_split"]` (20 %)
    of the training rows held out, recording `current_learning_rate` after every step, at 1/3x,
    1x and 3x of the base rate, and further out while the best is at an end
    (`search_base_rate` makes these first runs: 3 to 5, about 4 on average); keep the run whose
    held-out loss ends lowest, and train again from the same initial params on all the rows with
    `replay_schedule` of its rates around the same unit-rate Adam (`replay_schedule`'s docstring
    has the whole recipe). `meta.protocol.final_metrics` on a `meta.ReplayedFamily` runs the two
    runs at one rate, and `meta.protocol.pick_by_validation` keeps the best of several. Where the
    extra runs are affordable it is the recommended recipe, decided by rules fixed before two
    suites of families nothing had used ran: picking among 1/3x, 1x and 3x was 0.94x the two
    runs at the base rate alone on the tenth; searching further was 0.94x that pick on the
    eleventh, 0.57x Adam's test loss at 1e-3, 0.62x Schedule-Free AdamW's at its defaults, 0.92x
    the default schedule's, and 1.25x that of warmup + cosine tuned on each target (1.3-3 %
    worse than the pick in four cells of seven, 15-28 % better where the task wanted a larger
    rate); it changed by under 10 % over 1/3x-3x of the base rate in 5 cells of 7. On the cells
    the earlier versions were developed on, the pick and the search were level with the default,
    and worse on the smallest tables (wine and iris, 90-100 training rows, where the search did
    5-18 % worse than the pick). The README's evidence section has the tables.
    `pretrained_schedule()` (one run, no held-out rows) stays the default.

    Args:
      horizon: the number of training steps, or None if unknown.
      base_lr: the schedule's base rate (default `pretrained_info()["base_lr"]`: the rate it
        was meta-trained with, times the multiple calibrated on held-out families; the
        candidate's default is the same rate); its rates stay within 0.01x-10x of it.
      validation: False (default) for the one-run schedule; True for the two-run recipe's.

    Returns:
      ``(schedule, params)``, to pass to `learned_schedule` around ``optax.adam(1.0)`` (or
      inside `lookahead`).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import lookahead_jax as lj
      >>> tx = lj.learned_schedule(
      ...     optax.adam(1.0), *lj.pretrained_schedule(horizon=1000))
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.ones(3)}
      >>> updates, state = tx.update(grads, state, params, value=jnp.float32(1.0))
      >>> float(lj.current_learning_rate(state)) > 0
      True
    """
    validation = _validation_flag("pretrained_schedule", validation)
    if horizon is not None:
        horizon = checks.integer("pretrained_schedule", "horizon", horizon, 1)
    info = pretrained_info(validation)
    if base_lr is None:
        base_lr = info["base_lr"]
    base_lr = checks.positive_finite("pretrained_schedule", "base_lr", base_lr)
    schedule = LSTMSchedule(
        base_lr=base_lr,
        hidden_size=info["hidden_size"],
        progress_features=True,
        horizon=horizon,
        validation_features=validation,
    )
    template = schedule.init_params(jax.random.key(0))
    return schedule, flax.serialization.from_bytes(template, _read(validation, ".msgpack"))
