"""Shared test support: one small MLP problem run by `torch.optim` and by our optimizers.

Both sides start from the same float64 weights and see the same data; each computes its own
gradients (torch autograd, `jax.grad`), so the comparison covers whole trajectories, not one step.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

NAMES = ("w1", "b1", "w2", "b2")  # the order of the torch parameter list
N_IN, N_HIDDEN, N_OUT, BATCH = 5, 7, 3, 16


def problem(seed: int = 0) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Initial float64 params and (inputs, targets) of a 5-7-3 tanh MLP regression."""
    rng = np.random.default_rng(seed)
    params = {
        "w1": rng.normal(0.0, 0.6, (N_IN, N_HIDDEN)),
        "b1": rng.normal(0.0, 0.1, (N_HIDDEN,)),
        "w2": rng.normal(0.0, 0.6, (N_HIDDEN, N_OUT)),
        "b2": rng.normal(0.0, 0.1, (N_OUT,)),
    }
    x = rng.normal(0.0, 1.0, (BATCH, N_IN))
    y = np.sin(x @ rng.normal(0.0, 1.0, (N_IN, N_OUT)))
    return params, (x, y)


def jax_loss(params, x, y):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    out = hidden @ params["w2"] + params["b2"][None, :]
    return jnp.mean((out - y) ** 2)


def torch_loss(params, x, y):
    w1, b1, w2, b2 = params
    out = torch.tanh(x @ w1 + b1) @ w2 + b2
    return torch.mean((out - y) ** 2)


def run_jax(tx, steps: int, seed: int = 0, dtype=jnp.float64):
    """Runs `steps` jitted steps of `tx` on the MLP; returns the final params and state."""
    params0, (x, y) = problem(seed)
    params = {k: jnp.asarray(v, dtype) for k, v in params0.items()}
    x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)

    @jax.jit
    def go(params):
        def body(carry, _):
            p, s = carry
            updates, s = tx.update(jax.grad(jax_loss)(p, x, y), s, p)
            return (optax.apply_updates(p, updates), s), None

        (p, s), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
        return p, s

    return go(params)


def run_torch(make_optimizer, steps: int, make_scheduler=None, seed: int = 0, dtype=torch.float64):
    """Runs `steps` steps of a torch optimizer (and scheduler) on the MLP.

    Args:
      make_optimizer: the list of torch params (w1, b1, w2, b2) -> a `torch.optim.Optimizer`.
      steps: optimizer steps, each followed by `scheduler.step()` as in a PyTorch loop.
      make_scheduler: optimizer -> an LR scheduler, or None.

    Returns:
      The final params, a dict of NumPy arrays.
    """
    params0, (x, y) = problem(seed)
    params = [torch.tensor(params0[k], dtype=dtype, requires_grad=True) for k in NAMES]
    x, y = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    optimizer = make_optimizer(params)
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    for _ in range(steps):
        optimizer.zero_grad()
        torch_loss(params, x, y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return {k: p.detach().numpy().copy() for k, p in zip(NAMES, params, strict=True)}


def max_rel_diff(ours, theirs) -> float:
    """max over elements of |ours - theirs| / max(|theirs|, 1e-3).

    Element-wise, with the denominator floored at 1e-3 so that an entry that crosses zero (a bias)
    is measured against the scale of the problem rather than divided by ~0.
    """
    worst = 0.0
    for k in NAMES:
        a, b = np.asarray(ours[k], np.float64), np.asarray(theirs[k], np.float64)
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3))))
    return worst


class HuggingFaceAdamW(torch.optim.Optimizer):
    """Transcription of `AdamW.step` from HuggingFace's pytorch-transformers (optimization.py).

    The original uses the deprecated `add_(scalar, tensor)` overloads; they are written here with
    `alpha=`/`value=`, which compute the same thing.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0,
                 correct_bias=True):  # fmt: skip
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} - should be >= 0.0")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter: {betas[0]} - should be in [0.0, 1.0[")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter: {betas[1]} - should be in [0.0, 1.0[")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps} - should be >= 0.0")
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]
                state["step"] += 1
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"]
                if group["correct_bias"]:
                    bias_correction1 = 1.0 - beta1 ** state["step"]
                    bias_correction2 = 1.0 - beta2 ** state["step"]
                    step_size = step_size * math.sqrt(bias_correction2) / bias_correction1
                p.addcdiv_(exp_avg, denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return None
