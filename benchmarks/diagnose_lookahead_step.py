"""Where Lookahead's cost in a whole train step comes from: its syncs, or its off-sync steps.

One model of `bench_train_steps.py` (default the 200-leaf MLP, where the optimizer is about half
the step), jitted and donated train steps, many interleaved rounds: `optax.adamw`, then
`lj.lookahead(adamw)` in both layouts at sync_period 5 and at a sync period so long that it never
syncs in the run. Equal ratios at the two periods mean the syncs cost nothing measurable, and the
cost is the off-sync step's: the fused `jnp.where` that returns the inner update (a `lax.cond`
there would force the updates into memory before the user's `apply_updates`).

Controls split the off-sync cost further: AdamW carrying a params-sized buffer it never
touches; AdamW whose update is `where(never, buffer - p, u)` (the read and the select of
Lookahead's off-sync step without its slow-step arithmetic); the same with Lookahead's
arithmetic under the select; and a select-free form of that arithmetic.

Run:  python benchmarks/diagnose_lookahead_step.py                (150 rounds, ~1 minute)
      python benchmarks/diagnose_lookahead_step.py --model "digits CNN" --rounds 60
"""

import argparse
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lookahead_jax as lj
from lookahead_jax.cli import timing, train_step_timing

NEVER = 10**6  # a sync period no run here reaches


class _ControlState(NamedTuple):
    inner_state: optax.OptState
    slow: optax.Params
    count: jax.Array


def _control(inner, mode: str) -> optax.GradientTransformation:
    """Controls that split Lookahead's off-sync cost: `inner` plus a params-sized buffer that is
    carried through unchanged (`"carry"`); read by a select that never picks it, as the returned
    update of Lookahead is, but without its slow-step arithmetic (`"read"`); with Lookahead's
    arithmetic under that select (`"arith"`, phi + a (theta + u - phi) - theta); or as the
    select-free form u + c (phi - theta - u), c = 1 - a on a sync and 0 off it (`"cheap"`)."""
    alpha = 0.5

    def init(params):
        return _ControlState(inner.init(params), jax.tree.map(jnp.copy, params), jnp.int32(0))

    def update(updates, state, params=None):
        u, inner_state = inner.update(updates, state.inner_state, params)
        count = state.count + 1
        sync = count % NEVER == 0
        leaf = {
            "carry": lambda u, p, s: u,
            "read": lambda u, p, s: jnp.where(sync, s - p, u),
            "arith": lambda u, p, s: jnp.where(sync, s + alpha * (p + u - s) - p, u),
            "cheap": lambda u, p, s: u + jnp.where(sync, 1.0 - alpha, 0.0) * (s - p - u),
        }[mode]
        u = jax.tree.map(leaf, u, params, state.slow)
        return u, _ControlState(inner_state, state.slow, count)

    return optax.GradientTransformation(init, update)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = list(train_step_timing.STEPS_PER_ROUND)
    parser.add_argument("--model", choices=models, default="MLP 100x64 (200 leaves)")
    parser.add_argument("--rounds", type=int, default=150)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    print(timing.environment(), flush=True)
    params, loss, batch = train_step_timing._models()[args.model]
    adamw = optax.adamw(timing.LR, weight_decay=1e-2)
    k = timing.SYNC_PERIOD
    variants = {
        "optax.adamw": optax.with_extra_args_support(adamw),
        f"lj.lookahead(adamw), sync every {k}": lj.lookahead(adamw, k),
        "lj.lookahead(adamw), never syncs": lj.lookahead(adamw, NEVER),
        f"lj.lookahead(adamw, tree), sync every {k}": lj.lookahead(adamw, k, slow_layout="tree"),
        "lj.lookahead(adamw, tree), never syncs": lj.lookahead(adamw, NEVER, slow_layout="tree"),
        "control: adamw + a carried buffer": optax.with_extra_args_support(
            _control(adamw, "carry")
        ),
        "control: adamw + buffer read, no arithmetic": optax.with_extra_args_support(
            _control(adamw, "read")
        ),
        "control: + Lookahead's arithmetic": optax.with_extra_args_support(
            _control(adamw, "arith")
        ),
        "control: select-free u + c(s - p - u)": optax.with_extra_args_support(
            _control(adamw, "cheap")
        ),
    }
    runners = {
        name: train_step_timing._StepRunner(tx, params, loss, batch)
        for name, tx in variants.items()
    }
    steps = train_step_timing.STEPS_PER_ROUND[args.model]
    times = timing.time_rounds(runners, args.rounds, steps)
    print(f"{args.model}, {args.rounds} interleaved rounds of {steps} steps")
    print(f"{'variant':44s} {'median ms':>10s} {'ratio':>7s}   per-round ratio, 25th-75th pct")
    for name in variants:
        r = timing.round_ratios(times, name, "optax.adamw")
        lo, hi = np.percentile(r, [25, 75])
        median_ms = 1e3 * float(np.median(times[name]))
        print(f"{name:44s} {median_ms:10.3f} {np.median(r):7.3f}   {lo:.3f}-{hi:.3f}")
