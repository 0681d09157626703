"""Optimizer checkpoints resume exactly (nemo_recipes/checkpoint/optimizer_state.py).

One torchrun launch (2 ranks, tests/checkpoint/_resume_worker.py) runs every scenario: train 6
steps uninterrupted; separately train, save model + optimizer with dist_checkpointing, rebuild
everything from other initial weights, load, and train on. The continuation must give the
uninterrupted losses. Controls load the same checkpoints the way megatron-core alone does, to show
that these tests catch each problem the module fixes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_torchrun

pytestmark = pytest.mark.parallel

WORKER = Path(__file__).with_name("_resume_worker.py")
SAME_LAYOUT = [
    "distopt_dp2",
    "nondist_dp2",
    "distopt_full_dp2",
    "distopt_dp2_step0",
    "nondist_dp2_step0",
    "distopt_dp2_bf16",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work_dir = tmp_path_factory.mktemp("optimizer_state")
    run_torchrun([str(WORKER), str(work_dir)], timeout=600)
    return json.loads((work_dir / "results.json").read_text())


def continuation_diff(resumed: list[float], reference: list[float]) -> float:
    tail = reference[len(reference) - len(resumed) :]
    return max(abs(a - b) for a, b in zip(resumed, tail, strict=True))


@pytest.mark.parametrize("scenario", SAME_LAYOUT)
def test_resume_in_the_same_layout_continues_the_uninterrupted_losses(results: dict, scenario: str) -> None:
    run = results[scenario]
    assert continuation_diff(run["resumed"], run["reference"]) <= 1e-6, run


def test_fully_reshardable_resumes_at_another_tensor_parallel_size(results: dict) -> None:
    run = results["distopt_full_tp2_to_tp1"]  # saved at TP=2 DP=1, loaded at TP=1 DP=2
    assert continuation_diff(run["resumed"], run["reference"]) <= 1e-5, run
    assert continuation_diff(run["resumed"], results["distopt_dp2"]["reference"]) <= 1e-5, run


def test_megatron_core_alone_fails_or_diverges_on_distributed_optimizer_checkpoints(results: dict) -> None:
    dp, full, bf16 = (
        results[k]["controls"] for k in ("distopt_dp2", "distopt_full_tp2_to_tp1", "distopt_dp2_bf16")
    )
    # A fresh optimizer has no per-parameter state: state_dict() asserts on the step.
    assert dp["stock"].startswith("AssertionError") and full["stock"].startswith("AssertionError")
    # With state: the fp32 in-place copy into views of leaf parameters outside no_grad.
    assert dp["init"].startswith("RuntimeError") and "leaf" in dp["init"]
    # With state and no_grad: it loads, but the shared, stale step makes training diverge...
    assert continuation_diff(dp["init_nograd"], results["distopt_dp2"]["reference"]) > 1e-4
    assert continuation_diff(bf16["init_nograd"], results["distopt_dp2_bf16"]["reference"]) > 1e-4
    # ... and fully_reshardable does not load at all.
    assert full["init_nograd"] == "KeyError: 'step'"


def test_non_distributed_optimizer_needs_no_fix_after_the_first_step(results: dict) -> None:
    run = results["nondist_dp2"]
    assert continuation_diff(run["controls"]["stock"], run["reference"]) <= 1e-6


def test_loading_with_another_format_is_a_clear_error(results: dict) -> None:
    wrong_type = results["distopt_dp2"]["controls"]["mismatch"]
    assert wrong_type.startswith("ValueError") and "as 'dp_reshardable', but" in wrong_type
    wrong_kind = results["nondist_dp2"]["controls"]["mismatch"]
    assert wrong_kind.startswith("ValueError") and "saved by the non-distributed optimizer" in wrong_kind


@pytest.mark.parametrize("sharding_type", ["fully_sharded_model_space", "dp_zero_gather_scatter", "dp"])
def test_unsupported_sharding_types_are_rejected_up_front(sharding_type: str, tmp_path: Path) -> None:
    from nemo_recipes.checkpoint.optimizer_state import load_optimizer_state, optimizer_sharded_state_dict

    with pytest.raises(ValueError, match="dp_reshardable"):
        optimizer_sharded_state_dict(None, {}, sharding_type)
    with pytest.raises(ValueError, match="dp_reshardable"):
        load_optimizer_state(None, {}, tmp_path, sharding_type)
