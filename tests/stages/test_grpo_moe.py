"""GRPO on a mixture-of-experts policy (tiny-qwen3-moe, fp32): routing replay closes the engine-vs-trainer
gap, and the stage runs with experts split over two ranks (EP2).

With replay (`grpo.routing_replay`, on by default for MoE) the trainer's old logprobs equal the
engine's within 1e-4 mean absolute on the first step; the same step's logprobs under the trainer's
own routing (`logprob_mismatch_abs_unreplayed`) are reported, not bounded: what replay removes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import read_metrics, run_cli
from tests.stages.grpo_cli import grpo_args

MOE = "model.hf_config=tiny-qwen3-moe"
MAX_REPLAYED_GAP = 1e-4
MOE_METRICS = {"routing_agreement", "logprob_mismatch_abs_unreplayed", "moe/load_imbalance"}


def test_routing_replay_puts_the_trainer_on_the_engine_s_logprobs(tmp_path: Path) -> None:
    run_dir = tmp_path / "grpo"
    run_cli(grpo_args(run_dir, MOE, "grpo.train_steps=1"))
    (row,) = read_metrics(run_dir, "grpo")
    print(
        f"first step: logprob_mismatch_abs {row['logprob_mismatch_abs']:.3g} with replay, "
        f"{row['logprob_mismatch_abs_unreplayed']:.3g} without; routing agreement "
        f"{row['routing_agreement']:.4f}; load imbalance {row['moe/load_imbalance']:.3f}"
    )
    assert row["logprob_mismatch_abs"] <= MAX_REPLAYED_GAP, row
    assert row.keys() >= MOE_METRICS, row
    assert 0.0 <= row["routing_agreement"] <= 1.0
    assert all(f"moe/layer_{layer}/load_imbalance" in row for layer in range(4)), row


@pytest.mark.slow  # two ranks, an engine each: 120 s on two shared cores
@pytest.mark.parallel
def test_grpo_tiny_runs_at_expert_parallel_2(tmp_path: Path) -> None:
    """The shipped toy recipe with the MoE model and EP2 over two ranks: it trains and logs the gap."""
    run_dir = tmp_path / "grpo"
    sets = [MOE, "parallel.expert_model_parallel_size=2", "grpo.train_steps=2"]
    run_cli(grpo_args(run_dir, *sets), nproc=2, timeout=900)
    rows = read_metrics(run_dir, "grpo")
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        print(
            f"step {row['step']}: logprob_mismatch_abs {row['logprob_mismatch_abs']:.3g} "
            f"(unreplayed {row['logprob_mismatch_abs_unreplayed']:.3g}), "
            f"agreement {row['routing_agreement']:.4f}"
        )
        assert row["logprob_mismatch_abs"] <= MAX_REPLAYED_GAP, row
        assert row.keys() >= MOE_METRICS, row
    assert (run_dir / "checkpoints" / "step_00000002").is_dir()
