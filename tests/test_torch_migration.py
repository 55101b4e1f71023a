"""The torch.optim -> lookahead_jax migration table, every row run on both sides.

Each row is the code a user writes in PyTorch and its lookahead_jax counterpart, as strings: the
test evaluates exactly these strings, trains the MLP of `_torch_reference` for 100 steps with each
in float64 and requires the same params (and averaged params) to 1e-9. The Markdown table for the
README is generated from the same rows: `python tests/test_torch_migration.py`.

Names available to the PyTorch code: `params` (all parameters), `weights` and `biases` (the
matrices and the vectors), `opt` (the optimizer, in scheduler code), `model` (in averaging code),
`swa_start`. Names available to the lookahead_jax code: the public functions, `optax`, `jax`, and
`swa_start`. A PyTorch loop steps the scheduler after each `opt.step()`; in the SWA rows it
steps `SWALR` and averages when `i > swa_start`, and steps the base scheduler otherwise.
"""

from typing import NamedTuple

import jax
import optax
import pytest
import torch
from _torch_reference import NAMES, HuggingFaceAdamW, max_rel_diff, problem, run_jax, torch_loss
from torch.optim import lr_scheduler, swa_utils

from lookahead_jax import averaging, optimizers

STEPS = 100
SWA_START = 59
TOL = 1e-9


class Row(NamedTuple):
    torch: str  # the optimizer
    jax: str  # the lookahead_jax transformation
    scheduler: str | None = None  # the LR scheduler stepped after each optimizer step
    averaged: str | None = None  # the AveragedModel, updated when i > swa_start
    swalr: str | None = None  # SWALR, stepped instead of `scheduler` when i > swa_start


BY_DIM = "lambda p: jax.tree.map(lambda x: x.ndim > 1, p)"
LABELS = 'lambda p: jax.tree.map(lambda x: "w" if x.ndim > 1 else "b", p)'

MIGRATION = [
    Row("SGD(params, lr=0.1)", "sgd(0.1)"),
    Row(
        "SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)",
        "sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)",
    ),
    Row(
        "SGD(params, lr=0.05, momentum=0.9, dampening=0.1)",
        "sgd(0.05, momentum=0.9, dampening=0.1)",
    ),
    Row(
        "Adam(params, lr=1e-2, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-2, amsgrad=True)",
        "adam(1e-2, b1=0.8, b2=0.99, eps=1e-7, weight_decay=1e-2, amsgrad=True)",
    ),
    Row("AdamW(params, lr=1e-2)", "adamw(1e-2)  # weight_decay=1e-2 as torch"),
    Row(
        'AdamW([{"params": weights}, {"params": biases, "weight_decay": 0.0}], lr=1e-2, '
        "weight_decay=0.1)",
        f"adamw(1e-2, weight_decay=0.1, mask={BY_DIM})",
    ),
    Row(
        'SGD([{"params": weights}, {"params": biases, "lr": 0.2}], lr=0.05, momentum=0.9)',
        'optax.multi_transform({"w": sgd(0.05, momentum=0.9), "b": sgd(0.2, momentum=0.9)}, '
        f"{LABELS})",
    ),
    Row(
        "transformers.AdamW(params, lr=1e-2, weight_decay=0.01, correct_bias=False)",
        "bert_adamw(1e-2, weight_decay=0.01, correct_bias=False)",
    ),
    Row(
        "RMSprop(params, lr=1e-3, alpha=0.9, momentum=0.9, centered=True)",
        "rmsprop(1e-3, alpha=0.9, momentum=0.9, centered=True)",
    ),
    Row(
        "Adagrad(params, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)",
        "adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.1)",
    ),
    Row(
        "SGD(params, lr=0.1, momentum=0.9)",
        "sgd(optax.exponential_decay(0.1, transition_steps=30, decay_rate=0.1, staircase=True), "
        "momentum=0.9)",
        scheduler="StepLR(opt, step_size=30, gamma=0.1)",
    ),
    Row(
        "Adam(params, lr=1e-2)",
        "adam(optax.piecewise_constant_schedule(1e-2, {30: 0.1, 60: 0.1}))",
        scheduler="MultiStepLR(opt, milestones=[30, 60], gamma=0.1)",
    ),
    Row(
        "AdamW(params, lr=1e-2)",
        "adamw(optax.exponential_decay(1e-2, transition_steps=1, decay_rate=0.97))",
        scheduler="ExponentialLR(opt, gamma=0.97)",
    ),
    Row(
        "SGD(params, lr=0.1, momentum=0.9)",
        "sgd(optax.cosine_decay_schedule(0.1, decay_steps=100), momentum=0.9)",
        scheduler="CosineAnnealingLR(opt, T_max=100)",
    ),
    Row(
        "SGD(params, lr=0.05, momentum=0.9)",
        "average(sgd(swa_schedule(optax.exponential_decay(0.05, 30, 0.5, staircase=True), "
        "swa_lr=0.01, anneal_steps=10, strategy='cos', start_step=swa_start + 1), momentum=0.9), "
        "start_step=swa_start + 1)",
        scheduler="StepLR(opt, step_size=30, gamma=0.5)",
        averaged="AveragedModel(model)",
        swalr="SWALR(opt, swa_lr=0.01, anneal_epochs=10, anneal_strategy='cos')",
    ),
    Row(
        "AdamW(params, lr=1e-2)",
        "average(adamw(swa_schedule(1e-2, swa_lr=1e-3, anneal_steps=5, strategy='linear', "
        "start_step=swa_start + 1)), start_step=swa_start + 1, decay=0.9)",
        averaged="AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))",
        swalr="SWALR(opt, swa_lr=1e-3, anneal_epochs=5, anneal_strategy='linear')",
    ),
]


def markdown_table(rows=MIGRATION) -> str:
    lines = ["| PyTorch | lookahead_jax |", "| --- | --- |"]
    for row in rows:
        torch_code = f"`{row.torch}`"
        if row.scheduler:
            torch_code += f" + `{row.scheduler}`"
        if row.swalr:
            torch_code += f"; from `i > swa_start`: `{row.swalr}` steps instead"
        if row.averaged:
            torch_code += f" and `{row.averaged}` runs `update_parameters(model)`"
        jax_code = f"`{row.jax}`"
        if row.averaged:
            jax_code += "; evaluate `averaged_params(state)`"
        lines.append(f"| {torch_code} | {jax_code} |")
    return "\n".join(lines)


class _Model(torch.nn.Module):
    def __init__(self, params):
        super().__init__()
        for k in NAMES:
            self.register_parameter(k, torch.nn.Parameter(torch.tensor(params[k])))


def run_torch_row(row: Row):
    params0, (x, y) = problem()
    x, y = torch.tensor(x), torch.tensor(y)
    model = _Model(params0)
    params = [getattr(model, k) for k in NAMES]
    scope = {**vars(torch.optim), **vars(lr_scheduler), **vars(swa_utils), "torch": torch}
    scope |= dict(params=params, weights=params[0::2], biases=params[1::2], model=model)
    scope |= dict(swa_start=SWA_START, transformers=type("hf", (), {"AdamW": HuggingFaceAdamW}))
    opt = eval(row.torch, scope)
    scope["opt"] = opt
    scheduler = eval(row.scheduler, scope) if row.scheduler else None
    averaged = eval(row.averaged, scope) if row.averaged else None
    swalr = eval(row.swalr, scope) if row.swalr else None
    for i in range(STEPS):
        opt.zero_grad()
        torch_loss(params, x, y).backward()
        opt.step()
        if swalr is not None and i > SWA_START:
            swalr.step()
            averaged.update_parameters(model)
        elif scheduler is not None:
            scheduler.step()
    as_numpy = lambda m: {k: getattr(m, k).detach().numpy().copy() for k in NAMES}
    return as_numpy(model), (as_numpy(averaged.module) if averaged is not None else None)


def run_jax_row(row: Row):
    scope = {**vars(optimizers), **vars(averaging), "optax": optax, "jax": jax}
    scope["swa_start"] = SWA_START
    params, state = run_jax(eval(row.jax, scope), STEPS)
    return params, (averaging.averaged_params(state) if row.averaged else None)


@pytest.mark.parametrize("row", MIGRATION, ids=lambda row: row.jax.split("(")[0])
def test_migration_row(row, x64):
    ours, ours_averaged = run_jax_row(row)
    theirs, theirs_averaged = run_torch_row(row)
    assert max_rel_diff(ours, theirs) <= TOL
    if row.averaged:
        assert max_rel_diff(ours_averaged, theirs_averaged) <= TOL
        assert max_rel_diff(ours_averaged, ours) > 1e-4


def test_every_public_name_appears_in_the_table():
    table = markdown_table()
    public = ["sgd", "adam", "adamw", "bert_adamw", "rmsprop", "adagrad"]
    public += ["average", "swa_schedule", "averaged_params"]
    for name in public:
        assert f"{name}(" in table, name


if __name__ == "__main__":
    print(markdown_table())
