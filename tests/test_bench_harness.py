"""The peer and whole-step benchmark harnesses: their equality checks, byte counts and models.

The timings themselves are never asserted (they live in `benchmarks/`); what is tested is what
makes a table trustworthy: a peer that follows another algorithm is refused before it is timed,
and the bytes each step is charged for are the algorithm's.
"""

import chex
import jax
import numpy as np
import pytest
import torch

from lookahead_jax.cli import peer_timing, timing, train_step_timing


class PaperLookahead:
    """Algorithm 1 of Zhang et al. around a torch optimizer: slow weights start at the params."""

    def __init__(self, optimizer, k=5, alpha=0.5):
        self.optimizer, self.k, self.alpha, self.steps = optimizer, k, alpha, 0
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.slow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def step(self):
        self.optimizer.step()
        self.steps += 1
        if self.steps % self.k == 0:
            for p, s in zip(self.params, self.slow, strict=True):
                s.add_(p - s, alpha=self.alpha)
                p.copy_(s)


class LazyLookahead(PaperLookahead):
    """timm's variant: the slow weights are created at the first sync, from the fast weights."""

    def __init__(self, optimizer, alpha=0.5, k=5):
        super().__init__(optimizer, k, alpha)
        self.slow = None

    @torch.no_grad()
    def step(self):
        if self.slow is None and (self.steps + 1) % self.k == 0:
            self.optimizer.step()
            self.steps += 1
            self.slow = [p.detach().clone() for p in self.params]
            return
        super().step()


class WrongAlpha(PaperLookahead):
    def __init__(self, optimizer, k=5, alpha=0.5):
        super().__init__(optimizer, k, alpha=0.3)


def test_trajectory_check_accepts_the_paper_and_timms_lazy_start():
    diffs = peer_timing.check_trajectories(
        torch, {"pytorch_optimizer": PaperLookahead, "timm": LazyLookahead}
    )
    assert len(diffs) == 8  # 4 inner torch optimizers each
    assert max(diffs.values()) < 1e-12, diffs


def test_trajectory_check_catches_another_algorithm():
    diffs = peer_timing.check_trajectories(torch, {"pytorch_optimizer": WrongAlpha})
    assert min(diffs.values()) > 1e-3, diffs
    # timm's lazy start run as if it were the paper's differs too: the check is not lenient.
    diffs = peer_timing.check_trajectories(torch, {"pytorch_optimizer": LazyLookahead})
    assert min(diffs.values()) > 1e-3, diffs


def test_bytes_moved_count_the_algorithms_passes():
    n = 1000
    assert peer_timing.bytes_moved("optax.adamw", n) == 7 * 4 * n
    assert peer_timing.bytes_moved("torch AdamW fused", n) == 7 * 4 * n
    assert peer_timing.bytes_moved("lj.sgd(m=0.9)", n) == 5 * 4 * n
    k = timing.SYNC_PERIOD
    assert peer_timing.bytes_moved("timm Lookahead(AdamW)", n) == pytest.approx((7 + 2 / k) * 4 * n)
    assert peer_timing.bytes_moved("lj.lookahead(sgd m=0.9)", n) == pytest.approx(
        (5 + 2 / k) * 4 * n
    )


def test_format_table_shows_the_bandwidth_fraction():
    rows = [
        timing.Row("s", "a", 2.0, None, None, 0.95),
        timing.Row("s", "b", 4.0, 2.0, "a", None),
    ]
    lines = timing.format_table(rows).splitlines()
    assert lines[0].split()[-2:] == ["BW", ""] or lines[0].endswith("of BW")
    assert lines[2].endswith("95%") and lines[3].split()[-1] == "a"


def test_train_step_models_and_every_variant_take_the_step_it_names():
    models = train_step_timing._models()
    assert len(jax.tree.leaves(models["MLP 100x64 (200 leaves)"][0])) == 200
    lm_params = models["Transformer LM 4x256"][0]
    assert 3e6 < sum(x.size for x in jax.tree.leaves(lm_params)) < 4e6
    params, loss, batch = models["digits CNN"]
    after = {}
    for name, tx in train_step_timing._variants().items():
        new, _ = jax.jit(train_step_timing._step(tx, loss))(params, tx.init(params), batch)
        assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(new)), name
        moved = [
            not np.array_equal(a, b)
            for a, b in zip(*map(jax.tree.leaves, (new, params)), strict=True)
        ]
        assert any(moved), name
        after[name] = new
    # Step 1 is not a sync: Lookahead returns its inner's update, in either layout.
    chex.assert_trees_all_equal(after["lj.lookahead(adamw)"], after["optax.adamw"])
    chex.assert_trees_all_equal(after["lj.lookahead(adamw, tree)"], after["optax.adamw"])
    chex.assert_trees_all_equal(after["clip_by_global_norm+adamw"], after["optax.adamw"])
    chex.assert_trees_all_equal(
        after["lj.lookahead(learned_schedule(adam))"], after["learned_schedule(adam)"]
    )


def test_train_step_suite_names_an_unknown_model():
    with pytest.raises(ValueError, match=r"unknown models \['ResNet'\]"):
        train_step_timing.train_step_suite(rounds=1, models=("ResNet",))
