"""`search_base_rate`: the two-run recipe's choice of base rate, by the first runs' held-out loss.

The recipe's first run (a schedule that reads a validation loss, with some training rows held
out) is made at a few multiples of the base rate; the one whose held-out loss ends lowest is
replayed over all the rows (`replay_schedule`). Where the best of those is the lowest or the
highest rate tried, a rate further out may be better still, so the search tries one more there,
a few times at most. A rule fixed before the eleventh suite ran (`benchmarks/eleventh_suite.py`)
adopted it: over seven cells of families nothing had used, its test loss was 0.94x that of the
pick among 1/3x, 1x and 3x alone, at 4.08 first runs per task instead of 3.
"""

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from lookahead_jax import checks
from lookahead_jax.pretrained import pretrained_info


def search_base_rate(
    first_run: Callable[[float], tuple[Any, Any]],
    base_lr: float | None = None,
    *,
    multiples: Sequence[float] | None = None,
    factor: float | None = None,
    max_steps: int | None = None,
) -> tuple[float, Any, dict[float, float]]:
    """Runs `first_run` at the multiples of `base_lr`, then further out while the best is at an end.

    `first_run(rate)` returns ``(held_out_loss, result)``: the loss on the held-out rows at the
    end of a first run made at base rate ``rate``, and whatever the caller keeps of it (e.g. the
    rates the schedule chose, for `replay_schedule`). It is called at ``m * base_lr`` for each
    of `multiples`; then, while the lowest held-out loss so far is at the lowest (highest) rate
    tried and fewer than `max_steps` steps were taken that way, once more at that rate divided
    (multiplied) by `factor`. Once it steps one way it never steps the other (with two or more
    `multiples`), so it makes at most ``len(multiples) + max_steps`` runs. A non-finite loss (a
    diverged run) never wins; among equal losses the lower rate does. With few held-out rows the
    choice is noisy: on tables of 90-100 training rows (18-20 held out) the search did 5-18 %
    worse than ``max_steps=0``, the pick among `multiples` alone (the README's evidence
    section).

    Args:
      first_run: ``rate -> (held_out_loss, result)``.
      base_lr: the base rate (default: `pretrained_info(validation=True)["base_lr"]`).
      multiples: increasing positive multiples of `base_lr` to start with (default: the
        shipped recipe's, ``pretrained_info(validation=True)["base_lr_multiples"]``).
      factor: each step's ratio, > 1 (default: the shipped recipe's,
        ``"base_lr_search_factor"``).
      max_steps: steps allowed each way beyond `multiples`, >= 0 (default: the shipped
        recipe's, ``"base_lr_search_steps"``; 0 picks among `multiples` only).

    Returns:
      ``(rate, result, losses)``: the rate whose held-out loss is lowest, its `first_run`
      result, and ``{rate: held_out_loss}`` of every rate tried.

    Raises:
      TypeError: if `first_run` is not callable or does not return a pair, a multiple is not a
        real number, or `max_steps` is not an int.
      ValueError: for a bad `base_lr`, `multiples`, `factor` or `max_steps` (naming it), or if
        every run's held-out loss is non-finite.

    Example:
      A stand-in first run whose held-out loss is lowest near a rate of 0.2:

      >>> import math
      >>> import lookahead_jax as lj
      >>> def first_run(rate):
      ...     return (math.log(rate / 0.2)) ** 2, f"the rates of the run at {rate:g}"
      >>> rate, result, losses = lj.search_base_rate(first_run, 0.01)
      >>> round(rate, 3), len(losses)  # 0.01 x 9, two steps beyond 1/3x-3x
      (0.27, 5)
      >>> result
      'the rates of the run at 0.27'
    """
    if not callable(first_run):
        raise TypeError(f"search_base_rate: first_run must be callable, got {first_run!r}")
    info = pretrained_info(validation=True)
    base_lr = info["base_lr"] if base_lr is None else base_lr
    base_lr = checks.positive_finite("search_base_rate", "base_lr", base_lr)
    multiples = list(info["base_lr_multiples"] if multiples is None else multiples)
    if not multiples:
        raise ValueError("search_base_rate: multiples must be non-empty, got multiples=[]")
    multiples = [
        checks.positive_finite("search_base_rate", f"multiples[{i}]", m)
        for i, m in enumerate(multiples)
    ]
    if any(b <= a for a, b in itertools.pairwise(multiples)):
        raise ValueError(f"search_base_rate: multiples must increase, got multiples={multiples!r}")
    factor = info["base_lr_search_factor"] if factor is None else factor
    factor = checks.positive_finite("search_base_rate", "factor", factor)
    if factor <= 1:
        raise ValueError(f"search_base_rate: factor must be > 1, got factor={factor!r}")
    max_steps = info["base_lr_search_steps"] if max_steps is None else max_steps
    max_steps = checks.integer("search_base_rate", "max_steps", max_steps, 0)

    losses, results = {}, {}

    def run(rate):
        out = first_run(rate)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(
                "search_base_rate: first_run must return (held_out_loss, result), got "
                f"{type(out).__name__} at rate {rate!r}"
            )
        loss = float(out[0])
        losses[rate], results[rate] = loss, out[1]

    def best():  # lowest loss, a non-finite one never; ties to the lower rate
        finite = {r: v if math.isfinite(v) else math.inf for r, v in losses.items()}
        return min(sorted(finite), key=finite.get)

    for m in multiples:
        run(m * base_lr)
    down = up = 0
    while True:
        rate, tried = best(), sorted(losses)
        if rate == tried[0] and down < max_steps:
            run(tried[0] / factor)
            down += 1
        elif rate == tried[-1] and up < max_steps:
            run(tried[-1] * factor)
            up += 1
        else:
            break
    if not any(math.isfinite(v) for v in losses.values()):
        raise ValueError(
            f"search_base_rate: every first run's held-out loss is non-finite: {losses}"
        )
    return rate, results[rate], losses
