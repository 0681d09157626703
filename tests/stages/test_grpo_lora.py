"""GRPO with LoRA: the engine serves the base with the policy's adapter, each refit loads the new adapter
only, and the engine stays on-policy (its logprobs are the trainer's) while the adapter moves fast."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import read_metrics, run_cli
from tests.stages.grpo_cli import grpo_args

STEPS = 3


def test_grpo_with_lora_refits_the_adapter_and_stays_on_policy(init_ckpt: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "grpo"
    run_cli(
        grpo_args(
            run_dir,
            f"model.init_from={init_ckpt}",
            "model.lora.rank=8",
            f"grpo.train_steps={STEPS}",
            "grpo.optimizer.lr=1e-2",  # adapters that move a lot: a stale one in the engine would show
            "grpo.optimizer.warmup_steps=0",
        )
    )
    rows = read_metrics(run_dir, "grpo")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for r in rows:
        assert r["logprob_mismatch_abs"] < 1e-4, r
        assert r["refit_seconds"] > 0 and r["full_refit_seconds"] > 0, r  # times: benchmarks/lora_step.py
    assert (run_dir / "checkpoints" / f"step_{STEPS:08d}" / "lora.json").is_file()
