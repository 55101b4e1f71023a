"""`LSTMSchedule`: a learning-rate schedule that is a small LSTM reading the loss.

A pure `flax.linen` module: given its carry and this step's loss and gradient norm it returns a
new carry and a learning rate. `lookahead_jax.learned_schedule` turns it into an optax
transformation.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lookahead_jax import checks


class ScheduleCarry(NamedTuple):
    """Recurrent state of `LSTMSchedule`: the LSTM carry and running statistics of training.

    The LSTM part is stored as two named fields, `c` then `h`, in flax's order: flax's
    `LSTMCell` carry is the tuple `(c, h)` (equinox's is `(h, c)`).
    """

    # shape=(hidden_size,), or (ensemble_size, hidden_size) for an ensemble: LSTM cell state
    c: jax.Array
    h: jax.Array  # shaped like `c`: LSTM hidden state (the output layer reads it)
    count: jax.Array  # shape=(), int32: steps seen so far (saturates at int32 max)
    n_finite: jax.Array  # shape=(), int32: steps whose loss was finite (saturates)
    log_loss_avg: jax.Array  # shape=(): running average of log(loss) over finite losses
    log_loss_init: jax.Array  # shape=(): log of the first finite loss
    log_gnorm_avg: jax.Array  # shape=(): running average of log(gradient norm)
    log_gnorm_init: jax.Array  # shape=(): log of the first finite gradient norm
    # shape=(): 1 / horizon, 0 when the horizon is unknown. A carry field (not only the module
    # attribute) so that meta-training can hide the horizon from some tasks of a batch.
    inv_horizon: jax.Array
    # shape=(): running average of the alignment cos(g_t, u_{t-1}) (read only with
    # `alignment_features`; kept in every carry so that the carry's structure never depends on
    # it). After the fields above, so they keep their positions.
    align_avg: jax.Array
    # The validation loss's statistics (read only with `validation_features`; kept in every
    # carry, as `align_avg` is). Last, so the fields above keep their positions.
    n_val_finite: jax.Array  # shape=(), int32: steps whose validation loss was finite
    log_val_init: jax.Array  # shape=(): log of the first finite validation loss
    log_val_best: jax.Array  # shape=(): log of the lowest finite validation loss so far


class LSTMSchedule(nn.Module):
    r"""A learning-rate schedule computed by an LSTM from scale-free features of training.

    Each step it reads, clipped to :math:`[-c, c]` (``feature_clip``):

    - :math:`\log(L_t / \bar L_{t-1})`, the loss against its running (geometric) average, and
      :math:`\log(L_t / L_0)`, against the first loss;
    - the same two ratios for the gradient norm :math:`\|g_t\|`, and :math:`\tfrac14 \log\|g_t\|`;
    - a flag that is 1 when the loss or gradient norm is not finite (those features are then set
      to :math:`+c`, and the running statistics skip the step, so a NaN or infinite loss never
      reaches the carry);
    - the step as :math:`\tfrac14 \log(t+1)`, :math:`\sin\log(t+1)`, :math:`\cos\log(t+1)`;
    - with ``progress_features=True``, the training progress :math:`t/T` for a known horizon
      :math:`T` (``horizon``) and a flag that is 1 when the horizon is known (both 0 when
      ``horizon`` is None), so one set of params serves runs with and without a horizon;
    - with ``alignment_features=True``, the cosine :math:`\cos(g_t, u_{t-1})` between this
      step's gradient and the previous step's update direction, and its running average: the
      sign of the hypergradient :math:`\partial L_t / \partial \eta_{t-1} = g_t \cdot u_{t-1}`
      (Baydin et al. 2018), a direct signal of a rate that is too low (negative: the loss still
      falls along the last step) or too high (positive: the step overshot). `learned_schedule`
      computes it (keeping the previous update, one params-sized buffer); 0 on the first step,
      when either vector is zero, and when it is not finite;
    - with ``validation_features=True``, three features of a validation loss :math:`V_t` (the
      loss on rows the run does not train on, passed to `learned_schedule` as ``val_loss=``):
      :math:`\log(V_t / \min_{s<t} V_s)`, positive once it rises above its best (overfitting, the
      signal ``ReduceLROnPlateau`` and early stopping read), :math:`\log(V_t / V_0)`, and the
      generalisation gap :math:`\log V_t - \overline{\log L}_t` against the training loss's
      running average. A non-finite :math:`V_t` reads as :math:`+c` and skips the statistics.

    and emits :math:`\eta_t` through a smooth map that is bounded in log space,

    .. math::
      \log \eta_t = \log \eta_0 + w\,\frac{s (1 - \tau^2)}{1 + s \tau}, \qquad s = \tanh z_t,

    with :math:`z_t` the output layer on the LSTM's hidden state,
    :math:`w = \tfrac12 \log(\eta_{\max}/\eta_{\min})` and :math:`\tau` chosen so that
    :math:`\eta_t \in (\eta_{\min}, \eta_{\max})`. The output layer starts at zero, so an untrained
    schedule returns exactly ``base_lr`` (:math:`s = 0`) at every step. Written this way (rather
    than :math:`\tanh(z + \text{const})`) the untrained rate is ``base_lr`` bit for bit.

    With ``ensemble_size=E > 1`` the module holds E independent LSTMs and output layers (each
    param stacked on a leading axis of size E; `stack_schedule_params` builds them from E trained
    single schedules) that read the same features, and :math:`\eta_t` is the geometric mean of
    their E rates: the mean of their :math:`\log \eta_t`. Averaging meta-training seeds this way
    costs E small LSTM steps per update (no params-sized work) and removes the seed-to-seed
    spread of any single one.

    Attributes:
      base_lr: the rate of the untrained schedule.
      min_lr: lower bound of the rate (default ``base_lr / 100``); must be below ``base_lr``.
      max_lr: upper bound of the rate (default ``10 * base_lr``); must be above ``base_lr``.
      hidden_size: LSTM width.
      feature_clip: every feature is clipped to ``[-feature_clip, feature_clip]``.
      avg_decay: decay of the running averages of log-loss and log-gradient-norm, in [0, 1).
      drop_features: feature groups fed as zeros, for ablations: any of ``"loss"`` (the two loss
        ratios), ``"grad_norm"`` (the three gradient-norm features), ``"nonfinite"`` (the flag)
        ``"time"`` (the three step features), ``"progress"`` (the two horizon features) and
        ``"alignment"`` (the two alignment features). The
        params keep their shapes, so a trained schedule can be evaluated with a group removed.
      horizon: the number of training steps, when known (read only with
        ``progress_features``).
      progress_features: add the two progress features (2 more LSTM inputs: params trained
        without them do not fit a schedule with them, and vice versa).
      alignment_features: add the two gradient-update alignment features (2 more LSTM inputs,
        after the progress features; the feature group ``"alignment"``).
      validation_features: add the three validation-loss features (3 more LSTM inputs, after
        the alignment features; the feature group ``"validation"``); `learned_schedule` then
        needs ``val_loss=`` at every update.
      ensemble_size: the number of LSTMs whose rates are averaged (1: a single schedule).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lookahead_jax.lstm_schedule import LSTMSchedule
      >>> schedule = LSTMSchedule(base_lr=0.1)
      >>> params = schedule.init_params(jax.random.key(0))
      >>> carry, lr = schedule.apply(
      ...     params, schedule.initial_carry(), jnp.float32(2.0), jnp.float32(1.0))
      >>> float(lr)  # untrained: exactly base_lr
      0.10000000149011612
    """

    base_lr: float
    min_lr: float | None = None
    max_lr: float | None = None
    hidden_size: int = 16
    feature_clip: float = 5.0
    avg_decay: float = 0.9
    drop_features: tuple[str, ...] = ()
    horizon: int | None = None
    progress_features: bool = False
    alignment_features: bool = False
    validation_features: bool = False
    ensemble_size: int = 1

    # Feature group -> its indices in the feature vector (index 9, a constant 1, is a bias).
    FEATURE_GROUPS: ClassVar[dict[str, tuple[int, ...]]] = {
        "loss": (0, 1),
        "grad_norm": (2, 3, 4),
        "nonfinite": (5,),
        "time": (6, 7, 8),
        "progress": (10, 11),
    }

    def __post_init__(self) -> None:
        for name in ("base_lr", "feature_clip"):
            checks.positive_finite("LSTMSchedule", name, getattr(self, name))
        lo, hi = self.lr_bounds
        base_lr = self.base_lr
        if not (math.isfinite(lo) and lo > 0 and math.isfinite(hi)):
            raise ValueError(
                f"LSTMSchedule: min_lr and max_lr must be positive and finite, got "
                f"min_lr={self.min_lr!r}, max_lr={self.max_lr!r}"
            )
        if not lo < base_lr < hi:
            raise ValueError(
                "LSTMSchedule: need min_lr < base_lr < max_lr, got "
                f"min_lr={lo!r}, {base_lr=}, max_lr={hi!r}"
            )
        # The checked ints replace what was given (a shape-() array is accepted): Flax and the
        # feature arithmetic need Python ints. Dataclass fields are set before Flax freezes them.
        size = checks.integer("LSTMSchedule", "hidden_size", self.hidden_size, 1)
        object.__setattr__(self, "hidden_size", size)
        ensemble = checks.integer("LSTMSchedule", "ensemble_size", self.ensemble_size, 1)
        object.__setattr__(self, "ensemble_size", ensemble)
        checks.in_unit_interval("LSTMSchedule", "avg_decay", self.avg_decay)
        if self.horizon is not None:
            horizon = checks.integer("LSTMSchedule", "horizon", self.horizon, 1)
            object.__setattr__(self, "horizon", horizon)
        groups = self.feature_groups()
        unknown = [g for g in self.drop_features if g not in groups]
        if isinstance(self.drop_features, str) or unknown:
            raise ValueError(
                f"LSTMSchedule: drop_features must be a tuple of {', '.join(groups)}, "
                f"got drop_features={self.drop_features!r}"
            )
        super().__post_init__()

    @property
    def num_features(self) -> int:
        """Length of the LSTM's input vector: 10, plus 2 with ``progress_features``, 2 with
        ``alignment_features`` and 3 with ``validation_features``."""
        return (
            10
            + 2 * self.progress_features
            + 2 * self.alignment_features
            + 3 * self.validation_features
        )

    def feature_groups(self) -> dict[str, tuple[int, ...]]:
        """Feature group -> its indices in this schedule's feature vector (empty for an optional
        group this schedule does not have, so dropping it drops nothing)."""
        groups = {k: v for k, v in self.FEATURE_GROUPS.items() if k != "progress"}
        optional = (
            ("progress", 2, self.progress_features),
            ("alignment", 2, self.alignment_features),
            ("validation", 3, self.validation_features),
        )
        first = 10
        for name, size, present in optional:
            groups[name] = tuple(range(first, first + size)) if present else ()
            first += size if present else 0
        return groups

    @property
    def lr_bounds(self) -> tuple[float, float]:
        """(min_lr, max_lr) with the defaults filled in."""
        lo = self.base_lr / 100.0 if self.min_lr is None else float(self.min_lr)
        hi = self.base_lr * 10.0 if self.max_lr is None else float(self.max_lr)
        return lo, hi

    def initial_carry(self, dtype: Any = jnp.float32) -> ScheduleCarry:
        """The carry before the first step (needs no params)."""
        # A separate buffer per field: aliased fields could not be donated ("donate the same
        # buffer twice").
        shape = (
            [self.hidden_size]
            if self.ensemble_size == 1
            else [self.ensemble_size, self.hidden_size]
        )
        vector = lambda: jnp.zeros(shape, dtype)
        scalar = lambda: jnp.zeros([], dtype)
        count = lambda: jnp.zeros([], jnp.int32)
        inv_horizon = jnp.asarray(0.0 if self.horizon is None else 1.0 / self.horizon, dtype)
        return ScheduleCarry(
            vector(),
            vector(),
            count(),
            count(),
            scalar(),
            scalar(),
            scalar(),
            scalar(),
            inv_horizon,
            scalar(),
            count(),
            scalar(),
            scalar(),
        )

    def init_params(self, key: jax.Array) -> Any:
        """Initial params (the output layer is zero, so the schedule starts at ``base_lr``)."""
        scalar = jnp.ones([], jnp.float32)
        val_loss = scalar if self.validation_features else None
        return self.init(key, self.initial_carry(), scalar, scalar, val_loss=val_loss)

    def features(
        self,
        carry: ScheduleCarry,
        loss: jax.Array,
        grad_norm: jax.Array,
        alignment: jax.Array | None = None,
        val_loss: jax.Array | None = None,
    ) -> tuple[jax.Array, ScheduleCarry]:
        """The clipped input features and the carry with updated running statistics."""
        dtype = carry.log_loss_avg.dtype
        clip = self.feature_clip
        loss = jnp.asarray(loss, dtype)
        grad_norm = jnp.asarray(grad_norm, dtype)
        tiny = jnp.finfo(dtype).tiny

        def safe_log(x):
            # Double `where`: a non-finite x must not reach `log`, or its NaN would come back in
            # the backward pass even though the forward value is masked out.
            ok = jnp.isfinite(x)
            return ok, jnp.log(jnp.maximum(jnp.where(ok, x, 1.0), tiny))

        def ratios(ok, log_x, avg, init, first):
            # On the first finite step both statistics start at this step's value.
            start = first & ok
            avg = jnp.where(start, log_x, avg)
            init = jnp.where(start, log_x, init)
            rel_avg = jnp.where(ok, jnp.clip(log_x - avg, -clip, clip), clip)
            rel_init = jnp.where(ok, jnp.clip(log_x - init, -clip, clip), clip)
            # Statistics skip non-finite steps, so one NaN never reaches the carry.
            new_avg = jnp.where(ok, self.avg_decay * avg + (1.0 - self.avg_decay) * log_x, avg)
            return rel_avg, rel_init, new_avg, init

        loss_ok, log_loss = safe_log(loss)
        gnorm_ok, log_gnorm = safe_log(grad_norm)
        both_ok = loss_ok & gnorm_ok
        n = carry.n_finite
        l_avg, l_init, new_l_avg, new_l_init = ratios(
            both_ok, log_loss, carry.log_loss_avg, carry.log_loss_init, n == 0
        )
        g_avg, g_init, new_g_avg, new_g_init = ratios(
            both_ok, log_gnorm, carry.log_gnorm_avg, carry.log_gnorm_init, n == 0
        )
        raw_gnorm = jnp.where(gnorm_ok, jnp.clip(0.25 * log_gnorm, -clip, clip), clip)
        bad = (~both_ok).astype(dtype)
        log_t = jnp.log1p(carry.count.astype(dtype))
        progress = []
        if self.progress_features:
            inv_h = carry.inv_horizon.astype(dtype)
            progress = [
                jnp.clip(carry.count.astype(dtype) * inv_h, 0.0, clip),
                (inv_h > 0).astype(dtype),
            ]
        align, new_align_avg = [], carry.align_avg
        if self.alignment_features:
            # Non-finite (a NaN gradient) reads as 0, no information, and skips the average.
            a = jnp.zeros([], dtype) if alignment is None else jnp.asarray(alignment, dtype)
            a_ok = jnp.isfinite(a)
            a = jnp.where(a_ok, jnp.clip(a, -1.0, 1.0), 0.0)
            decay = jnp.asarray(self.avg_decay, dtype)
            new_align_avg = jnp.where(
                a_ok, decay * carry.align_avg + (1.0 - decay) * a, carry.align_avg
            )
            align = [a, new_align_avg]
        val, val_stats = [], {}
        if self.validation_features:
            if val_loss is None:
                raise ValueError(
                    "LSTMSchedule: a schedule with validation_features needs val_loss (the loss "
                    "on rows the run does not train on) at every step, got val_loss=None"
                )
            val_ok, log_val = safe_log(jnp.asarray(val_loss, dtype))
            first = val_ok & (carry.n_val_finite == 0)
            best = jnp.where(first, log_val, carry.log_val_best)
            init = jnp.where(first, log_val, carry.log_val_init)
            rel = lambda d: jnp.where(val_ok, jnp.clip(d, -clip, clip), clip)
            # The gap reads the training loss's average as updated by this step (one step older
            # would lag the validation loss of the same params).
            val = [rel(log_val - best), rel(log_val - init), rel(log_val - new_l_avg)]
            val_stats = dict(
                n_val_finite=jnp.where(
                    val_ok, optax.safe_increment(carry.n_val_finite), carry.n_val_finite
                ),
                log_val_init=init,
                log_val_best=jnp.where(val_ok, jnp.minimum(best, log_val), best),
            )
        feats = jnp.stack(
            [
                l_avg,
                l_init,
                g_avg,
                g_init,
                raw_gnorm,
                bad,
                jnp.clip(0.25 * log_t, -clip, clip),
                jnp.sin(log_t),
                jnp.cos(log_t),
                jnp.ones([], dtype),
                *progress,
                *align,
                *val,
            ]
        )
        if self.drop_features:
            groups = self.feature_groups()
            dropped = {i for g in self.drop_features for i in groups[g]}
            keep = [0.0 if i in dropped else 1.0 for i in range(self.num_features)]
            feats = feats * jnp.asarray(keep, dtype)
        new_carry = carry._replace(
            count=optax.safe_increment(carry.count),
            n_finite=jnp.where(both_ok, optax.safe_increment(n), n),
            log_loss_avg=new_l_avg,
            log_loss_init=new_l_init,
            log_gnorm_avg=new_g_avg,
            log_gnorm_init=new_g_init,
            align_avg=new_align_avg,
            **val_stats,
        )
        return feats, new_carry

    def log_rate_offset(self, z: jax.Array) -> jax.Array:
        """log(rate / base_lr) for the output layer's value `z`: bounded in log space, exactly 0
        at z = 0."""
        lo, hi = self.lr_bounds
        half = 0.5 * (math.log(hi) - math.log(lo))
        tau = (math.log(self.base_lr) - 0.5 * (math.log(hi) + math.log(lo))) / half
        s = jnp.tanh(z)
        # tanh(z + atanh(tau)) - tau, written so that z = 0 gives exactly 0.
        shift = s * (1.0 - tau * tau) / (1.0 + s * tau)
        return half * shift

    def lr_from_output(self, z: jax.Array) -> jax.Array:
        """The bounded map from the output layer's value to the learning rate."""
        return self.base_lr * jnp.exp(self.log_rate_offset(z))

    @nn.compact
    def __call__(
        self,
        carry: ScheduleCarry,
        loss: jax.Array,
        grad_norm: jax.Array,
        alignment: jax.Array | None = None,
        val_loss: jax.Array | None = None,
    ) -> tuple[ScheduleCarry, jax.Array]:
        """One step: returns the new carry and the learning rate for this step's update.

        Args:
          carry: the previous `ScheduleCarry` (`initial_carry()` before the first step).
          loss: this step's training loss (a scalar; non-finite values are tolerated).
          grad_norm: the global norm of this step's gradient (a scalar).
          alignment: with ``alignment_features``, cos(g_t, u_{t-1}) (a scalar; None or 0 where
            there is no previous update); ignored otherwise.
          val_loss: with ``validation_features``, this step's validation loss (a scalar; required
            then, non-finite values tolerated); ignored otherwise.

        Returns:
          `(new_carry, lr)`, `lr` a scalar of the carry's dtype.
        """
        feats, carry = self.features(carry, loss, grad_norm, alignment, val_loss)
        if self.ensemble_size == 1:  # its params at the top level, as every trained one has them
            c, h, z = _lstm_step(_lstm_modules(self.hidden_size), carry.c, carry.h, feats)
            lr = self.lr_from_output(z)
        else:
            members = nn.vmap(
                _Member,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=(0, 0, None),  # each member its own carry, the same features
                axis_size=self.ensemble_size,
            )(self.hidden_size, name="members")
            c, h, z = members(carry.c, carry.h, feats)
            lr = self.base_lr * jnp.exp(jnp.mean(self.log_rate_offset(z)))  # geometric mean
        lr = lr.astype(carry.log_loss_avg.dtype)
        return carry._replace(c=c.astype(carry.c.dtype), h=h.astype(carry.h.dtype)), lr


def _leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    return {
        jax.tree_util.keystr(k): tuple(jnp.shape(v))
        for k, v in jax.tree_util.tree_leaves_with_path(tree)
    }


def _shape_differences(want: Any, got: Any) -> list[str]:
    """'path: expected shape, got shape' for each leaf where two pytrees differ."""
    want, got = _leaf_shapes(want), _leaf_shapes(got)
    return [
        f"{k}: expected {want.get(k, 'no leaf')}, got {got.get(k, 'no leaf')}"
        for k in sorted(set(want) | set(got))
        if want.get(k) != got.get(k)
    ]


def check_params(caller: str, schedule: LSTMSchedule, params: Any) -> None:
    """Raises a ValueError naming `caller` if `params` do not have the shapes `schedule` needs
    (another hidden size, feature set or ensemble size), instead of a shape error inside the LSTM.
    """
    diff = _shape_differences(jax.eval_shape(schedule.init_params, jax.random.key(0)), params)
    if diff:
        raise ValueError(
            f"{caller}: schedule_params do not fit the schedule (hidden_size="
            f"{schedule.hidden_size}, {schedule.num_features} features, ensemble_size="
            f"{schedule.ensemble_size}); {len(diff)} leaves differ, e.g. " + "; ".join(diff[:3])
        )


def _lstm_modules(hidden_size: int) -> tuple[nn.Module, nn.Module]:
    """The LSTM cell and output layer of one schedule (call inside a compact method)."""
    cell = nn.OptimizedLSTMCell(hidden_size, name="lstm")
    return cell, nn.Dense(1, kernel_init=nn.initializers.zeros, name="out")


def _lstm_step(modules, c, h, feats):
    """One LSTM step from the features: (c, h, output layer's value)."""
    cell, dense = modules
    (c, h), out = cell((c, h), feats)  # flax's carry order: (c, h)
    return c, h, dense(out)[0]


class _Member(nn.Module):
    """One schedule of an ensemble: its LSTM and output layer (vmapped by `LSTMSchedule`)."""

    hidden_size: int

    @nn.compact
    def __call__(self, c, h, feats):
        return _lstm_step(_lstm_modules(self.hidden_size), c, h, feats)


def _describe(tree: Any) -> str:
    """A short description of a would-be params dict: its keys two levels down."""
    if not isinstance(tree, Mapping):
        return f"a {type(tree).__name__}"
    inner = tree.get("params")
    below = f", under 'params' {sorted(inner)}" if isinstance(inner, Mapping) else ""
    return f"keys {sorted(tree)}{below}"


def stack_schedule_params(member_params: Sequence[Any]) -> Any:
    """The params of an ensemble `LSTMSchedule` from those of its members.

    Args:
      member_params: the params of E >= 2 single schedules of one configuration (e.g. the
        meta-training seeds of one recipe), each as `LSTMSchedule.init_params` returns them.

    Returns:
      The params of ``schedule.clone(ensemble_size=E)``: each member's LSTM and output layer
      stacked on a leading axis, in the order given.

    Raises:
      ValueError: if fewer than two are given, or their structures or shapes differ.

    Example:
      >>> import jax
      >>> from lookahead_jax import LSTMSchedule, stack_schedule_params
      >>> single = LSTMSchedule(base_lr=0.01)
      >>> members = [single.init_params(jax.random.key(i)) for i in range(3)]
      >>> ensemble = single.clone(ensemble_size=3)
      >>> params = stack_schedule_params(members)
      >>> carry, lr = ensemble.apply(params, ensemble.initial_carry(), 1.0, 1.0)
      >>> round(float(lr), 6)  # untrained members: each at base_lr
      0.01
    """
    members = list(member_params)
    if len(members) < 2:
        raise ValueError(
            f"stack_schedule_params: member_params needs at least 2 schedules' params, got "
            f"{len(members)}"
        )
    for i, m in enumerate(members):
        single = (
            isinstance(m, Mapping) and set(m) == {"params"} and isinstance(m["params"], Mapping)
        )
        if not (single and set(m["params"]) == {"lstm", "out"}):
            raise ValueError(
                f"stack_schedule_params: member_params[{i}] is not a single schedule's params, "
                f"{{'params': {{'lstm': ..., 'out': ...}}}}; got {_describe(m)}"
            )
    for i, m in enumerate(members[1:], start=1):
        diff = _shape_differences(members[0], m)
        if diff:
            raise ValueError(
                f"stack_schedule_params: member_params[{i}] differs from member_params[0] in "
                f"{len(diff)} leaves, e.g. " + "; ".join(diff[:3])
            )
    return {
        "params": {
            "members": jax.tree.map(lambda *x: jnp.stack(x), *[m["params"] for m in members])
        }
    }


def __getattr__(name: str):
    # Moved in 0.2 to their own modules; importable from here for one release, with a warning.
    from lookahead_jax._deprecated import moved

    moves = {
        "learned_schedule": "lookahead_jax.learned_schedule",
        "LearnedScheduleState": "lookahead_jax.learned_schedule",
        "current_learning_rate": "lookahead_jax.learned_schedule",
        "ExtraArgsTrainState": "lookahead_jax.flax_train_state",
    }
    if name in moves:
        return moved(f"lookahead_jax.lstm_schedule.{name}", moves[name])
    raise AttributeError(f"module 'lookahead_jax.lstm_schedule' has no attribute {name!r}")
