"""GRPO kill-and-resume: a run SIGKILLed mid-way and restarted with the same command logs exactly the
rollouts, rewards and updates of an uninterrupted run (seeded sampling, sampler position and
optimizer state all come back from the checkpoint, and the engine is refit from it)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.checkpoint.test_sft_resume import kill_at_step, logged_steps
from tests.conftest import read_metrics, run_cli
from tests.stages.grpo_helpers import grpo_args

STEPS = 6
COMPARED = ("reward_mean", "response_tokens_mean", "groups_drawn", "grad_norm", "entropy", "loss")


def resume_args(run_dir: Path) -> list[str]:
    return grpo_args(run_dir, f"grpo.train_steps={STEPS}", "grpo.checkpoint.save_interval_steps=2")


def trajectory(run_dir: Path) -> list[tuple]:
    return [(r["step"], *(r[k] for k in COMPARED)) for r in read_metrics(run_dir, "grpo")]


def test_sigkill_then_resume_gives_the_uninterrupted_run(tmp_path: Path) -> None:
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run_cli(resume_args(full_dir), timeout=900)
    reference = trajectory(full_dir)
    assert [t[0] for t in reference] == list(range(1, STEPS + 1))

    kill_step = random.Random("grpo-kill").randint(3, STEPS - 2)
    kill_at_step(resume_args(cut_dir), 1, cut_dir, kill_step)
    assert logged_steps(cut_dir) < STEPS
    run_cli(resume_args(cut_dir), timeout=900)
    resumed = trajectory(cut_dir)
    assert resumed == reference, f"killed at step {kill_step}:\n{resumed}\nvs uninterrupted\n{reference}"
