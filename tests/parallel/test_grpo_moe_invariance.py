"""Expert parallelism must not change the GRPO math of a mixture-of-experts policy: from the same weights
and seeds, the first step (same rollouts, the engine's routing replayed, two mini-batch updates) logs
the single-process run's loss terms and gradient norm within 1e-5 at EP2 and at PP2 (two ranks each;
under PP every stage's routers take their layers of the replayed routing) and at EP2 x TP2 with
sequence parallelism (four ranks; each TP rank routes and replays its slice of the row). Under expert
parallelism every rank's rows are padded to the token budget and as many (megatron-core's all-gather
dispatcher gathers equal rows over the expert-parallel group), so this also checks that the padding
changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.stages.grpo_cli import assert_same_step, first_step

pytestmark = pytest.mark.parallel

MOE = "model.hf_config=tiny-qwen3-moe"
COMPARED = (
    "reward_mean",
    "loss",
    "policy_loss",
    "ratio_mean",
    "entropy",
    "grad_norm",
    "logprob_mismatch_abs",
)


@pytest.fixture(scope="module")
def moe_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random tiny-qwen3-moe saved once (world 1): every layout starts from these weights."""
    out = tmp_path_factory.mktemp("init") / "tiny-qwen3-moe"
    run_cli(["init-model", "--set", MOE, "--out", str(out)])
    return out


def step_one(run_dir: Path, init: Path, nproc: int, *sets: str) -> dict[str, float]:
    return first_step(run_dir, init, nproc, COMPARED, MOE, *sets)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, moe_init: Path) -> dict[str, float]:
    ref = step_one(tmp_path_factory.mktemp("ep1"), moe_init, 1)
    assert ref["ratio_mean"] != 1.0, "the second update must see a moved policy for the test to mean much"
    return ref


LAYOUTS = {
    "ep2": (2, ["parallel.expert_model_parallel_size=2"]),
    "pp2": (2, ["parallel.pipeline_model_parallel_size=2"]),  # each stage replays its own layers
    # megatron-core trains MoE layers under TP only with sequence parallelism: each TP rank routes (and
    # replays) its slice of the row
    "ep2_tp2": (
        4,
        [
            "parallel.expert_model_parallel_size=2",
            "parallel.tensor_model_parallel_size=2",
            "parallel.sequence_parallel=true",
        ],
    ),
}


@pytest.mark.slow  # EP1 then a layout (an engine per rank): 150-270 s on two shared cores (EP2 x TP2 147 s)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_first_moe_step_matches_one_rank(
    layout: str, reference: dict[str, float], moe_init: Path, tmp_path: Path
) -> None:
    nproc, sets = LAYOUTS[layout]
    assert_same_step(step_one(tmp_path, moe_init, nproc, *sets), reference, layout)
