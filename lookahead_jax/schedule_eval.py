"""Deprecated: moved in 0.2. The held-out protocol is `lookahead_jax.meta` (`compare`, `tune`,
`baseline_tx`, `stats`, `task_keys`, `mean_final`); our suites' experiment around it is the
application's, `lookahead_jax.cli.experiment`. Old names work for one release, with a warning.
"""

from lookahead_jax._deprecated import module_getattr

__getattr__ = module_getattr(
    "lookahead_jax.schedule_eval",
    dict.fromkeys(
        (
            "TUNE_ROOT",
            "HELDOUT_ROOT",
            "VALID_ROOT",
            "META_ROOT",
            "META_LR",
            "VALIDATE_EVERY",
            "FAMILY_NAMES",
            "family_setup",
            "task_keys",
            "mean_final",
            "baseline_tx",
            "tune",
            "stats",
            "compare",
            "meta_train_family",
            "plot",
        ),
        "lookahead_jax.cli.experiment",
    ),
)
