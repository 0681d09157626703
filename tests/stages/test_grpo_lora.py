"""GRPO with LoRA: the engine serves the base with the policy's adapter, each refit loads the new adapter
only, and the engine stays on-policy (its logprobs are the trainer's) while the adapter moves fast. In
the separate placement (synchronous) the rollout process gets the base once and then adapters, and the
run is the colocated one."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from nemo_recipes.rollout.remote import PENDING_FILE
from tests.conftest import read_metrics, run_cli
from tests.stages.grpo_cli import grpo_args
from tests.stages.test_grpo_async import assert_same_run

STEPS = 3


def lora_run(run_dir: Path, init_ckpt: Path, *extra: str) -> list[dict]:
    run_cli(
        grpo_args(
            run_dir,
            f"model.init_from={init_ckpt}",
            "model.lora.rank=8",
            f"grpo.train_steps={STEPS}",
            "grpo.optimizer.lr=1e-2",  # adapters that move a lot: a stale one in the engine would show
            "grpo.optimizer.warmup_steps=0",
            *extra,
        ),
        timeout=600,
    )
    return read_metrics(run_dir, "grpo")


@pytest.fixture(scope="module")
def colocated(tmp_path_factory: pytest.TempPathFactory, init_ckpt: Path) -> tuple[Path, list[dict]]:
    run_dir = tmp_path_factory.mktemp("colocated") / "grpo"
    return run_dir, lora_run(run_dir, init_ckpt)


def test_grpo_with_lora_refits_the_adapter_and_stays_on_policy(colocated: tuple[Path, list[dict]]) -> None:
    run_dir, rows = colocated
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for r in rows:
        assert r["logprob_mismatch_abs"] < 1e-4, r
        assert r["refit_seconds"] > 0 and r["full_refit_seconds"] > 0, r  # times: benchmarks/lora_step.py
    assert (run_dir / "checkpoints" / f"step_{STEPS:08d}" / "lora.json").is_file()


def test_lora_in_the_separate_placement_is_the_colocated_run(
    colocated: tuple[Path, list[dict]], init_ckpt: Path, tmp_path: Path
) -> None:
    separate = ("grpo.placement=separate", "grpo.max_off_policy_steps=0")
    rows = lora_run(tmp_path / "grpo", init_ckpt, *separate)
    assert_same_run(rows, colocated[1])
    for r in rows:  # the rollout process's engine had each step's adapter
        assert r["off_policy_steps_max"] == 0 and r["logprob_mismatch_abs"] < 1e-4, r
    last = tmp_path / "grpo" / "checkpoints" / f"step_{STEPS:08d}"
    assert (last / "lora.json").is_file() and pickle.loads((last / PENDING_FILE).read_bytes()) == []
