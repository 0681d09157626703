"""The whole pipeline as one Slurm job (`redone slurm submit --stage run`) on the local two-node cluster.

The batch script runs `redone run`, which starts each training stage as a job step over both nodes
and the other units as one-task steps. Warned before its time limit during stage 1, the job
checkpoints through the pipeline, requeues itself, resumes stage 1 from its checkpoint and completes
with the artefacts of a local run. A rank that dies fails the job with the unit's log in the job log.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from nemo_recipes.pipeline.manifest import read_manifest
from tests.slurm.conftest import (
    job_fields,
    job_log,
    job_logs,
    rank_process,
    slurm_env,
    submit,
    wait_for_end,
    wait_until,
)
from tests.test_pipeline_e2e import RECIPE, check_artefacts

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]
JOB_TIMEOUT_S = 2400


def pipeline_job(run_dir: Path, base: Path, eval_data: Path, jobs: list[str]) -> str:
    """Submit the tiny pipeline from `base` on 2 nodes x 1 rank; returns the job id."""
    sets = [f"run_dir={run_dir}", f"model.init_from={base}", f"eval.data=[{eval_data}]"]
    flags = ["--stage", "run", "--nodes", "2", "--procs-per-node", "1", "--time", "60:00"]
    job = submit(RECIPE, *(a for s in sets for a in ("--set", s)), *flags)
    jobs.append(job)
    return job


def test_pipeline_job_requeues_at_the_time_limit_warning_and_completes(
    tmp_path: Path, init_ckpt: Path, small_eval: Path, cancel_on_exit: list[str]
) -> None:
    run_dir = tmp_path / "run"
    job = pipeline_job(run_dir, init_ckpt, small_eval, cancel_on_exit)

    checkpoint = run_dir / "stage1_grpo/checkpoints/latest"
    wait_until("stage 1's first checkpoint", checkpoint.exists, JOB_TIMEOUT_S, run_dir)
    # What `--signal=B:USR1@300` does 300 s before the time limit, sent now.
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm_env(), check=True)
    end = wait_for_end(job, JOB_TIMEOUT_S, run_dir)
    log = job_log(run_dir, job)
    assert end["JobState"] == "COMPLETED" and end["Restarts"] == "1", job_logs(run_dir)
    assert "got SIGUSR1" in log and "requeueing, the run resumes as restart 1" in log
    assert "stage1_grpo: stopped (signal SIGTERM); the same command resumes" in log
    assert "base_eval: finished earlier, skipped" in log and log.rstrip().endswith("finished")

    check_artefacts(run_dir)
    stage1 = read_manifest(run_dir / "stage1_grpo")
    assert stage1["attempts"] == 2 and stage1["processes"] == 2
    stage1_log = (run_dir / "stage1_grpo/log.txt").read_text()
    assert re.search(r"^0: ", stage1_log, re.M) and re.search(r"^1: ", stage1_log, re.M)  # both ranks
    assert re.search(r"resume from \S+/step_\d+", stage1_log), stage1_log[-3000:]
    for unit in ("stage1_grpo", "stage2_sft", "stage3_grpo"):
        assert (
            "srun --kill-on-bad-exit=1 --ntasks-per-node=1 --label"
            in (run_dir / unit / "log.txt").read_text()
        )
    assert (
        "srun --kill-on-bad-exit=1 --nodes=1 --ntasks=1 --ntasks-per-node=1"
        in (run_dir / "base_eval/log.txt").read_text()
    )


def test_a_rank_dying_in_a_stage_fails_the_pipeline_job_with_the_units_log(
    tmp_path: Path, init_ckpt: Path, small_eval: Path, cancel_on_exit: list[str]
) -> None:
    run_dir = tmp_path / "run"
    job = pipeline_job(run_dir, init_ckpt, small_eval, cancel_on_exit)
    victim = lambda: rank_process(job, 1, "grpo")  # noqa: E731
    wait_until("stage 1's rank 1", lambda: victim() is not None, JOB_TIMEOUT_S, run_dir)
    victim().send_signal(signal.SIGKILL)  # as the out-of-memory killer would
    end = wait_for_end(job, 300, run_dir)
    log = job_log(run_dir, job)
    assert end["JobState"] == "FAILED" and job_fields(job)["Restarts"] == "0", job_logs(run_dir)
    assert re.search(r"stage1_grpo: `redone grpo \S+/stage1_grpo/stage.yaml` exited \d+; its log", log)
    assert "\n  | " in log  # the end of the unit's log, shown in the job log
    killed = "1: [redone-slurm] rank 1 on n2: the trainer was killed by SIGKILL (signal 9)"
    assert killed in (run_dir / "stage1_grpo/log.txt").read_text()
    assert "FAILED: the pipeline exited with code 1" in log
    assert read_manifest(run_dir / "base_eval") and not read_manifest(run_dir / "stage1_grpo")
