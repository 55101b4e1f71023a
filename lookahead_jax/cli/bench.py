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
        "the README. `peers` adds timm's and pytorch-optimizer's Lookahead (if installed), "
        "optax.flatten and the measured memory bandwidth; `train-steps` times whole train steps "
        "of a CNN, a 200-leaf MLP and a Transformer LM.",
        epilog=EXAMPLES,
    )
    bench.add_argument(
        "--suites",
        nargs="+",
        choices=("lookahead", "optimizers", "peers", "train-steps"),
        default=["lookahead", "optimizers"],
        help="which tables (default: lookahead optimizers; peers takes ~4 minutes, train-steps ~3)",
    )
    bench.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    bench.add_argument("--no-torch", action="store_true", help="skip the torch.optim rows")
    bench.add_argument(
        "--torch-threads",
        type=positive_int,
        default=None,
        help="torch intra-op threads (default: 1 for the optimizers table, the CPU count for "
        "peers, which compares at XLA's thread count)",
    )
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os

    # torch's OpenMP threads sleep between calls instead of spinning, so they do not steal the
    # cores from the XLA step timed next (only takes effect before torch is imported).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
            torch_threads=args.torch_threads or 1,
        )
        rows += part
        if not args.json:
            print(bench.format_table(part), flush=True)
    notes = []
    if "peers" in args.suites:
        from lookahead_jax.cli import peer_timing

        part, peer_notes = peer_timing.peers_suite(
            rounds=5 if args.quick else 11,
            torch_threads=args.torch_threads,
            torch_rows=not args.no_torch,
        )
        rows, notes = rows + part, notes + peer_notes
        if not args.json:
            print(bench.format_table(part), "\n".join(peer_notes), sep="\n", flush=True)
    if "train-steps" in args.suites:
        from lookahead_jax.cli import train_step_timing

        part, step_notes = train_step_timing.train_step_suite(rounds=3 if args.quick else 15)
        rows, notes = rows + part, notes + step_notes
        if not args.json:
            print(bench.format_table(part), "\n".join(step_notes), sep="\n", flush=True)
    note = None
    if "optimizers" in args.suites:
        if args.no_torch:
            note = "torch.optim rows skipped (--no-torch)"
        elif importlib.util.find_spec("torch") is None:
            note = "torch.optim rows skipped: torch is not installed (pip install torch)"
    if args.json:
        report = {"environment": bench.environment(), "rows": [r._asdict() for r in rows]}
        report |= {"notes": notes} if notes else {}
        print(dumps({**report, "note": note} if note else report))
    elif note:
        print(note)
    return 0
