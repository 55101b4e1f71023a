"""The evaluation protocol: learned schedules against equally tuned baselines, on held-out tests.

A user who meta-trains a schedule on their own `TaskFamily` asks one question: does it beat what
they would otherwise do? This module answers it the same way for every family:

1. **Baselines are tuned, with grids that are checked.** A `Tunable` is a family of
   transformations over a grid of hyperparameters (warmup + constant/cosine/linear decay to a
   floor, or a tuning-free optimizer's one setting). `tune` scores every grid point on tuning
   tasks by held-out loss and, when the best point sits on an edge of its grid that is not a
   natural bound (warmup 0, floor 0), extends the grid past that edge and tunes again, so every
   reported optimum lies inside its grid (or at a natural bound), and says which.
2. **Methods are scored on held-out tasks, on held-out data.** `final_metrics` trains each task
   for the horizon and scores the final params on the task's test split (`Task.test_loss`,
   `Task.test_accuracy`), with the training loss beside them.
3. **Comparisons are per task, aggregated robustly.** `paired_log_ratios` takes per-task log
   ratios of test losses and reports their median and geometric mean with bootstrap 95 %
   intervals; ties at the float32 floor are excluded and counted, divergences counted.

`run` does all three for a set of candidates (e.g. a learned schedule and its ablations) and
baselines, with the tuning compute (inner steps and seconds) stated beside the results. Task keys,
grids and budgets are arguments: nothing here knows our own experiments.
"""

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax import checks
from lookahead_jax.meta.tasks import ReplayedFamily, TaskFamily
from lookahead_jax.meta.unroll import fresh_state, inner_step, replayed_step
from lookahead_jax.replay import replay_schedule  # noqa: F401  (also `meta.protocol`'s, as before)

EvalParams = Callable[[optax.Params, optax.OptState], optax.Params]
DECAYS = ("constant", "cosine", "linear")
# Non-finite losses (a diverged run) are scored as this loss: worse than any real one, but finite,
# so that medians, ranks and bootstrap intervals stay defined.
DIVERGED_LOSS = float(np.finfo(np.float32).max)


class Method(NamedTuple):
    """A transformation to evaluate, and how to read the params it is judged at.

    `eval_params(params, opt_state)` maps the trained params to those evaluated (e.g.
    `optax.contrib.schedule_free_eval_params` with its arguments swapped); None: the params.
    """

    tx: optax.GradientTransformation
    eval_params: EvalParams | None = None


class Tunable(NamedTuple):
    """A family of methods over a grid of hyperparameters, tuned by `tune`.

    `make` maps hyperparameters (a dict of scalars, traced during tuning) to a `Method`. `grid`
    maps each name to the values to try (a product grid over all names); an empty dict is a
    method with nothing to tune (e.g. a tuning-free optimizer at its published defaults).
    `bounds` maps a name to the (lowest, highest) value it can take: an optimum on a grid edge
    equal to its bound is reported as at that bound, any other edge optimum extends the grid.
    Names in `log_scale` (rates) extend geometrically, the others arithmetically.
    """

    make: Callable[[Mapping[str, jax.Array]], Method]
    grid: Mapping[str, Sequence[float]]
    bounds: Mapping[str, tuple[float, float]] = {}
    log_scale: frozenset[str] = frozenset()


def warmup_decay_schedule(
    peak: Any, warmup: Any, floor: Any, horizon: int, decay: str = "cosine"
) -> optax.Schedule:
    r"""Linear warmup to `peak`, then a decay to ``floor * peak`` at `horizon`; traceable.

    With :math:`w = \text{warmup} \cdot T` warmup steps, the rate of step :math:`t` (steps taken,
    from 0) is :math:`\eta_t = \text{peak} \cdot \min(1, (t + 1)/w) \cdot d(s)` with
    :math:`s = \operatorname{clip}((t - w)/(T - w), 0, 1)` and
    :math:`d(s) = f + (1 - f) \cdot \{1, \tfrac12(1 + \cos \pi s), 1 - s\}` for constant, cosine
    and linear decay (the floor `f` does nothing for constant). Past `horizon` the rate stays at
    its final value.

    Args:
      peak: the peak rate.
      warmup: warmup length as a fraction of `horizon`, in [0, 1).
      floor: the final rate as a fraction of `peak`, in [0, 1].
      horizon: the number of steps the schedule is laid out over.
      decay: one of ``"constant"``, ``"cosine"``, ``"linear"``.

    Returns:
      An optax schedule (a function of the step count).

    Example:
      >>> from lookahead_jax.meta.protocol import warmup_decay_schedule
      >>> s = warmup_decay_schedule(1.0, 0.1, 0.0, 100, "linear")
      >>> [round(float(s(t)), 3) for t in (0, 9, 55, 99)]
      [0.1, 1.0, 0.5, 0.011]
    """
    horizon = checks.integer("warmup_decay_schedule", "horizon", horizon, 1)
    if decay not in DECAYS:
        raise ValueError(
            f"warmup_decay_schedule: decay must be one of {', '.join(DECAYS)}, got {decay!r}"
        )
    for name, value, hi in (("warmup", warmup, 1.0), ("floor", floor, 1.0)):
        v = checks.scalar("warmup_decay_schedule", name, value)
        if v is not None and not (0.0 <= v <= hi and (name != "warmup" or v < 1.0)):
            raise ValueError(
                f"warmup_decay_schedule: {name} must be in [0, 1{')' if name == 'warmup' else ']'}"
                f", got {name}={value!r}"
            )

    def schedule(count):
        t = jnp.asarray(count, jnp.float32)
        w = jnp.asarray(warmup, jnp.float32) * horizon
        warm = jnp.where(w > 0, jnp.minimum(1.0, (t + 1.0) / jnp.maximum(w, 1e-9)), 1.0)
        s = jnp.clip((t - w) / jnp.maximum(horizon - w, 1.0), 0.0, 1.0)
        f = jnp.asarray(floor, jnp.float32)
        if decay == "constant":
            shape = jnp.ones_like(s)
        elif decay == "cosine":
            shape = f + (1.0 - f) * 0.5 * (1.0 + jnp.cos(jnp.pi * s))
        else:
            shape = f + (1.0 - f) * (1.0 - s)
        return jnp.asarray(peak, jnp.float32) * warm * shape

    return schedule


def schedule_baseline(
    inner: optax.GradientTransformation,
    horizon: int,
    decay: str,
    peaks: Sequence[float],
    warmups: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
    floors: Sequence[float] = (0.0, 0.01, 0.1, 0.3),
) -> Tunable:
    """A warmup + `decay` schedule on a unit-rate `inner` optimizer, tuned over peak/warmup/floor.

    The constant schedule tunes no floor (it has none). Peaks extend geometrically past an edge
    optimum; warmup extends up to 0.99 of the horizon; floor is bounded by [0, 1].

    Example:
      >>> import optax
      >>> from lookahead_jax.meta.protocol import schedule_baseline
      >>> b = schedule_baseline(optax.sgd(1.0), 100, "linear", peaks=[0.1, 0.3, 1.0])
      >>> sorted(b.grid)
      ['floor', 'peak', 'warmup']
    """
    if decay not in DECAYS:
        raise ValueError(
            f"schedule_baseline: decay must be one of {', '.join(DECAYS)}, got {decay!r}"
        )

    def make(hp):
        floor = hp.get("floor", 0.0)
        sched = warmup_decay_schedule(hp["peak"], hp["warmup"], floor, horizon, decay)
        return Method(optax.chain(inner, optax.scale_by_schedule(sched)))

    grid = {"peak": list(peaks), "warmup": list(warmups)}
    bounds = {"peak": (0.0, math.inf), "warmup": (0.0, 0.99)}
    if decay != "constant":
        grid["floor"] = list(floors)
        bounds["floor"] = (0.0, 1.0)
    return Tunable(make, grid, bounds, frozenset({"peak"}))


def fixed(method: Method | optax.GradientTransformation) -> Tunable:
    """A method with nothing to tune (its grid is empty)."""
    method = method if isinstance(method, Method) else Method(method)
    return Tunable(lambda hp: method, {})


class Metrics(NamedTuple):
    """Per-task results at the end of training (NumPy arrays of shape ``(num_tasks,)``)."""

    train_loss: np.ndarray  # full training loss of the final params
    test_loss: np.ndarray  # held-out loss (`full_loss` where the family has no test split)
    test_accuracy: np.ndarray  # held-out accuracy (NaN where the family defines none)
    initial_loss: np.ndarray  # full training loss before training
    # Loss on the task's validation split at the end (NaN where it has none); for a
    # `ReplayedFamily`, the first run's: the rows that chose the rates, never trained on.
    validation_loss: np.ndarray


def _judged_params(method: Method, params: optax.Params, opt_state: optax.OptState):
    """The params `method` is judged at (its `eval_params`, or the params themselves)."""
    return params if method.eval_params is None else method.eval_params(params, opt_state)


def _metrics_fn(
    family: TaskFamily | ReplayedFamily,
    method: Method,
    horizon: int,
    inner: optax.GradientTransformation | None = None,
):
    """task_key -> (train, test, accuracy, initial, validation) after `horizon` steps;
    traceable.

    A `ReplayedFamily` runs both runs in lock-step (`replayed_step`) and scores the replay; its
    validation loss is the first run's, at that run's final params."""
    tx = optax.with_extra_args_support(method.tx)

    def one(task_key):
        state = fresh_state(family, tx, task_key, None, inner=inner)
        keys = jax.random.split(state.key, horizon)
        if isinstance(family, ReplayedFamily):
            task, first = family.replay(task_key), family.first(task_key)
            step = replayed_step(first, tx, task, inner, first_order=False)
            ((first_params, _), (params, _)), _ = jax.lax.scan(
                step, ((state.params, state.opt_state), state.replay), keys
            )
            start = state.replay[0]
        else:
            task = first = family(task_key)
            step = inner_step(task, tx, first_order=False)
            (params, opt_state), _ = jax.lax.scan(step, (state.params, state.opt_state), keys)
            params, start = _judged_params(method, params, opt_state), state.params
            first_params = params
        test = task.test_loss or task.full_loss
        nan = jnp.asarray(jnp.nan, jnp.float32)
        acc = nan if task.test_accuracy is None else task.test_accuracy(params)
        val = nan if first.validation_loss is None else first.validation_loss(first_params)
        return task.full_loss(params), test(params), acc, task.full_loss(start), val

    return one


def final_metrics(
    family: TaskFamily | ReplayedFamily,
    method: Method | optax.GradientTransformation,
    task_keys: jax.Array,
    horizon: int,
    *,
    inner: optax.GradientTransformation | None = None,
) -> Metrics:
    """Trains each task for `horizon` steps with `method` and scores its final params.

    On a `ReplayedFamily` each task is trained twice, the two-run recipe: `method` (around a
    `learned_schedule`) trains on the ``first`` family's task, reading its validation loss, and
    `inner`, the unit-rate optimizer the schedule wraps, trains the ``replay`` family's task
    (the validation rows given back) from the same initial params with the same minibatch keys,
    at the rate the schedule chose at each step (as `replay_schedule` of the recorded rates
    would). The metrics are the replay's; `method` is not judged at its own params there.

    Args:
      family: the task family, or a `ReplayedFamily` for the two runs.
      method: a `Method` or a transformation.
      task_keys: one key per task.
      horizon: steps of training.
      inner: with a `ReplayedFamily` (then required), the replay's optimizer; else unused
        (passing one is an error).

    Returns:
      `Metrics`, one entry per task.

    Example:
      >>> import jax, optax
      >>> from lookahead_jax import meta
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> m = meta.protocol.final_metrics(meta.regression_family(), optax.adam(1e-2), keys, 50)
      >>> m.test_loss.shape, bool((m.train_loss < m.initial_loss).all())
      ((4,), True)

      The two runs of the shipped candidate, with 20 of each task's 100 training rows held out:

      >>> import numpy as np, lookahead_jax as lj
      >>> x = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
      >>> y = x.sum(axis=1)
      >>> twice = meta.ReplayedFamily(
      ...     meta.data_regression_family(x, y, num_train=100, num_validation=20),
      ...     meta.data_regression_family(x, y, num_train=100))
      >>> tx = lj.learned_schedule(
      ...     optax.adam(1.0), *lj.pretrained_schedule(horizon=50, validation=True))
      >>> m = meta.protocol.final_metrics(twice, tx, keys, 50, inner=optax.adam(1.0))
      >>> bool((m.train_loss < m.initial_loss).all())
      True
    """
    method = method if isinstance(method, Method) else Method(method)
    horizon = checks.integer("final_metrics", "horizon", horizon, 1)
    if isinstance(family, ReplayedFamily) and inner is None:
        raise ValueError(
            "final_metrics: a ReplayedFamily is two runs, so it needs inner= (the unit-rate "
            "optimizer that replays the schedule's rates, e.g. optax.adam(1.0))"
        )
    if not isinstance(family, ReplayedFamily) and inner is not None:
        raise ValueError(
            f"final_metrics: inner= is the replay's optimizer, read only with a ReplayedFamily; "
            f"got inner={inner!r} with family={family!r}"
        )
    out = jax.jit(jax.vmap(_metrics_fn(family, method, horizon, inner)))(task_keys)
    return Metrics(*(np.asarray(x, np.float64) for x in out))


def pick_by_validation(candidates: Sequence[Metrics]) -> tuple[Metrics, np.ndarray]:
    """Per task, the candidate whose final validation loss is lowest, and which one it was.

    The candidates are the same tasks trained differently (e.g. the two runs at three base
    rates): for each task this keeps the metrics of the run whose validation split scored best,
    so the choice reads no test row. A non-finite validation loss (a diverged run) never wins
    unless every candidate's is; then the first is kept.

    Args:
      candidates: `Metrics` of the same tasks, each from a family with a validation split (or a
        `ReplayedFamily` whose first family has one).

    Returns:
      ``(picked, index)``: `Metrics` taken task by task from the candidate of lowest validation
      loss, and that candidate's position for each task (an int array).

    Example:
      >>> import jax, optax
      >>> from lookahead_jax import meta
      >>> family = meta.regression_family(num_validation=16)
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> runs = [meta.protocol.final_metrics(family, optax.adam(lr), keys, 50)
      ...         for lr in (1e-3, 1e-2, 1e-1)]
      >>> picked, index = meta.protocol.pick_by_validation(runs)
      >>> picked.test_loss.shape, index.shape
      ((4,), (4,))
    """
    candidates = list(candidates)
    if not candidates:
        raise ValueError("pick_by_validation: candidates is empty; pass at least one Metrics")
    for i, m in enumerate(candidates):
        if not isinstance(m, Metrics):
            raise TypeError(
                f"pick_by_validation: candidates[{i}] must be a Metrics (from final_metrics), "
                f"got {type(m).__name__}"
            )
        if np.shape(m.validation_loss) != np.shape(candidates[0].validation_loss):
            raise ValueError(
                f"pick_by_validation: candidates[{i}] has {np.shape(m.validation_loss)} tasks' "
                f"metrics, candidates[0] {np.shape(candidates[0].validation_loss)}: the "
                "candidates must score the same tasks"
            )
        if np.all(np.isnan(m.validation_loss)):
            raise ValueError(
                f"pick_by_validation: candidates[{i}] has no validation loss (NaN for every "
                "task): its family needs a validation split (num_validation=, or a "
                "ReplayedFamily whose first family has one)"
            )
    val = np.stack([np.asarray(m.validation_loss, np.float64) for m in candidates])
    index = np.argmin(np.where(np.isfinite(val), val, np.inf), axis=0)
    tasks = np.arange(val.shape[1])
    picked = Metrics(
        *(
            np.stack([np.asarray(f, np.float64) for f in field])[index, tasks]
            for field in zip(*candidates, strict=True)
        )
    )
    return picked, index


def heldout_loss_curves(
    family: TaskFamily,
    method: Method | optax.GradientTransformation,
    task_keys: jax.Array,
    horizon: int,
    every: int,
) -> np.ndarray:
    """Each task's held-out loss every `every` steps of training with `method`.

    The runs are `final_metrics`' (same tasks, initial params and minibatches), so the last
    column is its `test_loss`. Where a method is judged at other params (`Method.eval_params`,
    e.g. Schedule-Free's averaged point), each point of the curve is scored at those.

    Args:
      family: the task family.
      method: a `Method` or a transformation.
      task_keys: one key per task.
      horizon: steps of training.
      every: steps between two scores; it must divide `horizon`.

    Returns:
      Shape ``(num_tasks, horizon // every + 1)``: column ``j`` is the test loss after
      ``j * every`` steps (column 0: the initial params).

    Example:
      >>> import jax, optax
      >>> from lookahead_jax import meta
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> family = meta.regression_family()
      >>> c = meta.protocol.heldout_loss_curves(family, optax.adam(1e-2), keys, 50, every=10)
      >>> c.shape, bool((c[:, -1] < c[:, 0]).all())
      ((4, 6), True)
    """
    method = method if isinstance(method, Method) else Method(method)
    horizon = checks.integer("heldout_loss_curves", "horizon", horizon, 1)
    every = checks.integer("heldout_loss_curves", "every", every, 1, horizon)
    if horizon % every:
        raise ValueError(
            f"heldout_loss_curves: every must divide horizon={horizon}, got every={every}"
        )
    tx = optax.with_extra_args_support(method.tx)

    def one(task_key):
        task = family(task_key)
        state = fresh_state(family, tx, task_key, None)
        test = task.test_loss or task.full_loss

        def score(carry):
            return test(_judged_params(method, *carry))

        def chunk(carry, keys):
            carry, _ = jax.lax.scan(inner_step(task, tx, first_order=False), carry, keys)
            return carry, score(carry)

        # The same minibatch keys as `final_metrics`, taken `every` at a time.
        keys = jax.random.split(state.key, horizon).reshape(horizon // every, every)
        carry = (state.params, state.opt_state)
        _, losses = jax.lax.scan(chunk, carry, keys)
        return jnp.concatenate([score(carry)[None], losses])

    return np.asarray(jax.jit(jax.vmap(one))(task_keys), np.float64)


def steps_to_target(curves: Any, every: int, targets: Any) -> np.ndarray:
    """The first step at which each task's curve is at or below its target; inf where never.

    Args:
      curves: ``(num_tasks, num_points)`` losses, point ``j`` after ``j * every`` steps
        (`heldout_loss_curves`).
      every: steps between two points.
      targets: one target loss per task, or one for all.

    Returns:
      Shape ``(num_tasks,)``: steps, a multiple of `every` (the first point at or below the
      target, so a run that reaches it and rises again counts from the first time); ``inf``
      where no point reaches it (a non-finite loss reaches nothing).

    Example:
      >>> import numpy as np
      >>> from lookahead_jax.meta import protocol
      >>> protocol.steps_to_target(np.array([[3.0, 1.0, 0.5], [3.0, 2.0, 2.5]]), 10, 1.0)
      array([10., inf])
    """
    every = checks.integer("steps_to_target", "every", every, 1)
    curves = np.asarray(curves, np.float64)
    if curves.ndim != 2:
        raise ValueError(f"steps_to_target: curves must be (tasks, points), got {curves.shape}")
    targets = np.asarray(targets, np.float64)
    if targets.shape not in ((), curves.shape[:1]):
        raise ValueError(
            f"steps_to_target: targets must be one number or one per task ({len(curves)}), "
            f"got shape {targets.shape}"
        )
    targets = np.broadcast_to(targets, curves.shape[:1])
    # A diverged point (NaN or inf) reaches nothing.
    reached = np.isfinite(curves) & (curves <= targets[:, None])
    return np.where(reached.any(axis=1), np.argmax(reached, axis=1) * float(every), np.inf)


def _point_test_losses(family, tunable, names, task_keys, horizon):
    """hyperparameter values (a point, in `names` order) -> the tasks' test losses, float64.

    Compiled once: the values are traced, so every point of a grid, and of its extensions, runs
    the same program (the points run one after another either way).
    """

    @jax.jit
    def per_point(row):
        method = tunable.make({n: row[i] for i, n in enumerate(names)})
        return jax.vmap(_metrics_fn(family, method, horizon))(task_keys)[1]

    return lambda point: np.asarray(per_point(jnp.asarray(point, jnp.float32)), np.float64)


def _log_score(losses: np.ndarray) -> float:
    """Mean log loss over tasks (the log of the geometric mean); divergence scores +inf."""
    losses = np.asarray(losses, np.float64)
    if not np.all(np.isfinite(losses)):
        return math.inf
    return float(np.mean(np.log(np.maximum(losses, np.finfo(np.float32).tiny))))


class TuneResult(NamedTuple):
    """What `tune` found."""

    best: dict[str, float]  # the chosen hyperparameters
    grid: dict[str, list[float]]  # the final grid (after any extensions)
    # Per name: "inside"; "natural bound" (the optimum is the lowest value the hyperparameter can
    # take, e.g. warmup 0, floor 0); "upper bound" (the highest, e.g. warmup 0.99 of the horizon);
    # "edge" (on a grid edge that is no bound: the extensions ran out); "fixed" (one value).
    where: dict[str, str]
    scores: dict[tuple[float, ...], float]  # grid point -> mean log test loss on tuning tasks
    inner_steps: int  # tasks x horizon x grid points evaluated
    seconds: float  # wall time, compilation included


def _extend(values: list[float], at_top: bool, log: bool, bound: float) -> list[float]:
    """The sorted grid with one more value past an edge, clipped at the bound (same if at it)."""
    if len(values) < 2:
        ratio, step = 2.0, 0.1
    else:
        a, b = (values[-2], values[-1]) if at_top else (values[0], values[1])
        ratio, step = (b / a if a > 0 else 2.0), b - a
    edge = values[-1] if at_top else values[0]
    if log:
        new = edge * ratio if at_top else edge / ratio
    else:
        new = edge + step if at_top else edge - step
    new = min(new, bound) if at_top else max(new, bound)
    if new == edge:
        return values
    return [*values, new] if at_top else [new, *values]


def tune(
    family: TaskFamily | Sequence[TaskFamily],
    tunable: Tunable,
    task_keys: jax.Array,
    horizon: int,
    *,
    max_extensions: int = 4,
) -> TuneResult:
    """Picks the grid point with the lowest mean log test loss on the tuning tasks.

    Every grid point, and every point an extension adds, runs one compiled program (the
    hyperparameters are traced, so extending a grid compiles nothing new). When
    the optimum sits on a grid edge that is not its natural bound, that dimension's grid is
    extended by one step past the edge and only the new points are evaluated, up to
    `max_extensions` times; `TuneResult.where` says where each chosen value ended up.

    Args:
      family: task key -> `Task`; or a sequence of families, whose scores are averaged (one
        setting tuned for a mixture, e.g. the families a schedule was meta-trained on).
      tunable: the `Tunable` to tune.
      task_keys: tuning tasks (never the held-out ones), used for each family.
      horizon: training steps per task.
      max_extensions: how many times a grid may be extended.

    Returns:
      A `TuneResult`.
    """
    t0 = time.perf_counter()
    names = sorted(tunable.grid)
    grid = {n: sorted(float(v) for v in tunable.grid[n]) for n in names}
    for n in names:
        if not grid[n]:
            raise ValueError(f"tune: the grid of {n!r} is empty")
    scores: dict[tuple[float, ...], float] = {}
    steps = 0
    n_tasks = len(task_keys)

    families = checks.family_list("tune", family)

    losses_at = [_point_test_losses(f, tunable, names, task_keys, horizon) for f in families]

    def evaluate(points):
        for p in points:
            scores[p] = float(np.mean([_log_score(losses(p)) for losses in losses_at]))

    where: dict[str, str] = {}
    for attempt in range(max_extensions + 1):
        todo = [p for p in itertools.product(*(grid[n] for n in names)) if p not in scores]
        evaluate(todo)
        steps += len(todo) * n_tasks * horizon * len(families)
        best_point = min(itertools.product(*(grid[n] for n in names)), key=lambda p: scores[p])
        extended = False
        for i, n in enumerate(names):
            v, values = best_point[i], grid[n]
            lo, hi = tunable.bounds.get(n, (-math.inf, math.inf))
            if len(values) == 1 or values[0] < v < values[-1]:
                where[n] = "inside" if len(values) > 1 else "fixed"
            elif v == values[0] and v <= lo:
                where[n] = "natural bound"
            elif v == values[-1] and v >= hi:
                where[n] = "upper bound"
            else:
                where[n] = "edge"
                if attempt < max_extensions:
                    top = v == values[-1]
                    new = _extend(values, top, n in tunable.log_scale, hi if top else lo)
                    if new != values:
                        grid[n], extended = new, True
        if not extended:
            break
    return TuneResult(
        best=dict(zip(names, best_point, strict=True)),
        grid=grid,
        where=where,
        scores=scores,
        inner_steps=steps,
        seconds=time.perf_counter() - t0,
    )


class Comparison(NamedTuple):
    """A candidate's per-task test losses against a baseline's (see `paired_log_ratios`)."""

    num_tasks: int  # tasks compared (ties excluded)
    ties: int  # tasks where both losses are at the float32 floor (excluded)
    wins: int  # tasks where the candidate's loss is lower
    diverged: tuple[int, int]  # (candidate, baseline) runs with a non-finite loss
    median_log_ratio: float  # median of log(candidate / baseline); < 0: the candidate is better
    median_ci: tuple[float, float]  # bootstrap 95 % interval of the median
    geomean_ratio: float  # exp(mean log ratio); < 1: the candidate is better
    geomean_ci: tuple[float, float]  # bootstrap 95 % interval of the geometric mean


def paired_log_ratios(
    candidate: Any,
    baseline: Any,
    *,
    floor: Any = None,
    num_bootstrap: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Per-task log-ratios of two methods' losses on the same tasks, with bootstrap intervals.

    Args:
      candidate: per-task losses of the method judged, shape ``(num_tasks,)``.
      baseline: per-task losses of what it is judged against, on the same tasks.
      floor: per-task (or one) loss at or below which a loss is at the float32 floor; a task
        where both are is a tie, excluded and counted, and a loss below it is compared as it.
        Default float32's epsilon; `run` passes epsilon times each task's initial loss.
      num_bootstrap: bootstrap resamples of the tasks.
      seed: of the bootstrap.

    Returns:
      A `Comparison`.

    Example:
      >>> from lookahead_jax.meta.protocol import paired_log_ratios
      >>> c = paired_log_ratios([1.0, 2.0, 4.0], [2.0, 2.0, 8.0])
      >>> c.wins, round(c.geomean_ratio, 3)
      (2, 0.63)
    """
    c = np.asarray(candidate, np.float64)
    b = np.asarray(baseline, np.float64)
    if c.shape != b.shape or c.ndim != 1 or c.size == 0:
        raise ValueError(
            f"paired_log_ratios: need two 1-d arrays of the same length, got shapes {c.shape} and "
            f"{b.shape}"
        )
    if np.any(c < 0) or np.any(b < 0):
        raise ValueError("paired_log_ratios: losses must be >= 0 (log-ratios of losses)")
    eps = float(np.finfo(np.float32).eps)
    fl = np.broadcast_to(np.asarray(eps if floor is None else floor, np.float64), c.shape)
    diverged = (int(np.sum(~np.isfinite(c))), int(np.sum(~np.isfinite(b))))
    c = np.where(np.isfinite(c), c, DIVERGED_LOSS)
    b = np.where(np.isfinite(b), b, DIVERGED_LOSS)
    tie = (c <= fl) & (b <= fl)
    c, b, fl = c[~tie], b[~tie], fl[~tie]
    n = int(c.size)
    if n == 0:
        nan2 = (math.nan, math.nan)
        return Comparison(0, int(tie.sum()), 0, diverged, math.nan, nan2, math.nan, nan2)
    # A loss below the floor is rounding noise: compare it as the floor.
    r = np.log(np.maximum(c, fl)) - np.log(np.maximum(b, fl))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(num_bootstrap, n))
    boot = r[idx]
    med = np.median(boot, axis=1)
    mean = np.mean(boot, axis=1)
    q = lambda x: (float(np.quantile(x, 0.025)), float(np.quantile(x, 0.975)))
    mean_ci = q(mean)
    return Comparison(
        num_tasks=n,
        ties=int(tie.sum()),
        wins=int(np.sum(r < 0)),
        diverged=diverged,
        median_log_ratio=float(np.median(r)),
        median_ci=q(med),
        geomean_ratio=float(np.exp(np.mean(r))),
        geomean_ci=(float(np.exp(mean_ci[0])), float(np.exp(mean_ci[1]))),
    )


class ProtocolResult(NamedTuple):
    """What `run` returns."""

    metrics: dict[str, Metrics]  # method -> per-task metrics on the held-out tasks
    tuning: dict[str, TuneResult]  # baseline -> its tuning
    comparisons: dict[tuple[str, str], Comparison]  # (candidate, baseline) -> comparison
    oracle: np.ndarray | None  # per held-out task, the best test loss over the oracle grid
    horizon: int
    seconds: dict[str, float]  # method -> wall time of its held-out evaluation


def run(
    family: TaskFamily,
    candidates: Mapping[str, Method | optax.GradientTransformation],
    baselines: Mapping[str, Tunable],
    *,
    tune_keys: jax.Array,
    heldout_keys: jax.Array,
    horizon: int,
    oracle: Tunable | None = None,
    max_extensions: int = 4,
    num_bootstrap: int = 2000,
) -> ProtocolResult:
    """Tunes the baselines, evaluates everything on held-out tasks, compares per task.

    Args:
      family: task key -> `Task` (with a test split, so methods are ranked on held-out data).
      candidates: name -> method judged (e.g. a learned schedule, its ablations).
      baselines: name -> `Tunable`, tuned on `tune_keys` by mean log test loss.
      tune_keys: tuning tasks; disjoint from `heldout_keys` (and from any meta-training tasks).
      heldout_keys: the tasks every method is scored on; fix their number before looking.
      horizon: training steps per task.
      oracle: a `Tunable` (e.g. the constant schedule) tuned per held-out task on its own test
        loss: an upper reference no real method reaches (`ProtocolResult.oracle`).
      max_extensions: passed to `tune`.
      num_bootstrap: passed to `paired_log_ratios`.

    Returns:
      A `ProtocolResult`; every candidate is compared with every baseline, and every baseline's
      `TuneResult` says where its optimum lies in its grid.
    """
    overlap = set(candidates) & set(baselines)
    if overlap:
        raise ValueError(f"run: a name is both a candidate and a baseline: {sorted(overlap)}")
    tuning = {
        name: tune(family, b, tune_keys, horizon, max_extensions=max_extensions)
        for name, b in baselines.items()
    }
    methods = dict(candidates)
    methods.update({name: baselines[name].make(t.best) for name, t in tuning.items()})
    metrics, seconds = {}, {}
    for name, m in methods.items():
        t0 = time.perf_counter()
        metrics[name] = final_metrics(family, m, heldout_keys, horizon)
        seconds[name] = time.perf_counter() - t0
    floor = np.finfo(np.float32).eps * next(iter(metrics.values())).initial_loss
    comparisons = {
        (c, b): paired_log_ratios(
            metrics[c].test_loss, metrics[b].test_loss, floor=floor, num_bootstrap=num_bootstrap
        )
        for c in candidates
        for b in baselines
    }
    best = None
    if oracle is not None:
        names = sorted(oracle.grid)
        points = list(itertools.product(*(sorted(oracle.grid[n]) for n in names)))
        losses_at = _point_test_losses(family, oracle, names, heldout_keys, horizon)
        losses = np.stack([losses_at(p) for p in points])
        best = np.min(np.where(np.isfinite(losses), losses, np.inf), axis=0)
    return ProtocolResult(metrics, tuning, comparisons, best, horizon, seconds)
