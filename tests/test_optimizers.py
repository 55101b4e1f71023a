"""The specification of `sgd`, `adam`, `adamw`, `bert_adamw`, `rmsprop` and `adagrad`.

The update rules are proven against `torch.optim` (PyTorch 2.13) in float64 on 100 steps of a
small MLP, each optimizer over a grid of hyperparameters that covers every option; then every
optimizer passes the same contract as optax's own (convergence, dtypes, jit, wrappers).
"""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from _torch_reference import HuggingFaceAdamW, max_rel_diff, run_jax, run_torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lookahead_jax.cli.timing import temp_bytes
from lookahead_jax.lookahead import lookahead
from lookahead_jax.optimizers import adagrad, adam, adamw, bert_adamw, rmsprop, sgd

STEPS = 100
# float64: the two implementations differ only by rounding (~1e-14 measured). The grid avoids
# step sizes at which the MLP's training oscillates (e.g. RMSprop lr 1e-2, alpha 0.9): there even
# optax.adam and torch.optim.Adam separate chaotically to ~1e-5 within 100 steps in float64.
TOL = 1e-9

T = torch.optim
step_lr = lambda o: T.lr_scheduler.StepLR(o, step_size=30, gamma=0.5)
inverse_time_lr = lambda o: T.lr_scheduler.LambdaLR(o, lambda c: 1.0 / (1.0 + 0.05 * c))
WEIGHTS_ONLY = {"w1": True, "b1": False, "w2": True, "b2": False}


def step_decay(lr):  # StepLR(step_size=30, gamma=0.5) evaluated on the steps already taken
    return optax.exponential_decay(lr, transition_steps=30, decay_rate=0.5, staircase=True)


def inverse_time(lr):  # LambdaLR(lambda c: 1 / (1 + 0.05 c))
    return lambda count: lr / (1.0 + 0.05 * count)


def groups(ps, **no_decay):
    """PyTorch param groups: weights with the defaults, biases with `no_decay` overrides."""
    return [{"params": [ps[0], ps[2]]}, {"params": [ps[1], ps[3]], **no_decay}]


# id -> (torch optimizer factory, torch scheduler factory or None, our transformation)
TORCH_GRID = {
    # SGD
    "sgd-plain": (lambda ps: T.SGD(ps, lr=0.1), None, lambda: sgd(0.1)),
    "sgd-momentum": (lambda ps: T.SGD(ps, lr=0.05, momentum=0.9), None, lambda: sgd(0.05, 0.9)),
    "sgd-dampening": (
        lambda ps: T.SGD(ps, lr=0.05, momentum=0.9, dampening=0.3),
        None,
        lambda: sgd(0.05, momentum=0.9, dampening=0.3),
    ),
    "sgd-nesterov": (
        lambda ps: T.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
        None,
        lambda: sgd(0.05, momentum=0.8, nesterov=True),
    ),
    "sgd-nesterov-wd": (
        lambda ps: T.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
        None,
        lambda: sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
    ),
    "sgd-wd": (
        lambda ps: T.SGD(ps, lr=0.1, weight_decay=0.1),
        None,
        lambda: sgd(0.1, weight_decay=0.1),
    ),
    # maximize with weight decay: torch negates the gradient *before* adding the decay.
    "sgd-maximize-wd": (
        lambda ps: T.SGD(ps, lr=0.01, momentum=0.5, weight_decay=0.1, maximize=True),
        None,
        lambda: sgd(0.01, momentum=0.5, weight_decay=0.1, maximize=True),
    ),
    "adam-maximize-wd": (
        lambda ps: T.Adam(ps, lr=1e-3, weight_decay=0.1, maximize=True),
        None,
        lambda: adam(1e-3, weight_decay=0.1, maximize=True),
    ),
    "adamw-maximize-wd": (
        lambda ps: T.AdamW(ps, lr=1e-3, weight_decay=0.1, maximize=True),
        None,
        lambda: adamw(1e-3, weight_decay=0.1, maximize=True),
    ),
    "rmsprop-maximize-wd": (
        lambda ps: T.RMSprop(ps, lr=1e-3, weight_decay=0.1, momentum=0.5, maximize=True),
        None,
        lambda: rmsprop(1e-3, weight_decay=0.1, momentum=0.5, maximize=True),
    ),
    "adagrad-maximize-wd": (
        lambda ps: T.Adagrad(ps, lr=0.05, weight_decay=0.1, maximize=True),
        None,
        lambda: adagrad(0.05, weight_decay=0.1, maximize=True),
    ),
    "sgd-maximize": (
        lambda ps: T.SGD(ps, lr=0.01, momentum=0.5, maximize=True),
        None,
        lambda: sgd(0.01, momentum=0.5, maximize=True),
    ),
    "sgd-steplr-dampening-wd": (
        lambda ps: T.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        step_lr,
        lambda: sgd(step_decay(0.1), momentum=0.9, dampening=0.1, weight_decay=0.01),
    ),
    "sgd-lambdalr": (
        lambda ps: T.SGD(ps, lr=0.1, momentum=0.5),
        inverse_time_lr,
        lambda: sgd(inverse_time(0.1), momentum=0.5),
    ),
    # Adam
    "adam-default": (lambda ps: T.Adam(ps, lr=1e-2), None, lambda: adam(1e-2)),
    "adam-betas": (
        lambda ps: T.Adam(ps, lr=1e-2, betas=(0.5, 0.95)),
        None,
        lambda: adam(1e-2, b1=0.5, b2=0.95),
    ),
    "adam-b1-zero-eps": (
        lambda ps: T.Adam(ps, lr=1e-2, betas=(0.0, 0.99), eps=1e-3),
        None,
        lambda: adam(1e-2, b1=0.0, b2=0.99, eps=1e-3),
    ),
    "adam-wd": (
        lambda ps: T.Adam(ps, lr=1e-2, weight_decay=0.1),
        None,
        lambda: adam(1e-2, weight_decay=0.1),
    ),
    "adam-amsgrad": (
        lambda ps: T.Adam(ps, lr=1e-2, amsgrad=True),
        None,
        lambda: adam(1e-2, amsgrad=True),
    ),
    "adam-amsgrad-wd": (
        lambda ps: T.Adam(ps, lr=1e-2, amsgrad=True, weight_decay=0.05, betas=(0.8, 0.95)),
        None,
        lambda: adam(1e-2, b1=0.8, b2=0.95, amsgrad=True, weight_decay=0.05),
    ),
    "adam-maximize": (
        lambda ps: T.Adam(ps, lr=1e-3, maximize=True),
        None,
        lambda: adam(1e-3, maximize=True),
    ),
    "adam-steplr": (
        lambda ps: T.Adam(ps, lr=2e-2, weight_decay=0.01),
        step_lr,
        lambda: adam(step_decay(2e-2), weight_decay=0.01),
    ),
    # AdamW
    "adamw-default": (lambda ps: T.AdamW(ps), None, lambda: adamw()),
    "adamw-lr-wd": (
        lambda ps: T.AdamW(ps, lr=1e-2, weight_decay=0.1),
        None,
        lambda: adamw(1e-2, weight_decay=0.1),
    ),
    "adamw-betas-eps": (
        lambda ps: T.AdamW(ps, lr=1e-2, betas=(0.6, 0.95), eps=1e-4),
        None,
        lambda: adamw(1e-2, b1=0.6, b2=0.95, eps=1e-4),
    ),
    "adamw-no-wd": (
        lambda ps: T.AdamW(ps, lr=1e-2, weight_decay=0.0),
        None,
        lambda: adamw(1e-2, weight_decay=0.0),
    ),
    "adamw-amsgrad-wd": (
        lambda ps: T.AdamW(ps, lr=1e-2, amsgrad=True, weight_decay=0.2),
        None,
        lambda: adamw(1e-2, amsgrad=True, weight_decay=0.2),
    ),
    "adamw-maximize": (
        lambda ps: T.AdamW(ps, lr=1e-3, maximize=True),
        None,
        lambda: adamw(1e-3, maximize=True),
    ),
    "adamw-mask-groups": (
        lambda ps: T.AdamW(groups(ps, weight_decay=0.0), lr=1e-2, weight_decay=0.3),
        None,
        lambda: adamw(1e-2, weight_decay=0.3, mask=WEIGHTS_ONLY),
    ),
    "adamw-mask-fn-steplr": (
        lambda ps: T.AdamW(groups(ps, weight_decay=0.0), lr=2e-2, weight_decay=0.3),
        step_lr,
        lambda: adamw(
            step_decay(2e-2), weight_decay=0.3, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
        ),
    ),
    # BERT's AdamW (HuggingFace pytorch-transformers), against the transcription of its step
    "bert-default": (
        lambda ps: HuggingFaceAdamW(ps, lr=1e-2),
        None,
        lambda: bert_adamw(1e-2),
    ),
    "bert-no-correct-bias": (
        lambda ps: HuggingFaceAdamW(ps, lr=1e-2, correct_bias=False),
        None,
        lambda: bert_adamw(1e-2, correct_bias=False),
    ),
    "bert-wd": (
        lambda ps: HuggingFaceAdamW(ps, lr=1e-2, weight_decay=0.1),
        None,
        lambda: bert_adamw(1e-2, weight_decay=0.1),
    ),
    "bert-wd-no-correct-bias": (
        lambda ps: HuggingFaceAdamW(ps, lr=1e-2, weight_decay=0.1, correct_bias=False),
        None,
        lambda: bert_adamw(1e-2, weight_decay=0.1, correct_bias=False),
    ),
    "bert-betas-eps": (
        lambda ps: HuggingFaceAdamW(ps, lr=1e-2, betas=(0.5, 0.95), eps=1e-3),
        None,
        lambda: bert_adamw(1e-2, b1=0.5, b2=0.95, eps=1e-3),
    ),
    "bert-mask-groups": (
        lambda ps: HuggingFaceAdamW(groups(ps, weight_decay=0.0), lr=1e-2, weight_decay=0.2),
        None,
        lambda: bert_adamw(1e-2, weight_decay=0.2, mask=WEIGHTS_ONLY),
    ),
    "bert-steplr-wd": (
        lambda ps: HuggingFaceAdamW(ps, lr=2e-2, weight_decay=0.05),
        step_lr,
        lambda: bert_adamw(step_decay(2e-2), weight_decay=0.05),
    ),
    "bert-lambdalr-no-correct-bias": (
        lambda ps: HuggingFaceAdamW(ps, lr=2e-2, correct_bias=False, eps=1e-8),
        inverse_time_lr,
        lambda: bert_adamw(inverse_time(2e-2), correct_bias=False, eps=1e-8),
    ),
    # RMSprop
    "rmsprop-default": (lambda ps: T.RMSprop(ps), None, lambda: rmsprop()),
    "rmsprop-alpha-eps": (
        lambda ps: T.RMSprop(ps, lr=2e-3, alpha=0.9, eps=1e-3),
        None,
        lambda: rmsprop(2e-3, alpha=0.9, eps=1e-3),
    ),
    "rmsprop-wd": (
        lambda ps: T.RMSprop(ps, lr=1e-2, weight_decay=0.1),
        None,
        lambda: rmsprop(1e-2, weight_decay=0.1),
    ),
    "rmsprop-momentum": (
        lambda ps: T.RMSprop(ps, lr=1e-3, momentum=0.9),
        None,
        lambda: rmsprop(1e-3, momentum=0.9),
    ),
    "rmsprop-centered": (
        lambda ps: T.RMSprop(ps, lr=1e-2, centered=True),
        None,
        lambda: rmsprop(1e-2, centered=True),
    ),
    "rmsprop-centered-momentum": (
        lambda ps: T.RMSprop(ps, lr=1e-3, centered=True, momentum=0.8),
        None,
        lambda: rmsprop(1e-3, centered=True, momentum=0.8),
    ),
    "rmsprop-centered-momentum-wd": (
        lambda ps: T.RMSprop(ps, lr=1e-3, centered=True, momentum=0.5, weight_decay=0.05),
        None,
        lambda: rmsprop(1e-3, centered=True, momentum=0.5, weight_decay=0.05),
    ),
    "rmsprop-maximize": (
        lambda ps: T.RMSprop(ps, lr=1e-3, maximize=True),
        None,
        lambda: rmsprop(1e-3, maximize=True),
    ),
    "rmsprop-steplr-momentum": (
        lambda ps: T.RMSprop(ps, lr=2e-3, momentum=0.9),
        step_lr,
        lambda: rmsprop(step_decay(2e-3), momentum=0.9),
    ),
    # Adagrad
    "adagrad-default": (lambda ps: T.Adagrad(ps), None, lambda: adagrad()),
    "adagrad-lr-decay": (
        lambda ps: T.Adagrad(ps, lr=0.1, lr_decay=0.05),
        None,
        lambda: adagrad(0.1, lr_decay=0.05),
    ),
    "adagrad-initial-accumulator": (
        lambda ps: T.Adagrad(ps, lr=0.1, initial_accumulator_value=0.5),
        None,
        lambda: adagrad(0.1, initial_accumulator_value=0.5),
    ),
    "adagrad-lr-decay-initial-accumulator": (
        lambda ps: T.Adagrad(ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
        None,
        lambda: adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    ),
    "adagrad-wd": (
        lambda ps: T.Adagrad(ps, lr=0.1, weight_decay=0.1),
        None,
        lambda: adagrad(0.1, weight_decay=0.1),
    ),
    "adagrad-eps": (
        lambda ps: T.Adagrad(ps, lr=0.1, eps=1e-2),
        None,
        lambda: adagrad(0.1, eps=1e-2),
    ),
    "adagrad-maximize": (
        lambda ps: T.Adagrad(ps, lr=1e-2, maximize=True),
        None,
        lambda: adagrad(1e-2, maximize=True),
    ),
    "adagrad-steplr-all": (
        lambda ps: T.Adagrad(
            ps, lr=0.2, lr_decay=0.02, weight_decay=0.01, initial_accumulator_value=0.2, eps=1e-6
        ),
        step_lr,
        lambda: adagrad(step_decay(0.2), 0.02, 0.01, 0.2, 1e-6),
    ),
}


@pytest.mark.parametrize("case", TORCH_GRID)
def test_matches_torch_in_float64(case, x64):
    make_torch, make_scheduler, make_ours = TORCH_GRID[case]
    ours, _ = run_jax(make_ours(), STEPS)
    theirs = run_torch(make_torch, STEPS, make_scheduler)
    start, _ = run_jax(optax.identity(), 0)
    assert max_rel_diff(start, theirs) > 1e-3, "the trajectory should move the params"
    assert max_rel_diff(ours, theirs) <= TOL


def test_learning_rate_of_step_t_is_schedule_of_t_minus_1():
    # With a unit gradient, SGD's update of step t is -lr_t: compare with the lr PyTorch uses
    # when LambdaLR is stepped after each optimizer step.
    schedule = lambda c: 0.1 * 0.5**c + 0.01 * c
    tx = sgd(schedule)
    param = torch.zeros(1, requires_grad=True)
    opt = T.SGD([param], lr=0.1)
    scheduler = T.lr_scheduler.LambdaLR(opt, lambda c: (0.1 * 0.5**c + 0.01 * c) / 0.1)
    params = jnp.zeros(1)
    state = tx.init(params)
    for _ in range(6):
        torch_lr = opt.param_groups[0]["lr"]
        updates, state = tx.update(jnp.ones(1), state, params)
        opt.zero_grad()
        param.sum().backward()
        opt.step()
        scheduler.step()
        np.testing.assert_allclose(-updates, torch_lr, rtol=1e-6)
    np.testing.assert_allclose(float(state.count), 6)


# -- Against optax where the semantics coincide ---------------------------------------------------

OPTAX_EQUIVALENTS = {
    "adamw": (
        lambda: adamw(1e-2, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
        lambda: optax.adamw(1e-2, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
    ),
    "adamw-mask-schedule": (  # optax evaluates schedules on an int32 count: float32 under x64
        lambda: adamw(step_decay(np.float64(1e-2)), weight_decay=0.2, mask=WEIGHTS_ONLY),
        lambda: optax.adamw(step_decay(np.float64(1e-2)), weight_decay=0.2, mask=WEIGHTS_ONLY),
    ),
    "adam-wd": (
        lambda: adam(1e-2, weight_decay=0.1),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.adam(1e-2)),
    ),
    "sgd-nesterov-wd": (
        lambda: sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda: optax.chain(
            optax.add_decayed_weights(0.01), optax.sgd(0.05, momentum=0.9, nesterov=True)
        ),
    ),
    "rmsprop-centered-momentum": (
        lambda: rmsprop(1e-3, alpha=0.9, momentum=0.5, centered=True),
        lambda: optax.rmsprop(
            1e-3, decay=0.9, eps=1e-8, centered=True, momentum=0.5, eps_in_sqrt=False
        ),
    ),
    "adagrad-eps0": (
        lambda: adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
        lambda: optax.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
    ),
}


@pytest.mark.parametrize("case", OPTAX_EQUIVALENTS)
def test_matches_optax_where_semantics_coincide(case, x64):
    ours, theirs = (run_jax(make(), STEPS)[0] for make in OPTAX_EQUIVALENTS[case])
    assert max_rel_diff(ours, theirs) <= TOL


# -- float32 ---------------------------------------------------------------------------------------

# Well-conditioned cases: no tiny denominators (eps >= 1e-4 next to sqrt(v) ~ |g| ~ 1e-2..1).
FLOAT32_CASES = ["sgd-nesterov-wd", "adam-b1-zero-eps", "adamw-betas-eps", "rmsprop-alpha-eps"]
FLOAT32_CASES += ["adagrad-eps", "bert-betas-eps", "sgd-steplr-dampening-wd"]


@pytest.mark.parametrize("case", FLOAT32_CASES)
def test_matches_torch_in_float32(case):
    # Each step rounds a few operations at float32's unit roundoff 6e-8 on both sides; errors add
    # up over 30 steps (a few 1e-6) and the normalised optimizers amplify them by at most
    # |g| / eps-scale ~ 10 here: 1e-4 leaves a margin of ~10 over the ~1e-5 measured, while a
    # semantic slip (bias correction, eps placement, decay order) moves the params by > 1e-3.
    make_torch, make_scheduler, make_ours = TORCH_GRID[case]
    ours, _ = run_jax(make_ours(), 30, dtype=jnp.float32)
    theirs = run_torch(make_torch, 30, make_scheduler, dtype=torch.float32)
    assert jax.tree.leaves(ours)[0].dtype == jnp.float32
    assert max_rel_diff(ours, theirs) <= 1e-4


# -- Validation -----------------------------------------------------------------------------------

INVALID = [
    (sgd, dict(learning_rate=-0.1), "learning_rate=-0.1"),
    (sgd, dict(learning_rate=0.1, momentum=-0.5), "momentum=-0.5"),
    (sgd, dict(learning_rate=0.1, weight_decay=-1.0), "weight_decay=-1.0"),
    (sgd, dict(learning_rate=0.1, nesterov=True), "momentum=None"),  # the default: none
    (sgd, dict(learning_rate=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening=0.1"),
    (adam, dict(learning_rate=-1e-3), "learning_rate=-0.001"),
    (adam, dict(eps=-1e-8), "eps=-1e-08"),
    (adam, dict(b1=1.0), "b1=1.0"),
    (adam, dict(b1=-0.1), "b1=-0.1"),
    (adam, dict(b2=1.5), "b2=1.5"),
    (adam, dict(weight_decay=-0.1), "weight_decay=-0.1"),
    (adamw, dict(b2=1.0), "b2=1.0"),
    (adamw, dict(weight_decay=-1e-2), "weight_decay=-0.01"),
    (adamw, dict(learning_rate=float("nan")), "learning_rate=nan"),
    (bert_adamw, dict(learning_rate=-1.0), "learning_rate=-1.0"),
    (bert_adamw, dict(learning_rate=1.0, b1=1.0), "b1=1.0"),
    (bert_adamw, dict(learning_rate=1.0, eps=-1.0), "eps=-1.0"),
    (rmsprop, dict(alpha=-0.9), "alpha=-0.9"),
    (rmsprop, dict(eps=-1.0), "eps=-1.0"),
    (rmsprop, dict(momentum=-0.1), "momentum=-0.1"),
    (rmsprop, dict(weight_decay=-0.1), "weight_decay=-0.1"),
    (rmsprop, dict(learning_rate=-0.1), "learning_rate=-0.1"),
    (adagrad, dict(lr_decay=-0.1), "lr_decay=-0.1"),
    (adagrad, dict(initial_accumulator_value=-0.1), "initial_accumulator_value=-0.1"),
    (adagrad, dict(eps=-1.0), "eps=-1.0"),
    (adagrad, dict(weight_decay=-1.0), "weight_decay=-1.0"),
    (adagrad, dict(learning_rate=-1.0), "learning_rate=-1.0"),
]


TORCH_WORDS = {"learning_rate": "learning rate", "eps": "epsilon", "b1": "beta", "b2": "beta"}


@pytest.mark.parametrize(("factory", "kwargs", "shown"), INVALID)
def test_invalid_hyperparameters_raise_where_torch_does(factory, kwargs, shown):
    with pytest.raises(ValueError, match=f"^{factory.__name__}: .*{re.escape(shown)}"):
        factory(**kwargs)
    # torch.optim (or HuggingFace's AdamW) rejects the same value of the same argument.
    torch_of = {sgd: T.SGD, adam: T.Adam, adamw: T.AdamW, rmsprop: T.RMSprop, adagrad: T.Adagrad}
    torch_of[bert_adamw] = HuggingFaceAdamW
    kw = {{"learning_rate": "lr"}.get(k, k): v for k, v in kwargs.items()}
    if "b1" in kw or "b2" in kw:
        kw["betas"] = (kw.pop("b1", 0.9), kw.pop("b2", 0.999))
    kw.setdefault("lr", 0.1)
    name, value = shown.split("=", 1)
    if kwargs.get("nesterov"):
        expected = "^Nesterov momentum requires a momentum and zero dampening"
    else:
        expected = f"^Invalid {TORCH_WORDS.get(name, name)}.*: {re.escape(value)}"
    with pytest.raises(ValueError, match=expected):
        torch_of[factory]([torch.zeros(1, requires_grad=True)], **kw)


def test_valid_edge_values_are_accepted():
    sgd(0.0, momentum=0.0, dampening=-1.0)  # torch accepts a negative dampening
    adam(0.0, b1=0.0, b2=0.0, eps=0.0, weight_decay=0.0)
    # HuggingFace does not check the weight decay, and skips the decay unless it is > 0.
    params = {"w": jnp.array([1.0, -2.0])}
    negative, zero = bert_adamw(0.1, weight_decay=-0.5), bert_adamw(0.1)
    chex.assert_trees_all_equal(
        negative.update(params, negative.init(params), params)[0],
        zero.update(params, zero.init(params), params)[0],
    )
    rmsprop(0.0, alpha=0.0)
    adagrad(0.0, eps=0.0)
    adamw(optax.cosine_decay_schedule(1e-3, 100))  # a schedule is a callable
    adamw(jnp.asarray(1e-3))  # as inject_hyperparams passes it


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="learning_rate"):
        adamw("0.1")
    with pytest.raises(TypeError, match="momentum"):
        sgd(0.1, momentum=True)
    with pytest.raises(TypeError, match="mu_dtype"):
        adamw(mu_dtype="not a dtype")


@pytest.mark.parametrize("factory", [sgd, adam, adamw, bert_adamw, rmsprop, adagrad])
def test_update_without_params_raises_when_decay_needs_them(factory):
    tx = factory(learning_rate=0.1, weight_decay=0.1)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match=f"^{factory.__name__}: update needs the current params"):
        tx.update(params, tx.init(params))


@pytest.mark.parametrize("factory", [sgd, adam, bert_adamw, rmsprop, adagrad])
def test_update_without_params_works_without_decay(factory):
    tx = factory(learning_rate=0.1)
    grads = {"w": jnp.array([1.0, -2.0, 0.5])}
    params = {"w": jnp.array([3.0, 1.0, -1.0])}
    updates, _ = tx.update(grads, tx.init(grads))
    # The same update as with params (they only matter for weight decay), and not zero.
    with_params, _ = tx.update(grads, tx.init(params), params)
    chex.assert_trees_all_equal(updates, with_params)
    assert float(jnp.abs(updates["w"]).min()) > 0


# -- Options beyond torch --------------------------------------------------------------------------


@pytest.mark.parametrize("factory", [adam, adamw])
def test_moment_dtypes(factory, x64):
    # Each moment in its own dtype, both unlike the params': narrower mu, wider nu.
    params = {"w": jnp.linspace(-1.0, 1.0, 8, dtype=jnp.float32)}
    tx = factory(1e-2, mu_dtype=jnp.bfloat16, nu_dtype="float64", amsgrad=True)
    state = tx.init(params)
    updates, state = tx.update(params, state, params)
    assert state.exp_avg["w"].dtype == jnp.bfloat16
    assert state.exp_avg_sq["w"].dtype == state.max_exp_avg_sq["w"].dtype == jnp.float64
    # (1 - b2) g^2 kept in float64: not rounded through the params' float32.
    np.testing.assert_allclose(
        state.exp_avg_sq["w"],
        (1 - 0.999) * np.square(np.asarray(params["w"], np.float64)),
        rtol=1e-14,  # float32 rounding would be ~1e-8
    )
    assert updates["w"].dtype == jnp.float32
    # The first update is computed before the moments are rounded for storage.
    reference_tx = factory(1e-2, amsgrad=True)
    reference, _ = reference_tx.update(params, reference_tx.init(params), params)
    chex.assert_trees_all_close(updates, reference, rtol=1e-6)


@pytest.mark.parametrize("factory", [adam, adamw])
def test_nu_dtype_wider_than_the_params_keeps_the_second_moment_unrounded(factory):
    # bfloat16 params, float32 second moment: the stored moment is (1 - b2) g^2 computed and kept
    # in float32, not rounded to bfloat16 on the way.
    params = {"w": jnp.array([0.3, -1.7, 2.9, 0.011], jnp.bfloat16)}
    grads = {"w": jnp.array([1.23, -0.377, 5.1, 0.0071], jnp.bfloat16)}
    tx = factory(1e-2, nu_dtype=jnp.float32)
    _, state = tx.update(grads, tx.init(params), params)
    assert state.exp_avg["w"].dtype == jnp.bfloat16  # mu follows the params
    assert state.exp_avg_sq["w"].dtype == jnp.float32
    g = np.asarray(grads["w"], np.float64)
    expected = np.float32(1 - 0.999) * (g * g).astype(np.float32)
    np.testing.assert_allclose(state.exp_avg_sq["w"], expected, rtol=1e-6)
    rounded = np.asarray(jnp.asarray(expected, jnp.bfloat16), np.float32)
    assert not np.allclose(rounded, expected, rtol=1e-6)  # bfloat16 storage would show


def test_mask_prefix_and_callable_agree():
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "scale": jnp.ones(2)}
    grads = jax.tree.map(jnp.zeros_like, params)
    masks = [
        {"dense": {"kernel": True, "bias": False}, "scale": False},
        lambda p: jax.tree.map(lambda x: x.ndim == 2, p),
    ]
    for mask in masks:
        tx = adamw(0.1, weight_decay=0.5, mask=mask)
        updates, _ = tx.update(grads, tx.init(params), params)
        chex.assert_trees_all_close(
            updates,
            {"dense": {"kernel": -0.05 * jnp.ones((2, 2)), "bias": jnp.zeros(2)}, "scale": 0 * 1.0},
        )
    # A prefix mask: one flag for the whole "dense" subtree.
    tx = adamw(0.1, weight_decay=0.5, mask={"dense": True, "scale": False})
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["bias"], -0.05)
    np.testing.assert_allclose(updates["scale"], 0.0)


@settings(max_examples=20, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.5, 0.999),
    eps=st.floats(1e-8, 1e-2),
    wd=st.floats(0.0, 0.5),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_adamw_is_optax_adamw_for_any_hyperparameters(lr, b1, b2, eps, wd, sizes, seed):
    rng = np.random.default_rng(seed)
    params = {f"p{i}": rng.normal(size=(n, 2)) for i, n in enumerate(sizes)}
    grads = {f"p{i}": rng.normal(size=(n, 2)) for i, n in enumerate(sizes)}
    kwargs = dict(b1=b1, b2=b2, eps=eps, weight_decay=wd)
    results = []
    with jax.enable_x64(True):
        for tx in (adamw(lr, **kwargs), optax.adamw(lr, **kwargs)):
            p = jax.tree.map(jnp.asarray, params)
            state = tx.init(p)
            for _ in range(3):
                updates, state = tx.update(grads, state, p)
                p = optax.apply_updates(p, updates)
            results.append(p)
    chex.assert_trees_all_close(*results, rtol=TOL, atol=TOL)


def test_float32_bias_correction_has_no_cancellation():
    # 1 - 0.999**t in float32 loses ~1e-5 relatively to cancellation (optax.adamw's float32 run
    # below ends 1e-5 away from float64); computed as -expm1(t log1p(-0.001)) it stays accurate.
    params, grads = np.array([2.5, 0.59]), np.array([-2.44, -2.04])
    kwargs = dict(b1=0.0, b2=0.999, eps=0.0078125, weight_decay=0.0)

    def run(dtype):
        tx, p = adamw(0.5, **kwargs), jnp.asarray(params, dtype)
        state = tx.init(p)
        for _ in range(3):
            updates, state = tx.update(jnp.asarray(grads, dtype), state, p)
            p = optax.apply_updates(p, updates)
        return np.asarray(p, np.float64)

    f32 = run(jnp.float32)
    with jax.enable_x64(True):
        f64 = run(jnp.float64)
    np.testing.assert_allclose(f32, f64, rtol=5e-7)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), name=st.sampled_from(["sgd", "adam", "rmsprop", "adagrad"]))
def test_maximize_is_minimizing_the_negated_gradient(seed, name):
    make = {
        "sgd": functools.partial(sgd, 0.1, momentum=0.9, weight_decay=0.1),
        "adam": functools.partial(adam, 0.1, weight_decay=0.1),
        "rmsprop": functools.partial(rmsprop, 0.1, momentum=0.5, weight_decay=0.1),
        "adagrad": functools.partial(adagrad, 0.1, weight_decay=0.1),
    }[name]
    k1, k2 = jax.random.split(jax.random.key(seed))
    params, grads = jax.random.normal(k1, (3,)), jax.random.normal(k2, (3,))
    maximizing, minimizing = make(maximize=True), make()
    u_max, _ = maximizing.update(grads, maximizing.init(params), params)
    # maximize negates g before the decay is added: minimize -g with the same decay.
    u_min, _ = minimizing.update(-grads, minimizing.init(params), params)
    chex.assert_trees_all_close(u_max, u_min)


# -- The contract every optimizer passes -----------------------------------------------------------

# name -> (factory of learning_rate, learning rate for the contract problems)
UNDER_TEST = {
    "sgd": (lambda lr: sgd(lr, momentum=0.9), 1e-3),
    "sgd-nesterov": (lambda lr: sgd(lr, momentum=0.9, nesterov=True), 1e-3),
    "adam": (lambda lr: adam(lr), 1e-2),
    "adamw": (lambda lr: adamw(lr, weight_decay=0.0), 1e-2),
    "bert_adamw": (lambda lr: bert_adamw(lr), 1e-2),
    "rmsprop": (lambda lr: rmsprop(lr, momentum=0.9), 1e-4),
    "rmsprop-centered": (lambda lr: rmsprop(lr, centered=True), 1e-3),
    "adagrad": (lambda lr: adagrad(lr), 0.5),
}


def parabola(p):
    return jnp.sum((p["x"] - jnp.array([1.0, -2.0])) ** 2)


def rosenbrock(p):
    x, y = p["x"][0], p["x"][1]
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def minimise(tx, loss, params, steps):
    def body(_, carry):
        p, s = carry
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    return jax.lax.fori_loop(0, steps, body, (params, tx.init(params)))[0]


@pytest.mark.parametrize("name", UNDER_TEST)
def test_converges_on_parabola_and_rosenbrock(name):
    make, lr = UNDER_TEST[name]
    start = {"x": jnp.array([0.0, 0.0])}
    solution = minimise(make(lr), parabola, start, 5000)
    np.testing.assert_allclose(solution["x"], [1.0, -2.0], atol=1e-2)
    start = {"x": jnp.array([-1.0, 1.5])}
    solution = minimise(make(lr), rosenbrock, start, 20000)
    np.testing.assert_allclose(solution["x"], [1.0, 1.0], atol=3e-2)


@pytest.mark.parametrize("name", UNDER_TEST)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtypes_preserved(name, dtype):
    make, lr = UNDER_TEST[name]
    tx = make(lr)
    params = {"a": jnp.ones((2, 3), dtype), "b": jnp.arange(3.0, dtype=dtype)}
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(params, state, params)
    chex.assert_trees_all_equal_dtypes(updates, params)
    buffers = [leaf for leaf in jax.tree.leaves(state) if leaf.ndim > 0]
    assert buffers and all(leaf.dtype == dtype for leaf in buffers)


PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.array([0.5, -0.5])}


@pytest.mark.parametrize("name", UNDER_TEST)
def test_no_recompilation(name):
    # The jitted steps' values are checked against torch and NumPy references elsewhere.
    make, lr = UNDER_TEST[name]
    tx = make(10 * lr)
    step = jax.jit(tx.update)
    state = tx.init(PARAMS)
    _, state = step(PARAMS, state, PARAMS)
    _, state = step(jax.tree.map(jnp.negative, PARAMS), state, PARAMS)
    assert step._cache_size() == 1


@pytest.mark.parametrize("name", UNDER_TEST)
def test_ignores_unknown_extra_args(name):
    make, lr = UNDER_TEST[name]
    tx = make(lr)
    state = tx.init(PARAMS)
    expected, _ = tx.update(PARAMS, state, PARAMS)
    updates, _ = tx.update(PARAMS, state, PARAMS, value=jnp.array(1.0), unknown="ignored")
    chex.assert_trees_all_equal(updates, expected)


def _run_steps(tx, grads_seq, params=PARAMS):
    state = tx.init(params)
    step = jax.jit(tx.update)
    for grads in grads_seq:
        updates, state = step(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


GRADS = [jax.tree.map(lambda p, i=i: jnp.sin(3 * p + i), PARAMS) for i in range(4)]


@pytest.mark.parametrize("name", UNDER_TEST)
def test_works_in_optax_wrappers_and_lookahead(name):
    make, lr = UNDER_TEST[name]
    expected, _ = _run_steps(make(lr), GRADS)
    # chain with an identity-like transformation changes nothing.
    chex.assert_trees_all_close(
        _run_steps(optax.chain(optax.clip(1e6), make(lr)), GRADS)[0], expected, rtol=1e-6
    )
    # multi_transform (PyTorch's param groups) with the same optimizer in both groups.
    groups_tx = optax.multi_transform({"w": make(lr), "b": make(lr)}, {"w": "w", "b": "b"})
    chex.assert_trees_all_close(_run_steps(groups_tx, GRADS)[0], expected, rtol=1e-6)
    # MultiSteps over pairs of micro-batches: two steps on the mean gradients of each pair.
    means = [jax.tree.map(lambda a, b: (a + b) / 2, GRADS[i], GRADS[i + 1]) for i in (0, 2)]
    chex.assert_trees_all_close(
        _run_steps(optax.MultiSteps(make(lr), every_k_schedule=2), GRADS)[0],
        _run_steps(make(lr), means)[0],
        rtol=1e-5,
    )
    # apply_if_finite skips a non-finite step entirely (params and inner state).
    nan_grads = jax.tree.map(lambda g: jnp.full_like(g, jnp.nan), GRADS[0])
    params, state = _run_steps(
        optax.apply_if_finite(make(lr), max_consecutive_errors=3), [GRADS[0], nan_grads, *GRADS[1:]]
    )
    chex.assert_trees_all_close(params, expected, rtol=1e-6)
    assert int(state.total_notfinite) == 1
    # Lookahead with sync_period 1 and alpha 1 is the inner optimizer itself.
    chex.assert_trees_all_close(
        _run_steps(lookahead(make(lr), sync_period=1, slow_step_size=1.0), GRADS)[0],
        expected,
        rtol=1e-6,
    )
    # With sync_period 2, Algorithm 1 by hand around the same inner optimizer.
    inner = make(lr)
    fast, slow, inner_state = PARAMS, PARAMS, inner.init(PARAMS)
    for t, grads in enumerate(GRADS, start=1):
        updates, inner_state = inner.update(grads, inner_state, fast)
        fast = optax.apply_updates(fast, updates)
        if t % 2 == 0:
            slow = jax.tree.map(lambda s, f: s + 0.5 * (f - s), slow, fast)
            fast = slow
    chex.assert_trees_all_close(
        _run_steps(lookahead(make(lr), sync_period=2), GRADS)[0], fast, rtol=1e-6
    )


INJECTABLE = {
    "sgd": lambda: optax.inject_hyperparams(sgd)(learning_rate=0.1, momentum=0.9),
    "adam": lambda: optax.inject_hyperparams(adam)(learning_rate=0.1, weight_decay=0.01),
    "adamw": lambda: optax.inject_hyperparams(adamw, static_args=("mask",))(
        learning_rate=0.1, mask={"w": True, "b": False}
    ),
    "bert_adamw": lambda: optax.inject_hyperparams(bert_adamw)(learning_rate=0.1),
    "rmsprop": lambda: optax.inject_hyperparams(rmsprop)(learning_rate=0.1, centered=True),
    "adagrad": lambda: optax.inject_hyperparams(adagrad)(learning_rate=0.1, lr_decay=0.1),
}
PLAIN = {
    "sgd": lambda: sgd(0.1, momentum=0.9),
    "adam": lambda: adam(0.1, weight_decay=0.01),
    "adamw": lambda: adamw(0.1, mask={"w": True, "b": False}),
    "bert_adamw": lambda: bert_adamw(0.1),
    "rmsprop": lambda: rmsprop(0.1, centered=True),
    "adagrad": lambda: adagrad(0.1, lr_decay=0.1),
}


@pytest.mark.parametrize("name", INJECTABLE)
def test_inject_hyperparams_reads_and_changes_the_learning_rate(name):
    tx = INJECTABLE[name]()
    params, state = _run_steps(tx, GRADS[:2])
    # Injected betas arrive as float32 arrays, so 1 - beta is rounded after the subtraction there.
    plain, _ = _run_steps(PLAIN[name](), GRADS[:2])
    chex.assert_trees_all_close(params, plain, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.1)
    # Changing the learning rate in the state changes the next step: 0 freezes the params
    # (weight decay is scaled by the learning rate in all of them).
    state.hyperparams["learning_rate"] = jnp.zeros([])
    updates, _ = jax.jit(tx.update)(GRADS[2], state, params)
    chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, params))
    state.hyperparams["learning_rate"] = jnp.array(0.05)
    half, _ = jax.jit(tx.update)(GRADS[2], state, params)
    state.hyperparams["learning_rate"] = jnp.array(0.1)
    full, _ = jax.jit(tx.update)(GRADS[2], state, params)
    chex.assert_trees_all_close(half, jax.tree.map(lambda u: u / 2, full), rtol=1e-5)


def test_multi_transform_is_param_groups(x64):
    # PyTorch param groups with their own lr and weight decay: SGD for the weights, Adam for the
    # biases, in one torch optimizer each (torch cannot mix classes in one optimizer).
    tx = optax.multi_transform(
        {"weights": adamw(1e-2, weight_decay=0.3), "biases": adamw(2e-2, weight_decay=0.0)},
        lambda p: jax.tree.map(lambda x: "weights" if x.ndim > 1 else "biases", p),
    )
    ours, _ = run_jax(tx, STEPS)
    theirs = run_torch(
        lambda ps: T.AdamW(groups(ps, lr=2e-2, weight_decay=0.0), lr=1e-2, weight_decay=0.3),
        STEPS,
    )
    assert max_rel_diff(ours, theirs) <= TOL


# -- Memory ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: adamw(1e-3), lambda: optax.adamw(1e-3, weight_decay=1e-2)),
        (lambda: sgd(1e-3, momentum=0.9), lambda: optax.sgd(1e-3, momentum=0.9)),
    ],
    ids=["adamw", "sgd-momentum"],
)
def test_step_needs_no_more_temporary_memory_than_optax(ours, theirs):
    # Measured: 68 bytes for both adamw, 0 for both sgd: step-level scalars only, no per-leaf
    # temporary (one leaf here is 32 KiB). Reading the old step count after the donated counter
    # is incremented in place would add a copy of it.
    params = {f"w{i}": jnp.ones((64, 128)) for i in range(20)}
    assert temp_bytes(ours(), params) <= temp_bytes(theirs(), params)


# -- Robustness ------------------------------------------------------------------------------------

ALL_FACTORIES = [sgd, adam, adamw, bert_adamw, rmsprop, adagrad]


@pytest.mark.parametrize("factory", ALL_FACTORIES)
def test_gradients_unlike_the_params_raise(factory):
    tx = factory(learning_rate=0.1)
    params = {"w": jnp.ones(()), "b": jnp.ones(2)}
    state = tx.init(params)
    name = factory.__name__
    with pytest.raises(ValueError, match=rf"^{name}: the gradient at \['w'\] has shape \(3,\)"):
        tx.update({"w": jnp.ones(3), "b": jnp.ones(2)}, state, params)  # would broadcast
    with pytest.raises(ValueError, match=f"^{name}: the updates .gradients. must have the tree"):
        tx.update({"w": jnp.ones(())}, state, params)


@pytest.mark.parametrize("factory", ALL_FACTORIES)
def test_saturated_step_count_keeps_updates_finite(factory):
    # The count saturates at 2**31 - 1; t = count + 1 must not wrap to -2**31 in int32.
    tx = factory(learning_rate=0.1)
    params = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(params)._replace(count=jnp.asarray(2**31 - 2, jnp.int32))
    step = jax.jit(tx.update)
    for _ in range(3):
        updates, state = step(params, state, params)
        chex.assert_tree_all_finite((updates, state))
    assert int(state.count) == 2**31 - 1
