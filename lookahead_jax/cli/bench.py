"""`lookahead-jax bench`: the README's benchmark tables."""

import argparse
import importlib.util

from lookahead_jax.cli._common import dumps, positive_int

EXAMPLES = """examples:
  lookahead-jax bench
  lookahead-jax bench --suites lookahead --quick
  lookahead-jax bench --no-torch --json > bench.json"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `bench` subcommand."""
    bench = subparsers.add_parser(
        "bench",
        help="time optimizer steps against optax (and torch, if installed)",
        description="Times jitted, donated optimizer steps on ~10M params in 40 leaves and ~1M "
        "params in 200 leaves, and prints medians and ratios measured in one run: the tables of "
        "the README.",
        epilog=EXAMPLES,
    )
    bench.add_argument(
        "--suites",
        nargs="+",
        choices=("lookahead", "optimizers"),
        default=["lookahead", "optimizers"],
        help="which tables",
    )
    bench.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    bench.add_argument("--no-torch", action="store_true", help="skip the torch.optim rows")
    bench.add_argument(
        "--torch-threads", type=positive_int, default=1, help="torch intra-op threads"
    )
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lookahead_jax.cli import timing as bench

    rows = []
    if not args.json:
        print(bench.environment(), flush=True)
    if "lookahead" in args.suites:
        part = bench.lookahead_suite(rounds=7 if args.quick else 21)
        rows += part
        if not args.json:
            print(bench.format_table(part), flush=True)
    if "optimizers" in args.suites:
        part = bench.optimizers_suite(
            rounds=5 if args.quick else 15,
            torch_variants=not args.no_torch,
            torch_threads=args.torch_threads,
        )
        rows += part
        if not args.json:
            print(bench.format_table(part), flush=True)
    note = None
    if "optimizers" in args.suites:
        if args.no_torch:
            note = "torch.optim rows skipped (--no-torch)"
        elif importlib.util.find_spec("torch") is None:
            note = "torch.optim rows skipped: torch is not installed (pip install torch)"
    if args.json:
        report = {"environment": bench.environment(), "rows": [r._asdict() for r in rows]}
        print(dumps({**report, "note": note} if note else report))
    elif note:
        print(note)
    return 0
