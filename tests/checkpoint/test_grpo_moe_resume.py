"""GRPO of a mixture-of-experts policy at expert parallel 2 (two ranks, an engine each, routing replayed):
SIGKILLed after a checkpoint and restarted with the same command, it logs exactly the rollouts,
routing agreement, rewards and updates of an uninterrupted run (experts resharded from the checkpoint,
the engines refit with every expert gathered over the expert-parallel group)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checkpoint.test_sft_resume import kill_at_step, logged_steps
from tests.conftest import read_metrics, run_cli
from tests.stages.grpo_cli import grpo_args

STEPS = 4
COMPARED = (
    "reward_mean",
    "response_tokens_mean",
    "grad_norm",
    "entropy",
    "loss",
    "logprob_mismatch_abs",
    "routing_agreement",
)


def resume_args(run_dir: Path) -> list[str]:
    return grpo_args(
        run_dir,
        "model.hf_config=tiny-qwen3-moe",
        "parallel.expert_model_parallel_size=2",
        f"grpo.train_steps={STEPS}",
        "grpo.checkpoint.save_interval_steps=2",
    )


def trajectory(run_dir: Path) -> list[tuple]:
    return [(r["step"], *(r[k] for k in COMPARED)) for r in read_metrics(run_dir, "grpo")]


@pytest.mark.slow
@pytest.mark.parallel
def test_moe_ep2_sigkill_then_resume_gives_the_uninterrupted_run(tmp_path: Path) -> None:
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run_cli(resume_args(full_dir), nproc=2, timeout=900)
    reference = trajectory(full_dir)
    assert [t[0] for t in reference] == list(range(1, STEPS + 1))

    kill_at_step(resume_args(cut_dir), 2, cut_dir, 3)  # checkpoint at step 2; step 3 is lost
    assert logged_steps(cut_dir) < STEPS
    assert (cut_dir / "checkpoints" / "latest").read_text() == "step_00000002"
    run_cli(resume_args(cut_dir), nproc=2, timeout=900)
    assert trajectory(cut_dir) == reference
