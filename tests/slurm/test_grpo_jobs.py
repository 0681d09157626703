"""Tiny GRPO jobs on a real two-node Slurm, submitted with `redone slurm submit --stage grpo`.

Rank 0 hosts the vLLM engine (on CPU, inside its process tree), the other rank trains beside it. The
job logs the same per-step rollouts, rewards and updates as the same run under torchrun; warned before
its time limit, it checkpoints, requeues itself and resumes to the same metrics. With
`grpo.placement: separate` the trainer runs on one node and the rollout process on the other, and the
job logs what the same run logs on one machine.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, read_metrics, run_cli
from tests.slurm.conftest import (
    job_log,
    job_logs,
    rank_logs,
    slurm_env,
    submit,
    wait_for_end,
    wait_for_steps,
)
from tests.stages.grpo_cli import RECIPE, grpo_args

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]

STEPS = 4
# What a step logs that depends on the rollouts and the update (not on time).
COMPARED = ("reward_mean", "response_tokens_mean", "groups_drawn", "loss", "grad_norm", "entropy")
JOB_TIMEOUT_S = 600


def overrides(run_dir: Path) -> list[str]:
    """grpo_args' --set pairs, with checkpoints only at the end or on a stop signal."""
    args = grpo_args(run_dir, f"grpo.train_steps={STEPS}", "grpo.checkpoint.save_interval_steps=100")
    return args[2:]


def trajectory(run_dir: Path) -> list[tuple]:
    return [(r["step"], *(r[k] for k in COMPARED)) for r in read_metrics(run_dir, "grpo")]


def grpo_job(run_dir: Path, *flags: str) -> str:
    return submit(REPO / RECIPE, "--stage", "grpo", *overrides(run_dir), "--nodes", "2", *flags)


@pytest.fixture(scope="module")
def uninterrupted_job(
    tmp_path_factory: pytest.TempPathFactory, slurm_cluster: None
) -> Iterator[tuple[str, Path]]:
    """Submitted before the torchrun reference (see the test's fixture order): both run at once."""
    run_dir = tmp_path_factory.mktemp("grpo-srun")
    job = grpo_job(run_dir)
    yield job, run_dir
    subprocess.run(["scancel", job], env=slurm_env(), capture_output=True)


@pytest.fixture(scope="module")
def torchrun_trajectory(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """The same run as 2 local ranks under torchrun (`redone grpo --nproc 2`)."""
    run_dir = tmp_path_factory.mktemp("grpo-torchrun")
    run_cli(["grpo", RECIPE, *overrides(run_dir)], nproc=2, timeout=900)
    ref = trajectory(run_dir)
    assert [t[0] for t in ref] == list(range(1, STEPS + 1))
    return ref


# Fixture order matters: the job is submitted first and runs while the reference runs.
def test_two_node_grpo_job_matches_torchrun(
    uninterrupted_job: tuple[str, Path], torchrun_trajectory: list[tuple]
) -> None:
    job, run_dir = uninterrupted_job
    end = wait_for_end(job, JOB_TIMEOUT_S, run_dir)
    log = job_log(run_dir, job)
    assert end["JobState"] == "COMPLETED", job_logs(run_dir)
    assert f"job {job} restart 0 (SLURM_RESTART_COUNT): 2 nodes (n1 n2), 1 ranks per node" in log
    assert log.rstrip().endswith("finished")
    assert "resume from scratch" in rank_logs(run_dir, job)["rank-0.log"]
    assert trajectory(run_dir) == torchrun_trajectory


def test_grpo_time_limit_warning_checkpoints_requeues_and_resumes(
    torchrun_trajectory: list[tuple], tmp_path: Path, cancel_on_exit: list[str]
) -> None:
    job = grpo_job(tmp_path, "--time", "30:00")
    cancel_on_exit.append(job)
    wait_for_steps(job, tmp_path, 1, JOB_TIMEOUT_S)
    # What `--signal=B:USR1@300` does 300 s before the time limit, sent now.
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm_env(), check=True)
    end = wait_for_end(job, JOB_TIMEOUT_S, tmp_path)
    log = job_log(tmp_path, job)
    assert end["JobState"] == "COMPLETED", job_logs(tmp_path)
    assert end["Restarts"] == "1", job_logs(tmp_path)
    assert "got SIGUSR1" in log and "requeueing, the run resumes as restart 1" in log
    resumed = [
        int(s) for s in re.findall(r"resume from \S+/step_(\d+)", rank_logs(tmp_path, job)["rank-0.log"])
    ]
    assert len(resumed) == 1 and 1 <= resumed[0] < STEPS, f"resumed at {resumed}\n{job_logs(tmp_path)}"
    assert trajectory(tmp_path) == torchrun_trajectory


def test_separate_placement_job_puts_the_rollout_process_on_its_own_node(tmp_path: Path) -> None:
    asynchronous = ["--set", "grpo.placement=separate", "--set", "grpo.max_off_policy_steps=1"]
    local_dir, job_dir = tmp_path / "local", tmp_path / "job"
    job = submit(REPO / RECIPE, "--stage", "grpo", *overrides(job_dir), *asynchronous, "--nodes", "1")
    run_cli(["grpo", RECIPE, *overrides(local_dir), *asynchronous], timeout=900)
    end = wait_for_end(job, JOB_TIMEOUT_S, job_dir)
    log = job_log(job_dir, job)
    assert end["JobState"] == "COMPLETED", job_logs(job_dir)
    assert "1 nodes (n1)" in log and "rollout process on n2, connecting to n1:" in log, log
    assert "[grpo]" in rank_logs(job_dir, job)["rank-0.log"]
    assert trajectory(job_dir) == trajectory(local_dir)
