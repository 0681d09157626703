"""The learning-rate schedule counts the stage's own steps, never runs an update at lr 0, and a
resumed stage continues it exactly."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nemo_recipes.config.rl import RLOptimizerConfig
from nemo_recipes.config.training import OptimizerConfig
from nemo_recipes.training.optimizer import build_schedule, position_schedule


def update_lrs(
    cfg: OptimizerConfig, steps: int, per_step: int, saved: dict | None = None
) -> tuple[list, dict]:
    """The lr of each update of a stage (as run_step reads it before optimizer.step), and the
    schedule's state after them."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_schedule(optimizer, cfg, steps, per_step)
    position_schedule(scheduler, saved)
    lrs = []
    for _ in range(steps * per_step - (saved or {}).get("num_steps", 1) + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step(increment=1)
    return lrs, scheduler.state_dict()


def test_the_rl_warm_up_counts_rl_steps_of_several_updates() -> None:
    # The recipe's "10-step warm-up", here 2 RL steps of 4 mini-batches: 8 updates up to the peak.
    lrs, _ = update_lrs(RLOptimizerConfig(lr=1.0, warmup_steps=2), steps=4, per_step=4)
    assert len(lrs) == 16
    assert lrs[:8] == pytest.approx([k / 8 for k in range(1, 9)])  # the first update already moves
    assert lrs[8:] == pytest.approx([1.0] * 8)  # constant after it


def test_a_decay_spans_the_whole_stage_and_never_reaches_zero() -> None:
    cfg = OptimizerConfig(lr=1.0, min_lr=0.0, lr_schedule="cosine", warmup_steps=0)
    lrs, _ = update_lrs(cfg, steps=5, per_step=4)
    assert len(lrs) == 20 and min(lrs) > 0
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert lrs[9] == pytest.approx(0.5 * (math.cos(math.pi * 10 / 21) + 1))  # update 10 of 20, end at 21


def test_sft_warm_up_counts_optimizer_steps() -> None:
    lrs, _ = update_lrs(OptimizerConfig(lr=2.0, warmup_steps=4, lr_schedule="constant"), steps=10, per_step=1)
    assert lrs == pytest.approx([0.5, 1.0, 1.5, 2.0] + [2.0] * 6)


def test_a_resumed_schedule_continues_where_it_stopped() -> None:
    cfg = OptimizerConfig(lr=1.0, lr_schedule="cosine", warmup_steps=1)
    whole, _ = update_lrs(cfg, steps=6, per_step=2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_schedule(optimizer, cfg, 6, 2)
    position_schedule(scheduler, None)
    for _ in range(5):  # five updates, then a checkpoint
        scheduler.step(increment=1)
    rest, _ = update_lrs(cfg, steps=6, per_step=2, saved=scheduler.state_dict())
    assert rest == pytest.approx(whole[5:])


def test_a_stage_shorter_than_its_warm_up_ends_warming_up() -> None:
    # A short run of a long recipe (20 warm-up steps, 3 steps run): the lr rises all stage long.
    lrs, _ = update_lrs(OptimizerConfig(lr=1.0, warmup_steps=20), steps=3, per_step=1)
    assert lrs == pytest.approx([1 / 20, 2 / 20, 3 / 20])
