"""Meta-training learned schedules with `jax.grad` through unrolled training, and evaluating them.

One namespace for the meta-learning toolkit:

- `lookahead_jax.meta.tasks`: the `Task` protocol and built-in, synthetic task families (and
  `classification_family` and `data_regression_family` for a data set of your own);
- `lookahead_jax.meta.unroll`: the unrolled inner loop, truncations and meta-gradients;
- `lookahead_jax.meta.training`: `meta_train`, the meta-training loop;
- `lookahead_jax.meta.evaluation`: loss curves of any transformation on a family;
- `lookahead_jax.meta.protocol`: the evaluation protocol (baselines tuned on checked grids,
  held-out test metrics, per-task log-ratios with bootstrap intervals).

Meta-params are a dict ``{"schedule": schedule_params}``, plus ``"init"`` (the task's initial
params, MAML-style) when ``learn_init=True``.
"""

from lookahead_jax.meta import protocol
from lookahead_jax.meta.evaluation import (
    EvalResult,
    baseline_tx,
    compare,
    evaluate,
    loss_curves,
    mean_final,
    stats,
    task_keys,
    tune,
)
from lookahead_jax.meta.tasks import (
    MLP,
    ReplayedFamily,
    Task,
    TaskFamily,
    classification_family,
    data_regression_family,
    mlp_family,
    quadratic_family,
    rate_scaled_family,
    regression_family,
)
from lookahead_jax.meta.training import MetaTrainResult, meta_train
from lookahead_jax.meta.unroll import (
    LOG_LOSS_CAP,
    OBJECTIVES,
    InnerState,
    MetaParams,
    fresh_state,
    fresh_states,
    init_slots,
    meta_gradient,
    truncation_loss,
    unroll,
    zero_nonfinite,
)

__all__ = [
    "LOG_LOSS_CAP",
    "MLP",
    "OBJECTIVES",
    "EvalResult",
    "InnerState",
    "MetaParams",
    "MetaTrainResult",
    "ReplayedFamily",
    "Task",
    "TaskFamily",
    "baseline_tx",
    "classification_family",
    "compare",
    "data_regression_family",
    "evaluate",
    "fresh_state",
    "fresh_states",
    "init_slots",
    "loss_curves",
    "mean_final",
    "meta_gradient",
    "meta_train",
    "mlp_family",
    "protocol",
    "quadratic_family",
    "rate_scaled_family",
    "regression_family",
    "stats",
    "task_keys",
    "truncation_loss",
    "tune",
    "unroll",
    "zero_nonfinite",
]


def __getattr__(name: str):
    # Moved in 0.2: the digits family needs scikit-learn, so it lives in the application.
    if name == "digits_mlp_family":
        from lookahead_jax._deprecated import moved

        return moved("lookahead_jax.meta.digits_mlp_family", "lookahead_jax.cli.families")
    raise AttributeError(f"module 'lookahead_jax.meta' has no attribute {name!r}")
