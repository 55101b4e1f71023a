"""`search_base_rate`: which first runs it makes, which it keeps, and what it refuses."""

import json
import math
import re
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import lookahead_jax as lj

GRID = [3.0**k for k in range(-4, 5)]  # 1/81 ... 81


def bowl(target, calls=None):
    """A stand-in first run: held-out loss (log(rate / target))^2; records the rates asked."""

    def first_run(rate):
        if calls is not None:
            calls.append(rate)
        return math.log(rate / target) ** 2, rate

    return first_run


@pytest.mark.parametrize(
    ("target", "tried", "kept"),
    [
        (1.0, [1 / 3, 1, 3], 1),  # the best is inside: the three runs only
        (0.4, [1 / 9, 1 / 3, 1, 3], 1 / 3),  # at the low end: one step down, which is worse
        (27.0, [1 / 3, 1, 3, 9, 27], 27),  # up twice
        (1e4, [1 / 3, 1, 3, 9, 27], 27),  # no further than two steps
        (1 / 50, [1 / 27, 1 / 9, 1 / 3, 1, 3], 1 / 27),  # down twice
    ],
)
def test_it_searches_outward_while_the_best_is_at_an_end(target, tried, kept):
    calls = []
    rate, result, losses = lj.search_base_rate(
        bowl(target, calls), 1.0, multiples=(1 / 3, 1, 3), factor=3, max_steps=2
    )
    np.testing.assert_allclose(sorted(calls), tried, rtol=1e-12)
    np.testing.assert_allclose([rate, result], [kept, kept], rtol=1e-12)
    assert sorted(losses) == sorted(calls)


def window_search(val, centre, max_steps):
    """The same search written over a grid's indices (as the eleventh suite scored it):
    (index kept, lowest and highest index tried)."""
    val = np.where(np.isfinite(val), val, np.inf)
    lo, hi = centre - 1, centre + 1
    while True:
        best = lo + int(np.argmin(val[lo : hi + 1]))
        if best == lo and lo > centre - 1 - max_steps:
            lo -= 1
        elif best == hi and hi < centre + 1 + max_steps:
            hi += 1
        else:
            return best, lo, hi


@given(
    st.lists(
        st.one_of(st.integers(0, 5).map(float), st.just(math.inf), st.just(math.nan)),
        min_size=9,
        max_size=9,
    ),
    st.integers(0, 2),
)
def test_it_is_the_window_search_over_a_grid(values, max_steps):
    # Small integer losses make ties common; inf and NaN are diverged runs.
    val = np.array(values)
    index, lo, hi = window_search(val, 4, max_steps)

    def first_run(rate):
        k = round(math.log(rate, 3)) + 4
        return val[k], k

    def search():
        return lj.search_base_rate(
            first_run, 1.0, multiples=(1 / 3, 1, 3), factor=3, max_steps=max_steps
        )

    if not np.isfinite(val[lo : hi + 1]).any():  # every run it made diverged
        with pytest.raises(ValueError, match="non-finite"):
            search()
        return
    rate, k, losses = search()
    assert (k, len(losses)) == (index, hi - lo + 1)
    # It goes one way only: at most 3 + max_steps first runs (the docs say 3 to 5).
    assert len(losses) <= 3 + max_steps
    assert rate == pytest.approx(GRID[index], rel=1e-12)


def test_a_diverged_run_never_wins_and_if_all_diverge_it_says_so():
    rate, _, _ = lj.search_base_rate(
        lambda r: (math.nan if r < 1 else r, None), 1.0, multiples=(0.5, 1, 2), max_steps=0
    )
    assert rate == 1
    with pytest.raises(ValueError, match="every first run's held-out loss is non-finite"):
        lj.search_base_rate(lambda r: (math.inf, None), 1.0)


def test_defaults_are_the_shipped_recipe():
    info = lj.pretrained_info(validation=True)
    calls = []
    lj.search_base_rate(bowl(info["base_lr"], calls))  # best at the base rate: no steps
    np.testing.assert_allclose(
        calls, [m * info["base_lr"] for m in info["base_lr_multiples"]], rtol=1e-12
    )
    calls.clear()
    lj.search_base_rate(bowl(1e6, calls))  # always higher: every step up
    assert len(calls) == len(info["base_lr_multiples"]) + info["base_lr_search_steps"]
    assert max(calls) == pytest.approx(
        3 * info["base_lr"] * info["base_lr_search_factor"] ** info["base_lr_search_steps"]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"base_lr": 0.0}, ValueError, "base_lr"),
        ({"base_lr": math.nan}, ValueError, "base_lr"),
        ({"multiples": ()}, ValueError, "multiples=[]"),
        ({"multiples": (0.0, 1.0)}, ValueError, "multiples[0] must be positive and finite, got"),
        ({"multiples": (1.0, math.inf)}, ValueError, "multiples[1] must be positive and finite"),
        ({"multiples": (True, 3.0)}, TypeError, "multiples[0] must be a real number"),
        ({"multiples": (3.0, 1.0)}, ValueError, "multiples must increase"),
        ({"multiples": (1.0, 1.0)}, ValueError, "multiples must increase"),
        ({"factor": 1.0}, ValueError, "factor must be > 1, got factor=1.0"),
        ({"factor": -2.0}, ValueError, "factor"),
        ({"max_steps": -1}, ValueError, "max_steps"),
        ({"max_steps": 1.5}, TypeError, "max_steps must be an int"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, error, needle):
    with pytest.raises(error, match=r"search_base_rate.*" + re.escape(needle)):
        lj.search_base_rate(bowl(1.0), **({"base_lr": 1.0} | kwargs))


def test_multiples_may_be_numpy_scalars():
    calls = []
    lj.search_base_rate(bowl(1.0, calls), 1.0, multiples=np.array([1 / 3, 1, 3], np.float32))
    np.testing.assert_allclose(calls, [1 / 3, 1, 3], rtol=1e-6)


def test_a_first_run_that_is_not_a_function_or_returns_no_pair_is_refused():
    with pytest.raises(TypeError, match="first_run must be callable"):
        lj.search_base_rate(0.5, 1.0)
    with pytest.raises(TypeError, match=r"first_run must return \(held_out_loss, result\)"):
        lj.search_base_rate(lambda r: 0.5, 1.0)


def test_the_shipped_search_is_the_one_the_eleventh_suite_scored():
    # Per task, the search run on the first runs' stored validation losses (at 1/81x-81x of the
    # default rate) keeps the multiple the suite recorded for the search it adopted.
    path = Path(__file__).parents[1] / "benchmarks" / "results" / "eleventh_suite.json"
    cells = json.loads(path.read_text())["cells"]
    row = "the candidate, two runs, base rate searched on validation"
    labels = ("1/81", "1/27", "1/9", "1/3", "1", "3", "9", "27", "81")
    names = {
        m: f"the candidate, two runs at {label}x its base rate"
        for m, label in zip(GRID, labels, strict=True)
    }
    names[1.0] = "the candidate, two runs"
    for name, cell in cells.items():
        val = cell["per_task_validation_loss"]
        for task, kept in enumerate(cell["search"][row]["multiple"]):
            losses = {m: val[names[m]][task] for m in GRID}

            def first_run(rate, losses=losses):
                m = min(losses, key=lambda g: abs(math.log(g / rate)))
                return losses[m], m

            assert lj.search_base_rate(first_run, 1.0)[1] == pytest.approx(kept), (name, task)
