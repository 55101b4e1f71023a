"""Lookahead (Zhang et al. 2019) around any optax transformation, slow weights kept in the state."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lookahead_jax import checks, nested_state


def _concatenate(leaves: list[jax.Array], dtype: Any) -> jax.Array:
    """The leaves raveled into one fresh 1-D buffer of `dtype`."""
    parts = [jnp.ravel(leaf).astype(dtype) for leaf in leaves]
    return jnp.concatenate(parts) if parts else jnp.zeros((0,), dtype)


def _is_placeholder(params: Any) -> bool:
    """Whether `init` is being called by `optax.tree_map_params` (with its placeholder)."""
    return type(params).__name__ == "_ParamsPlaceholder"


@jax.tree_util.register_pytree_node_class
class FlatSlow:
    """The slow weights as one flat buffer: `lookahead`'s layout on one device.

    One buffer instead of one per leaf: a jitted step pays JAX's per-buffer dispatch cost once
    rather than per leaf, which is what dominates for many small leaves. The tree structure and
    leaf shapes are static (pytree aux data), so `jit`, `vmap` and checkpoints see one array.
    """

    def __init__(self, buffer: jax.Array, treedef: Any, shapes: tuple[tuple[int, ...], ...]):
        self.buffer = buffer  # shape=(total size,), the slow dtype
        self.treedef = treedef
        self.shapes = shapes

    @classmethod
    def from_tree(cls, tree: optax.Params, dtype: Any = None) -> "FlatSlow":
        leaves, treedef = jax.tree.flatten(tree)
        dtype = dtype or (jnp.result_type(*leaves) if leaves else jnp.float32)
        return cls(_concatenate(leaves, dtype), treedef, tuple(jnp.shape(x) for x in leaves))

    def leaves(self) -> list[jax.Array]:
        """The slow weights leaf by leaf, in the params' flattening order (slices: no copy in jit).

        Leading axes of the buffer (e.g. from `jax.vmap` over models) lead every leaf.
        """
        batch, leaves, offset = self.buffer.shape[:-1], [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            leaves.append(self.buffer[..., offset : offset + size].reshape(*batch, *shape))
            offset += size
        return leaves

    def to_tree(self) -> optax.Params:
        """The slow weights as a pytree like the params (slices of the buffer: no copy in jit)."""
        return jax.tree.unflatten(self.treedef, self.leaves())

    def with_leaves(self, leaves: list[jax.Array]) -> "FlatSlow":
        """The same layout (tree structure, shapes, dtype) holding new leaves."""
        return FlatSlow(_concatenate(leaves, self.buffer.dtype), self.treedef, self.shapes)

    def tree_flatten(self):
        return (self.buffer,), (self.treedef, self.shapes)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], *aux)

    def __repr__(self) -> str:
        return f"FlatSlow(buffer={self.buffer!r}, leaves={len(self.shapes)})"


class LookaheadState(NamedTuple):
    """State of `lookahead`."""

    inner_state: optax.OptState
    slow: optax.Params | FlatSlow  # one copy of the params: the slow weights phi
    count: jax.Array  # shape=(), int32: fast steps taken so far (wraps keeping the phase mod k)


def _slow_target(u, p, s, alpha):
    """phi + alpha (theta + u - phi): the new slow weights, in the widest of the three dtypes."""
    # result_type canonicalises: a NumPy float64 param is float32 to JAX without x64.
    dtype = jnp.result_type(u, p, s)
    s_wide = s.astype(dtype)
    return s_wide + jnp.asarray(alpha, dtype) * (p.astype(dtype) + u.astype(dtype) - s_wide)


def _check_step_size(slow_step_size: Any) -> optax.Schedule:
    if callable(slow_step_size):
        return slow_step_size
    # A traced value (optax.inject_hyperparams) passes unchecked: it cannot be read here.
    alpha = checks.in_unit_interval("lookahead", "slow_step_size", slow_step_size, closed_high=True)
    value = slow_step_size if alpha is None else alpha
    return lambda _: value


def lookahead(
    inner: optax.GradientTransformation,
    sync_period: int = 5,
    slow_step_size: optax.ScalarOrSchedule = 0.5,
    reset_inner_state: bool = False,
    slow_dtype: Any = None,
    slow_layout: str = "auto",
) -> optax.GradientTransformationExtraArgs:
    r"""Lookahead: k fast steps of `inner`, then one step of the slow weights towards them.

    With fast weights :math:`\theta` (the params you pass) and slow weights :math:`\phi` (kept in
    the state, starting at the initial params), at each step :math:`t = 1, 2, \dots`:

    .. math::
      \theta \leftarrow \theta + u_t, \qquad
      \text{if } t \bmod k = 0: \quad
      \phi \leftarrow \phi + \alpha (\theta - \phi), \quad \theta \leftarrow \phi

    where :math:`u_t` is the update of `inner`. The params stay your plain pytree: on a sync step
    the returned update moves them straight onto the new slow weights. Evaluate and export
    `slow_params(state)`; between syncs the params are the exploratory fast weights.

    Args:
      inner: any optax transformation (a plain `GradientTransformation` is fine; extra keyword
        arguments such as `value=`/`grad=`/`value_fn=` are forwarded to it, so
        `lookahead(optax.lbfgs())` works).
      sync_period: k, the number of fast steps between syncs (an int >= 1).
      slow_step_size: alpha in [0, 1], or an optax schedule evaluated on the number of syncs
        already done (0 at the first sync; never evaluated at a negative count). alpha = 1 is
        plain `inner`; alpha = 0 resets the fast weights to the fixed initial weights at each
        sync (accepted, as optax's and timm's Lookahead accept it).
      reset_inner_state: re-initialise the inner state (at the new slow weights) after each sync,
        as optax's `reset_state`. The paper keeps it (the default).
      slow_dtype: dtype of the slow weights (e.g. `jnp.float32` under bfloat16 params); `None`
        keeps each param's dtype. Updates always come back in the dtype of the inner updates.
      slow_layout: where the slow weights live. `"auto"` (default) chooses at `init`: one flat
        buffer (`"flat"`) when the process has a single device and the params share one dtype
        (or `slow_dtype` is set), else one buffer per param (`"tree"`). `"tree"` keeps each
        slow buffer with its param's sharding, so FSDP-sharded params get sharded slow weights.
        `"flat"` keeps them in one 1-D buffer (of `slow_dtype`, else the widest param dtype):
        with many small leaves it saves JAX's per-buffer cost on every step (1.3-1.7x -> about
        1.1x of AdamW's step on 200 leaves, see the README's benchmarks), but it cannot follow a
        sharded layout. The choice never changes the numbers, only the state's structure.

    Params must be floating-point arrays (a `TypeError` names any integer, boolean, key or Python
    scalar leaf), and the updates passed to `update` must have the structure and shapes of the
    params (`ValueError`). The slow weights are computed in the widest of the param, slow and
    update dtypes and stored in the slow dtype, whatever the update dtype.

    Nothing may be chained after `lookahead`: it must see the final update, or the sync moves the
    params to the wrong place. Put it outermost (or last in an `optax.chain`).

    With the flat layout (``"flat"``, or ``"auto"`` on one device), `optax.tree_map_params` cannot
    map the state (the flat buffer is not shaped like the params) and raises a `TypeError` saying
    so; pass ``slow_layout="tree"`` where single-device code derives per-param trees (such as
    shardings) from the state. On several devices ``"auto"`` is ``"tree"``. A checkpoint moved
    between a one-device and a multi-device machine restores into the same layout only when the
    layout is given explicitly.

    Returns:
      An `optax.GradientTransformationExtraArgs`. Its `update` requires `params`.

    Example:
      >>> import jax.numpy as jnp, optax, lookahead_jax as lj
      >>> tx = lj.lookahead(optax.sgd(0.1), sync_period=2, slow_step_size=0.5)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> for _ in range(2):
      ...     grads = params  # gradient of 0.5 * |w|^2
      ...     updates, state = tx.update(grads, state, params)
      ...     params = optax.apply_updates(params, updates)
      >>> lj.slow_params(state)["w"]  # halfway from 1 to 1 * 0.9**2
      Array([ 0.905, -1.81 ], dtype=float32)

    References:
      Zhang, Lucas, Hinton and Ba, "Lookahead Optimizer: k steps forward, 1 step back",
      NeurIPS 2019. https://arxiv.org/abs/1907.08610
    """
    inner = checks.transformation("lookahead", inner)
    k = checks.integer("lookahead", "sync_period", sync_period, 1)
    step_size_fn = _check_step_size(slow_step_size)
    slow_dtype = checks.dtype("lookahead", "slow_dtype", slow_dtype, floating=True)
    # The counter wraps from the largest multiple of k back to one past the previous multiple, so
    # the sync phase survives arbitrarily long runs and the count never overflows int32.
    wrap_at = (checks.INT32_MAX // k) * k

    if slow_layout not in ("auto", "tree", "flat"):
        raise ValueError(
            f"lookahead: slow_layout must be 'auto', 'tree' or 'flat', got {slow_layout=}"
        )

    def resolve_layout(params: optax.Params) -> str:
        """`slow_layout`, with "auto" decided from static facts only (the device count, dtypes).

        Never from where the given arrays happen to live: eager, jitted and `eval_shape` inits on
        one machine must give one state structure, or checkpoints fail to restore.
        """
        if slow_layout != "auto":
            return slow_layout
        if jax.device_count() > 1:
            return "tree"
        if _is_placeholder(params):  # its dtypes are unknown: refused below, as "flat" is
            return "flat"
        dtypes = {jnp.result_type(leaf) for leaf in jax.tree.leaves(params)}
        return "flat" if slow_dtype is not None or len(dtypes) <= 1 else "tree"

    def init_fn(params: optax.Params) -> LookaheadState:
        layout = resolve_layout(params)
        if layout == "flat" and _is_placeholder(params):
            raise TypeError(
                f"lookahead(slow_layout={slow_layout!r}): optax.tree_map_params cannot map this "
                "state: its slow weights are one flat buffer (the layout 'auto' picks on a single "
                "device), not shaped like the params. Pass slow_layout='tree' where you derive "
                "shardings or other per-param trees from the state."
            )
        checks.float_params("lookahead", params)
        # A fresh buffer even when the dtype is unchanged: the slow weights must never alias the
        # params, or jitting the step with both donated fails ("donate the same buffer twice").
        if layout == "flat":
            slow = FlatSlow.from_tree(params, slow_dtype)  # concatenate: a fresh buffer
        else:
            slow = jax.tree.map(lambda p: jnp.array(p, dtype=slow_dtype, copy=True), params)
        return LookaheadState(
            inner_state=inner.init(params), slow=slow, count=jnp.zeros([], jnp.int32)
        )

    def update_fn(
        updates: optax.Updates,
        state: LookaheadState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, LookaheadState]:
        if params is None:
            raise ValueError(
                "lookahead: update needs the current params (the fast weights) to move them onto "
                "the slow weights at a sync; call tx.update(grads, state, params)."
            )
        checks.like_params("lookahead", updates, params)
        fast_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        # As JAX arrays: an eager NumPy float64 leaf is float32 to JAX without x64, and casting
        # to its NumPy dtype would ask for float64.
        fast_updates, params = jax.tree.map(jnp.asarray, (fast_updates, params))
        count = jnp.where(state.count >= wrap_at, state.count - k + 1, state.count + 1)
        sync = count % k == 0
        # The syncs done before this one; clamped so a schedule never sees -1 (off-sync steps
        # compute alpha too, and discard it).
        alpha = step_size_fn(jnp.maximum(count // k - 1, 0))

        # The returned update is one element-wise expression per leaf, so XLA fuses the inner
        # update, the slow step and the user's apply_updates into one pass that reads the slow
        # weights once and keeps no temporary. Where the slow weights share the param dtype, the
        # new slow weights *are* the new params (theta <- phi), so they are written only on sync
        # steps, by a `lax.cond` that is a no-op (an aliased pass-through) on the others.
        def leaf_update(u, p, s):
            target = _slow_target(u, p, s, alpha)
            return jnp.where(sync, (target - p.astype(target.dtype)).astype(u.dtype), u)

        flat = isinstance(state.slow, FlatSlow)
        # The flat layout's leaves in the structure of the params given here, which may differ
        # in node types from those at init (flax.nnx.Optimizer inits on Param variables and
        # updates on plain arrays); the state keeps its own structure.
        old_slow = (
            jax.tree.unflatten(jax.tree.structure(params), state.slow.leaves())
            if flat
            else state.slow
        )
        new_updates = jax.tree.map(leaf_update, fast_updates, params, old_slow)
        # Exactly optax.apply_updates' expression, so XLA computes it once for both uses.
        new_params = jax.tree.map(
            lambda p, u: jnp.asarray(p + u).astype(jnp.asarray(p).dtype), params, new_updates
        )
        # new_params *are* the new slow weights only where the param, slow and update dtypes all
        # agree: a narrower update (bf16 under f32 params) rounds `target - p`, so the slow
        # weights are then computed afresh in the widest dtype and stored in their own.
        same_dtype = jax.tree.map(
            lambda p, s, u: p.dtype == s.dtype == u.dtype, params, old_slow, fast_updates
        )

        def synced_slow():
            synced = jax.tree.map(
                lambda same, p_new, u, p, s: (
                    p_new if same else _slow_target(u, p, s, alpha).astype(s.dtype)
                ),
                same_dtype,
                new_params,
                fast_updates,
                params,
                old_slow,
            )
            return state.slow.with_leaves(jax.tree.leaves(synced)) if flat else synced

        slow = jax.lax.cond(sync, synced_slow, lambda: state.slow)

        if reset_inner_state:
            # A cond, not a select: off-sync the state passes through without being rewritten.
            # On a sync the new params are the slow weights in the param dtypes: initialising
            # there (not at `slow`, which may be wider) keeps the inner state's dtypes.
            inner_state = jax.lax.cond(sync, lambda: inner.init(new_params), lambda: inner_state)
        return new_updates, LookaheadState(inner_state=inner_state, slow=slow, count=count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def slow_params(state: optax.OptState, params: optax.Params | None = None) -> optax.Params:
    """Returns the slow weights of the outermost `lookahead` inside an optimizer state.

    These are the weights to evaluate and export: between syncs the params are the fast weights.

    Args:
      state: the optimizer state of `lookahead(...)`, or of any optax wrapper around it
        (`chain`, `inject_hyperparams`, `MultiSteps`, `apply_if_finite`, `masked`, ...).
      params: under `optax.masked`, the leaves Lookahead does not track are `optax.MaskedNode`;
        pass the current params to fill them in.

    Returns:
      The slow weights, a pytree like the params.

    Raises:
      ValueError: if the state holds no Lookahead state, or several separate ones.

    Example:
      >>> import jax.numpy as jnp, optax, lookahead_jax as lj
      >>> tx = optax.chain(optax.clip(1.0), lj.lookahead(optax.adam(1e-3)))
      >>> state = tx.init({"w": jnp.ones(2)})
      >>> lj.slow_params(state)
      {'w': Array([1., 1.], dtype=float32)}
    """
    slow = nested_state.find_state(state, LookaheadState, caller="slow_params").slow
    slow = slow.to_tree() if isinstance(slow, FlatSlow) else slow
    return slow if params is None else nested_state.fill_masked(slow, params)
