"""Deprecated: the task protocol and families moved to `lookahead_jax.meta` in 0.2.

`lookahead_jax.tasks.X` still works for one release, with a `DeprecationWarning`; the digits
family (it needs scikit-learn) moved to the application, `lookahead_jax.cli.families`.
"""

from lookahead_jax._deprecated import module_getattr

__getattr__ = module_getattr(
    "lookahead_jax.tasks",
    {
        **dict.fromkeys(
            (
                "MLP",
                "Task",
                "TaskFamily",
                "classification_family",
                "mlp_family",
                "quadratic_family",
                "regression_family",
            ),
            "lookahead_jax.meta",
        ),
        "digits_mlp_family": "lookahead_jax.cli.families",
    },
)
