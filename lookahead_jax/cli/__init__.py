"""The `lookahead-jax` command line: the application built on the library.

Installed with its extra, ``pip install "lookahead-jax[cli]"``: data loading (scikit-learn),
progress and tables (rich), plots (matplotlib) and checkpoints (orbax). One module per subcommand,
each with its `add_parser` and `run`.
"""

import argparse
import importlib.util
import sys
from collections.abc import Sequence

from lookahead_jax.cli._common import Parser, UsageError, exit_on_interrupt

# The extra's packages, by import name and distribution name.
_EXTRA = {
    "sklearn": "scikit-learn",
    "rich": "rich",
    "matplotlib": "matplotlib",
    "orbax": "orbax-checkpoint",
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subparser per subcommand module."""
    import lookahead_jax
    from lookahead_jax.cli import bench, compare, meta_eval, meta_train, robustness

    parser = Parser(
        prog="lookahead-jax",
        description="Lookahead, PyTorch-faithful optimizers and learned schedules in JAX.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {lookahead_jax.__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (compare, robustness, meta_train, meta_eval, bench):
        module.add_parser(sub)
    return parser


def _missing_extra() -> list[str]:
    return [dist for name, dist in _EXTRA.items() if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lookahead-jax` console script."""
    missing = _missing_extra()
    if missing:
        print(
            f"lookahead-jax: the command line needs its extra ({', '.join(missing)} not "
            'installed): pip install "lookahead-jax[cli]"',
            file=sys.stderr,
        )
        return 2
    exit_on_interrupt()  # from here on Ctrl-C is one line and exit 130, at any point
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as e:
        print(f"lookahead-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
