"""Tiny SFT jobs on a real two-node Slurm, submitted with `redone slurm submit`.

A job's losses equal the same run under torchrun; a job warned before its time limit checkpoints,
requeues itself and resumes with the uninterrupted losses; Slurm's own requeue does the same; a
failing rank fails the job with a message instead of hanging.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import losses
from tests.slurm.conftest import (
    SFT_JOB_TIMEOUT_S,
    SFT_RECIPE,
    SFT_STEPS,
    job_fields,
    job_log,
    job_logs,
    logged_steps,
    rank_logs,
    rank_process,
    sft_overrides,
    slurm_env,
    stop_mid_run_and_resume,
    submit,
    wait_for_end,
    wait_for_steps,
)

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def two_node_job(run_dir: Path, jobs: list[str], *flags: str) -> str:
    job = submit(SFT_RECIPE, *sft_overrides(run_dir), "--nodes", "2", "--procs-per-node", "1", *flags)
    jobs.append(job)
    return job


@pytest.fixture(scope="module")
def uninterrupted_job(
    tmp_path_factory: pytest.TempPathFactory, slurm_cluster: None
) -> Iterator[tuple[str, Path]]:
    """Submitted before the torchrun reference (see the test's fixture order) so that both run at once."""
    run_dir = tmp_path_factory.mktemp("srun")
    job = submit(SFT_RECIPE, *sft_overrides(run_dir), "--nodes", "2", "--gpus-per-node", "1")
    yield job, run_dir
    subprocess.run(["scancel", job], env=slurm_env(), capture_output=True)


# Fixture order matters: the job is submitted first and runs while the reference runs.
def test_two_node_srun_job_matches_torchrun(
    uninterrupted_job: tuple[str, Path], torchrun_losses: list[float]
) -> None:
    job, run_dir = uninterrupted_job
    end = wait_for_end(job, SFT_JOB_TIMEOUT_S, run_dir)
    log = job_log(run_dir, job)
    assert end["JobState"] == "COMPLETED", job_logs(run_dir)
    assert f"job {job} restart 0 (SLURM_RESTART_COUNT): 2 nodes (n1 n2), 1 ranks per node" in log
    assert "launcher srun" in log and log.rstrip().endswith("finished")
    ranks = rank_logs(run_dir, job)
    assert sorted(ranks) == ["rank-0.log", "rank-1.log"]
    assert "resume from scratch" in ranks["rank-0.log"]
    assert (run_dir / "slurm" / f"job-{job}.sbatch").read_text().startswith("#!/bin/bash")
    assert losses(run_dir) == torchrun_losses


def test_time_limit_warning_checkpoints_requeues_and_resumes(
    torchrun_losses: list[float], tmp_path: Path, cancel_on_exit: list[str]
) -> None:
    job = two_node_job(tmp_path, cancel_on_exit, "--time", "30:00")
    script = (tmp_path / "slurm" / f"job-{job}.sbatch").read_text()
    assert "#SBATCH --signal=B:USR1@300" in script and "#SBATCH --requeue" in script
    # What `--signal=B:USR1@300` does 300 s before the time limit, sent now.
    stop = ["scancel", "--batch", "--signal=USR1", job]
    log = stop_mid_run_and_resume(tmp_path, job, stop, torchrun_losses)
    assert "got SIGUSR1" in log and "requeueing, the run resumes as restart 1" in log


@pytest.mark.slow
def test_torchrun_launcher_survives_scontrol_requeue(
    torchrun_losses: list[float], tmp_path: Path, cancel_on_exit: list[str]
) -> None:
    job = two_node_job(tmp_path, cancel_on_exit, "--launcher", "torchrun")
    log = stop_mid_run_and_resume(tmp_path, job, ["scontrol", "requeue", job], torchrun_losses)
    assert "launcher torchrun" in log and "got SIGTERM: Slurm is ending the job" in log
    assert "checkpointed and stopped (step exit 1); Slurm is ending the job" in log
    assert sorted(rank_logs(tmp_path, job)) == ["node-0.log", "node-1.log"]


def test_a_failing_rank_fails_the_job_with_a_message(tmp_path: Path, cancel_on_exit: list[str]) -> None:
    job = two_node_job(tmp_path, cancel_on_exit)
    wait_for_steps(job, tmp_path, 1, SFT_JOB_TIMEOUT_S)
    victim = rank_process(job, 1, "sft")
    assert victim is not None, "rank 1 of the job not found"
    victim.send_signal(signal.SIGKILL)  # as the out-of-memory killer would
    end = wait_for_end(job, 90, tmp_path)  # the other rank is stopped, not left waiting
    log = job_log(tmp_path, job)
    assert end["JobState"] == "FAILED", job_logs(tmp_path)
    assert end["Restarts"] == "0"
    assert "task 1: Exited with exit code 137" in log  # srun names the task
    # 137 or 143: srun reports the other rank too, which it stopped with SIGTERM
    assert re.search(r"FAILED: the job step exited with code 1(37|43)", log)
    # from the rank's own log, shown in the job log
    assert "rank 1 on n2: the trainer was killed by SIGKILL (signal 9)" in log
    assert logged_steps(tmp_path) < SFT_STEPS
    assert job_fields(job)["Restarts"] == "0"
