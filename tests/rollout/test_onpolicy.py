"""The engine samples from the policy the trainer scores: vLLM's logprobs of its own samples equal
`compute_logprobs` within 1e-4 (fp32, temperatures 1.0 and 0.7), before and after a refit, in one
process and colocated under torchrun at TP=2 and PP=2 (tests.rollout.onpolicy_check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env

MAX_LOGPROB_DIFF = 1e-4
VOCAB_PARALLEL_TOLERANCE = 5e-5


def run_check(tmp: Path, nproc: int, layouts: list[str]) -> dict:
    env = {**cli_env(), "VLLM_CACHE_ROOT": str(tmp / "vllm_cache")}
    launch = [sys.executable]
    if nproc > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd = [*launch, "-m", "tests.rollout.onpolicy_worker", str(tmp / "report.json"), str(tmp), *layouts]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(
            f"on-policy worker exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return json.loads((tmp / "report.json").read_text())


@pytest.fixture(scope="module")
def single_process(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_check(tmp_path_factory.mktemp("onpolicy1"), 1, ["1,1"])


@pytest.fixture(scope="module")
def colocated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_check(tmp_path_factory.mktemp("onpolicy2"), 2, ["2,1", "1,2"])


def check_layout(layout: dict) -> None:
    name = f"tp{layout['tp']} pp{layout['pp']}"
    for key in ("diff_t1.0", "diff_t0.7", "diff_after_refit"):
        assert layout[key] <= MAX_LOGPROB_DIFF, (name, key, layout)
    assert layout["diff_stale_engine"] > 0.1, (name, "a stale engine must disagree", layout)
    assert layout["changed_by_refit"], name
    assert layout["same_seed_same_completions"] and layout["other_seed_differs"], name
    for key in ("logprob_err", "logprob_grad_err", "entropy_err"):
        assert layout[key] <= VOCAB_PARALLEL_TOLERANCE, (name, key, layout)
    assert layout["response_tokens"] > 200


def test_engine_and_trainer_logprobs_match_in_one_process(single_process: dict) -> None:
    (layout,) = single_process["layouts"]
    check_layout(layout)


@pytest.mark.slow  # ~45-90 s on two shared cores
@pytest.mark.parallel
def test_colocated_engine_matches_at_tp2_and_pp2(colocated: dict) -> None:
    assert [(r["tp"], r["pp"]) for r in colocated["layouts"]] == [(2, 1), (1, 2)]
    for layout in colocated["layouts"]:
        check_layout(layout)
