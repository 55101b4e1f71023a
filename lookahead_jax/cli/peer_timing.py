"""Our Lookahead step beside the libraries users would pick instead, and the machine's bandwidth.

Peers (each optional; a missing one is named in the table's notes, never an error):

- timm's `Lookahead` (the most used PyTorch Lookahead), loaded from its file because `import timm`
  needs torchvision, around `torch.optim.AdamW` (CPU default, `foreach=True`, `fused=True`) and
  `torch.optim.SGD(momentum=0.9)`.
- pytorch-optimizer's `Lookahead` around the same AdamW variants.
- `optax.flatten(optax.adamw(...))`, optax's own answer to many small leaves.
- A STREAM-like triad `a = b + s * c`, jitted with XLA and with torch, over as many bytes as an
  AdamW step moves: the measured memory bandwidth each step is reported against.

Before anything is timed, every peer's trajectory is checked equal to ours in float64 (a few steps,
two syncs), so the rows compare the same algorithm. timm creates its slow weights lazily at the
first sync (slow = fast at step k, where the paper and we start from the initial weights), so its
check runs ours with a slow step size of 1 at the first sync.
"""

import importlib.metadata
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax.cli import timing

F32 = 4  # bytes
# Passes over the params (f32 arrays of the param count) a step must make: read and write each
# buffer it keeps, read the gradient. AdamW: read p, g, m, v; write p, m, v. SGD with momentum:
# read p, g, m; write p, m. Lookahead adds a read and a write of the slow copy once per sync.
PASSES = {"adamw": 7, "sgd": 5}


def bytes_moved(name: str, size: int) -> float:
    """Bytes a step of the named variant must move over `size` f32 params (see PASSES)."""
    passes = PASSES["sgd" if "sgd" in name.lower() else "adamw"]
    if "lookahead" in name.lower():
        passes += 2 / timing.SYNC_PERIOD
    return passes * size * F32


def timm_lookahead() -> type | None:
    """timm's `Lookahead` class, or None when timm is not installed."""
    try:
        path = importlib.metadata.distribution("timm").locate_file("timm/optim/lookahead.py")
    except importlib.metadata.PackageNotFoundError:
        return None
    spec = importlib.util.spec_from_file_location("_timm_lookahead", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Lookahead


def pytorch_optimizer_lookahead() -> type | None:
    """pytorch-optimizer's `Lookahead` class, or None when it is not installed."""
    if importlib.util.find_spec("pytorch_optimizer") is None:
        return None
    from pytorch_optimizer import Lookahead

    return Lookahead


def _torch_makers(torch: Any) -> dict[str, Callable]:
    """name -> (params -> the inner torch optimizer), at the benchmark's hyperparameters."""
    lr = timing.LR
    return {
        "AdamW": lambda ps: torch.optim.AdamW(ps, lr, weight_decay=1e-2),
        "AdamW foreach": lambda ps: torch.optim.AdamW(ps, lr, weight_decay=1e-2, foreach=True),
        "AdamW fused": lambda ps: torch.optim.AdamW(ps, lr, weight_decay=1e-2, fused=True),
        "SGD(m=0.9) foreach": lambda ps: torch.optim.SGD(ps, lr, momentum=0.9, foreach=True),
    }


def _ours(inner_name: str, slow_step_size: Any = 0.5, **kwargs: Any) -> Any:
    from lookahead_jax.lookahead import lookahead
    from lookahead_jax.optimizers import adamw, sgd

    inner = (
        adamw(timing.LR, weight_decay=1e-2)
        if inner_name.startswith("AdamW")
        else sgd(timing.LR, momentum=0.9)
    )
    return lookahead(inner, timing.SYNC_PERIOD, slow_step_size, **kwargs)


def check_trajectories(torch: Any, peers: dict[str, type]) -> dict[str, float]:
    """Max abs difference, over 2 sync periods + 2 steps in float64, of each peer from ours.

    Args:
      torch: the torch module.
      peers: name -> Lookahead class (timm's or pytorch-optimizer's).

    Returns:
      "<peer> Lookahead(<inner>)" -> the largest difference of any param at any step.
    """
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), ()]
    params0 = [rng.normal(size=s) for s in shapes]
    steps = 2 * timing.SYNC_PERIOD + 2
    grads = [[rng.normal(size=s) for s in shapes] for _ in range(steps)]
    k = timing.SYNC_PERIOD
    diffs = {}
    with jax.enable_x64(True):
        for peer, cls in peers.items():
            for inner_name, make in _torch_makers(torch).items():
                if peer == "timm":  # its slow weights start at the first sync's fast weights
                    alpha = lambda n: jnp.where(n == 0, 1.0, 0.5)
                    wrap = lambda opt, cls=cls: cls(opt, alpha=0.5, k=k)
                else:
                    alpha = 0.5
                    wrap = lambda opt, cls=cls: cls(opt, k=k, alpha=0.5)
                tx = _ours(inner_name, alpha, slow_layout="tree")
                ps = [torch.tensor(p, requires_grad=True) for p in params0]
                opt = wrap(make(ps))
                jp = [jnp.asarray(p) for p in params0]
                state = tx.init(jp)
                worst = 0.0
                for g in grads:
                    for p, gi in zip(ps, g, strict=True):
                        p.grad = torch.tensor(gi)
                    opt.step()
                    updates, state = tx.update([jnp.asarray(x) for x in g], state, jp)
                    jp = optax.apply_updates(jp, updates)
                    for p, q in zip(ps, jp, strict=True):
                        worst = max(worst, float(np.max(np.abs(p.detach().numpy() - q))))
                diffs[f"{peer} Lookahead({inner_name})"] = worst
    return diffs


class TorchTriad:
    """`a = b + s * c` with torch (its threads), on float32 arrays of `n` elements."""

    def __init__(self, torch: Any, n: int):
        self.torch = torch
        self.a, self.b, self.c = (torch.ones(n) for _ in range(3))

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            self.torch.add(self.b, self.c, alpha=3.0, out=self.a)


class JaxTriad:
    """`a = b + s * c` jitted with XLA, `a` donated, on float32 arrays of `n` elements in all.

    The arrays are split in `pieces` equal parts: XLA:CPU runs one elementwise loop on one thread,
    and separate loops side by side, so on 2 cores 8 pieces reach the bandwidth 1 piece cannot.
    """

    def __init__(self, n: int, pieces: int = 1):
        # keep_unused: else jit drops the unused `a`, its donation with it, and every call writes a
        # freshly allocated output (page faults, not bandwidth).
        triad = lambda a, b, c: [bi + 3.0 * ci for bi, ci in zip(b, c, strict=True)]
        self.step = jax.jit(triad, donate_argnums=0, keep_unused=True)
        self.a, self.b, self.c = ([jnp.ones(n // pieces) for _ in range(pieces)] for _ in range(3))

    def __call__(self, steps: int) -> None:
        a = self.a
        for _ in range(steps):
            a = self.step(a, self.b, self.c)
        self.a = jax.block_until_ready(a)


def peers_suite(
    rounds: int = 11, torch_threads: int | None = None, torch_rows: bool = True
) -> tuple[list, list[str]]:
    """Lookahead steps of ours and of the installed peers, with bandwidth fractions.

    Args:
      rounds: interleaved timing rounds per shape.
      torch_threads: torch's intra-op threads; default: as many as XLA uses (the CPU count).
      torch_rows: False skips every torch row (the bandwidth is then XLA's triad's).

    Returns:
      (rows, notes): the table's rows, and lines naming skipped peers and the trajectory checks.
    """
    from lookahead_jax.optimizers import adamw, sgd

    notes: list[str] = []
    try:
        import torch
    except ImportError:
        torch = None
        notes.append("torch rows skipped: torch is not installed")
    if not torch_rows and torch is not None:
        torch = None
        notes.append("torch rows skipped (--no-torch)")
    peers: dict[str, type] = {}
    if torch is not None:
        torch.set_num_threads(torch_threads or os.cpu_count() or 1)
        for name, find in (
            ("timm", timm_lookahead),
            ("pytorch_optimizer", pytorch_optimizer_lookahead),
        ):
            cls = find()
            if cls is None:
                notes.append(f"{name} rows skipped: it is not installed")
            else:
                peers[name] = cls
        diffs = check_trajectories(torch, peers)
        for name, diff in diffs.items():
            if not diff < 1e-10:
                raise AssertionError(f"{name} does not follow our trajectory: max diff {diff:.3g}")
        worst = max(diffs.values(), default=0.0)
        notes.append(
            f"trajectories checked equal to ours in float64 ({2 * timing.SYNC_PERIOD + 2} steps, "
            f"2 syncs): {len(diffs)} peer variants, largest difference {worst:.1e}"
        )
        notes.append(f"torch intra-op threads: {torch.get_num_threads()}")

    rows = []
    for label, (n_leaves, shape) in timing.SHAPES.items():
        params, grads = timing.make_tree(n_leaves, shape, 0), timing.make_tree(n_leaves, shape, 1)
        size = n_leaves * int(np.prod(shape))
        runners: dict[str, Callable[[int], None]] = {
            "lj.adamw": timing.JaxRunner(adamw(timing.LR, weight_decay=1e-2), params, grads),
            "lj.lookahead(adamw)": timing.JaxRunner(_ours("AdamW"), params, grads),
            "lj.lookahead(adamw, tree)": timing.JaxRunner(
                _ours("AdamW", slow_layout="tree"), params, grads
            ),
            "optax.adamw": timing.JaxRunner(
                optax.adamw(timing.LR, weight_decay=1e-2), params, grads
            ),
            "optax.flatten(adamw)": timing.JaxRunner(
                optax.flatten(optax.adamw(timing.LR, weight_decay=1e-2)), params, grads
            ),
            "lj.sgd(m=0.9)": timing.JaxRunner(sgd(timing.LR, momentum=0.9), params, grads),
            "lj.lookahead(sgd m=0.9)": timing.JaxRunner(_ours("SGD"), params, grads),
        }
        # The triad moves as many bytes as an AdamW step: 3 arrays of 7/3 the param count.
        triad_n = PASSES["adamw"] * size // 24 * 8  # a multiple of 8 (the pieces)
        runners["triad (XLA, 1 loop)"] = JaxTriad(triad_n)
        runners["triad (XLA, 8 loops)"] = JaxTriad(triad_n, pieces=8)
        if torch is not None:
            makers = _torch_makers(torch)
            for inner_name, make in makers.items():
                runners[f"torch {inner_name}"] = timing.TorchRunner(make, params, grads)
            for peer, cls in peers.items():
                for inner_name, make in makers.items():
                    if peer == "pytorch_optimizer" and inner_name.startswith("SGD"):
                        continue
                    wrap = lambda ps, cls=cls, make=make: cls(make(ps), k=timing.SYNC_PERIOD)
                    runners[f"{peer} Lookahead({inner_name})"] = timing.TorchRunner(
                        wrap, params, grads
                    )
            runners["triad (torch)"] = TorchTriad(torch, triad_n)
        steps = timing.SYNC_PERIOD * (2 if n_leaves <= 40 else 4)
        medians = timing.time_interleaved(runners, rounds, steps)
        triads = [t for n, t in medians.items() if n.startswith("triad")]
        bandwidth = 3 * triad_n * F32 / min(triads)  # bytes per second, the fastest triad

        def baseline(name: str) -> str | None:
            if name in ("lj.lookahead(adamw)", "lj.lookahead(adamw, tree)", "optax.adamw"):
                return "lj.adamw"
            if name == "optax.flatten(adamw)":
                return "optax.adamw"
            if name == "lj.lookahead(sgd m=0.9)":
                return "lj.sgd(m=0.9)"
            if "Lookahead(SGD" in name:
                return "lj.lookahead(sgd m=0.9)"
            if "Lookahead(" in name:
                return "lj.lookahead(adamw)"
            if name.startswith("torch AdamW"):
                return "lj.adamw"
            if name.startswith("torch SGD"):
                return "lj.sgd(m=0.9)"
            return None

        for name, t in medians.items():
            base = baseline(name)
            moved = 3 * triad_n * F32 if name.startswith("triad") else bytes_moved(name, size)
            ratio = t / medians[base] if base else None
            rows.append(timing.Row(label, name, t * 1e3, ratio, base, moved / t / bandwidth))
        notes.append(f"{label}: measured bandwidth {bandwidth / 1e9:.1f} GB/s (fastest triad)")
    return rows, notes
