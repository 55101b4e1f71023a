"""A fifth suite, deciding the mixture-of-horizons pilot against the shipped default (13, 17).

The fourth suite (`fourth_suite.py`) decided v4's default rate; the pilot of
`pretrained_train.py --horizon-mix 1,5` (`results/pretrained_horizon_mix`) needs a suite nothing
has looked at. Its ship rule is in `pretrained_train.py`'s docstring; this suite is run once.

Protocol, fixed (and committed) before any number of it, or of the candidate's calibration, was
computed:

- The candidate: the seed `pretrained_train.rule_pick` picks in `results/pretrained_horizon_mix`
  (lowest best validation meta-loss), its rate calibrated exactly as v4's was
  (`fourth_suite.calibrate`: 0.016 x m, m in 0.25-4 by sqrt(2), the validation families at H and
  5x H), cached in `results/fifth_suite_calibration.json`.
- The reference: the shipped default, v4 at 0.0113 (`untouched_suite.SHIPPED_DEFAULT`).
- Ship rule: the candidate replaces it as v5 only if candidate / shipped default, the geometric
  mean over this suite's cells of paired per-task test-loss ratios, has its bootstrap 95 %
  interval wholly below 1.
- Families, none used before in meta-training, validation, selection or any table (features and
  targets standardised with `pretrained_train.standardise`; a task's held-out split is every row
  it does not train on):
  - "low-rank regression": scikit-learn's `make_regression(n_samples=800, n_features=20,
    n_informative=5, effective_rank=5, tail_strength=0.5, noise=10.0, random_state=0)`, 64 relu
    units, 200 training rows, batch 32;
  - "two spirals": two interleaved spirals (NumPy, seed 41: 800 points, angle uniform in
    [0.5, 3 pi], radius proportional to it, Gaussian noise 0.3 on both coordinates), 2x32 tanh
    units, 200 rows, batch 32;
  - "sinc": y = sin(r) / r of r = |x|, x uniform in [-5, 5]^2, plus noise 0.1 (seed 42, 600
    rows), 64 tanh units, 150 rows, batch 16;
  - "10-class": `make_classification(n_samples=2000, n_features=40, n_informative=20,
    n_redundant=5, n_classes=10, n_clusters_per_class=2, class_sep=1.5, random_state=0)`, 2x64
    relu units, 500 rows, batch 64;
  - "parity": the parity of the first 3 of 8 random +-1 features, with 4 Gaussian noise features
    beside them and 5 % of labels flipped (seed 43, 600 rows), 2x64 relu units, 200 rows, batch
    32.
- Cells: each family at H = 200 steps; "two spirals" and "sinc" also at 5x H. 50 held-out tasks
  per cell (PRNG root 31), 8 tuning tasks for the target-tuned oracle (root 32).
- Rows and figures: the third suite's (`untouched_suite.py`), the shipped default and the
  candidate at its calibrated rate; the ratio tables of the shipped default and of v4 at 0.016,
  and the decision. Added after the decision: the candidate at 0.3x and 3x its rate.

Outcome (2026-12-06): the candidate (seed 2, calibrated at 1.414x, 0.0226) is 0.868 [0.853,
0.883] of the shipped default, so it was shipped as v5. v6 (`sixth_suite.py`) was added after
it shipped, at its default rate and at 0.3x and 3x of it.

Run:  python benchmarks/fifth_suite.py --calibrate   (the candidate's rate; ~4 min on 2 cores)
      python benchmarks/fifth_suite.py               (~12 min; cells already in the results
                                                      file are kept)
      python benchmarks/fifth_suite.py --report      (the tables from the results file)
"""

import functools
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import fourth_suite as F
import pretrained_tables as PTab
import pretrained_train as T
import untouched_suite as U

import lookahead_jax as lj

HERE = os.path.dirname(__file__)
OUT = os.path.join(HERE, "results", "fifth_suite.json")
CALIBRATION = os.path.join(HERE, "results", "fifth_suite_calibration.json")
CANDIDATE = os.path.join(HERE, "results", "pretrained_horizon_mix")
CELLS = [(f, 1) for f in ("low-rank regression", "two spirals", "sinc", "10-class", "parity")]
CELLS += [("two spirals", 5), ("sinc", 5)]


def families(validation=0.0):
    """{name: family}; with `validation`, that fraction of each task's training rows is kept
    out as its validation split (the test rows stay the same)."""
    from sklearn import datasets

    regression = functools.partial(U.regression, validation=validation)
    classification = functools.partial(U.classification, validation=validation)
    relu, tanh = jax.nn.relu, jax.numpy.tanh
    x, y = datasets.make_regression(
        n_samples=800,
        n_features=20,
        n_informative=5,
        effective_rank=5,
        tail_strength=0.5,
        noise=10.0,
        random_state=0,
    )
    out = {"low-rank regression": regression(x, y, (64,), relu, 200, 32)}
    rng = np.random.default_rng(41)
    y = rng.integers(0, 2, 800)
    angle = rng.uniform(0.5, 3 * np.pi, 800)
    sign = 1.0 - 2.0 * y
    x = np.stack([sign * angle * np.cos(angle), sign * angle * np.sin(angle)], 1)
    x = x + rng.normal(size=x.shape) * 0.3
    out["two spirals"] = classification(x, y, (32, 32), tanh, 200, 32)
    rng = np.random.default_rng(42)
    x = rng.uniform(-5.0, 5.0, (600, 2))
    r = np.maximum(np.linalg.norm(x, axis=1), 1e-6)
    y = np.sin(r) / r + rng.normal(size=600) * 0.1
    out["sinc"] = regression(x, y, (64,), tanh, 150, 16)
    x, y = datasets.make_classification(
        n_samples=2000,
        n_features=40,
        n_informative=20,
        n_redundant=5,
        n_classes=10,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=0,
    )
    out["10-class"] = classification(x, y, (64, 64), relu, 500, 64)
    rng = np.random.default_rng(43)
    bits = rng.choice([-1.0, 1.0], (600, 8))
    y = (np.prod(bits[:, :3], axis=1) > 0).astype(np.int64)
    flip = rng.uniform(size=600) < 0.05
    y = np.where(flip, 1 - y, y)
    x = np.concatenate([bits, rng.normal(size=(600, 4))], 1)
    out["parity"] = classification(x, y, (64, 64), relu, 200, 32)
    return out


def candidate_at(horizon, m):
    """(schedule, params) of the pilot's pick at m x its meta-training rate (0.016)."""
    return T.pick_at(CANDIDATE, horizon, m)


def candidate_schedule(horizon, m):
    """The pilot's pick at m x its meta-training rate, as a transformation."""
    return lj.learned_schedule(T.INNER, *candidate_at(horizon, m))


def calibrate():
    return F.calibrate(CALIBRATION, candidate_schedule)


def candidate_name():
    seed = T.rule_pick(CANDIDATE)["seed"]
    return f"horizon-mix pick (seed {seed}) at {calibrate()['best']:.3g}x (calibrated)"


def rows(horizon):
    """The shipped default (v4 at 0.0113, the suite's reference) and the candidate at its rate;
    then (added after the decision) the candidate at 0.3x and 3x its rate."""
    schedule, params = PTab.v4_default_at(horizon)
    out = {U.SHIPPED_DEFAULT: lj.learned_schedule(T.INNER, schedule, params)}
    m = calibrate()["best"]
    out |= U.at_rate_rows(candidate_name(), lambda s: candidate_at(horizon, m * s))
    return out | U.v6_and_matched_rows(horizon)  # added after the sixth and seventh shipped v6


def decision(out):
    """The candidate against the shipped default, and the ship rule's verdict."""
    return U.decide(out["cells"], candidate_name(), U.SHIPPED_DEFAULT)


FIFTH = U.Suite(families, CELLS, 31, 32, OUT, rows)


def main():
    calibration = (
        "--calibrate",
        "the candidate's rate (cached)",
        lambda: F.print_calibration(calibrate()),
    )
    if U.main(FIFTH, __doc__, [calibration]) is not None:
        return  # a step that is not the suite's run
    out = json.load(open(OUT))
    if len(out["cells"]) == len(CELLS):
        out["decision"] = decision(out)
        json.dump(out, open(OUT, "w"), indent=1)


if __name__ == "__main__":
    main()
