"""A real local Slurm cluster (two nodes on this host) for the session, and job helpers.

The cluster is installed (Debian packages) and started once; it is stopped at the end only if this
session started it. Tests are skipped only where Slurm cannot be installed (no apt-get, not root).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, cli_command, cli_env, losses, run_cli
from tests.slurm import local_cluster

SFT_RECIPE = REPO / "nemo_recipes" / "recipes" / "sft_tiny.yaml"
SFT_STEPS = 16
SFT_JOB_TIMEOUT_S = 300
# The smallest SFT run: the toy validation file as training data (22 packed rows), short rows, no
# evaluation, no mid-run checkpoint except the one a stop signal asks for.
SFT_SETS = [
    f"sft.train_steps={SFT_STEPS}",
    "sft.train_data=[toy_chat/valid.jsonl]",
    "sft.valid_data=[]",
    "sft.seq_length=128",
    "sft.micro_batch_size=2",
    "sft.global_batch_size=8",
    "sft.optimizer.warmup_steps=0",
    "sft.checkpoint.save_interval_steps=1000",
    "logging.tensorboard=false",
    "logging.progress_bar=false",
]
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}


def slurm_env() -> dict[str, str]:
    """The CLI's test environment, pointed at the local cluster, free of an outer job's SLURM_*."""
    env = {k: v for k, v in cli_env().items() if not k.startswith("SLURM_")}
    return {**env, **local_cluster.client_env()}


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    try:
        started = local_cluster.start()
    except local_cluster.SlurmUnavailable as e:
        pytest.skip(f"SLURM TESTS SKIPPED: {e}")
    yield
    if started:
        local_cluster.stop()


def sft_overrides(run_dir: Path) -> list[str]:
    """The --set arguments of the smallest SFT run, writing to `run_dir`."""
    return [a for s in [f"run_dir={run_dir}", *SFT_SETS] for a in ("--set", s)]


@pytest.fixture(scope="session")
def torchrun_losses(tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """The smallest SFT run as 2 local ranks under torchrun (`redone sft --nproc 2`): what a two-node
    job of it must log."""
    run_dir = tmp_path_factory.mktemp("torchrun")
    run_cli(["sft", str(SFT_RECIPE), *sft_overrides(run_dir)], nproc=2)
    ref = losses(run_dir)
    assert len(ref) == SFT_STEPS
    return ref


def submit(recipe: Path, *args: str) -> str:
    """`redone slurm submit RECIPE ARGS`; returns the job id."""
    proc = subprocess.run(
        cli_command(["slurm", "submit", str(recipe), *args]),
        cwd=REPO,
        env=slurm_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"submit failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    match = re.search(r"submitted job (\d+)", proc.stdout)
    assert match, proc.stdout
    return match.group(1)


def job_fields(job_id: str) -> dict[str, str]:
    """JobState, Restarts, ExitCode ... of a job (from `scontrol show job -o`)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], env=slurm_env(), capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def job_logs(run_dir: Path) -> str:
    """Every log of the run's jobs (job log, rank logs), for failure messages."""
    logs = sorted((run_dir / "slurm").rglob("*.log"))
    return "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs)


def wait_until(what: str, ready: Callable[[], bool], timeout_s: float, run_dir: Path) -> None:
    """Poll `ready`; on timeout fail with the tail of the run's job logs."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{job_logs(run_dir)}")
        time.sleep(0.3)


def wait_for_end(job_id: str, timeout_s: float, run_dir: Path) -> dict[str, str]:
    ended = lambda: job_fields(job_id)["JobState"] in FINAL_STATES  # noqa: E731
    wait_until(f"job {job_id} to end", ended, timeout_s, run_dir)
    return job_fields(job_id)


def wait_for_steps(job_id: str, run_dir: Path, steps: int, timeout_s: float) -> None:
    """Until the run has logged `steps` training steps; fails at once if the job ends first."""

    def reached() -> bool:
        if logged_steps(run_dir) >= steps:
            return True
        state = job_fields(job_id)["JobState"]
        if state in FINAL_STATES:
            pytest.fail(f"job {job_id} ended ({state}) before step {steps}\n{job_logs(run_dir)}")
        return False

    wait_until(f"step {steps} of job {job_id}", reached, timeout_s, run_dir)


@pytest.fixture
def cancel_on_exit() -> Iterator[list[str]]:
    """Job ids appended here are cancelled after the test, whatever happened."""
    jobs: list[str] = []
    yield jobs
    if jobs:
        subprocess.run(["scancel", *jobs], env=slurm_env(), capture_output=True)


def job_log(run_dir: Path, job_id: str) -> str:
    logs = list((run_dir / "slurm").glob(f"*-{job_id}.log"))
    assert len(logs) == 1, f"expected one job log for {job_id} in {run_dir / 'slurm'}: {logs}"
    return logs[0].read_text()


def rank_logs(run_dir: Path, job_id: str) -> dict[str, str]:
    """File name -> text of the per-rank (srun) or per-node (torchrun) logs of a job."""
    return {p.name: p.read_text() for p in (run_dir / "slurm").glob(f"*-{job_id}/*.log")}


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def stop_mid_run_and_resume(run_dir: Path, job: str, stop: list[str], ref: list[float]) -> str:
    """Run `stop` once the job has logged 2 steps; require a requeue and the uninterrupted losses."""
    wait_for_steps(job, run_dir, 2, SFT_JOB_TIMEOUT_S)
    subprocess.run(stop, env=slurm_env(), check=True)
    end = wait_for_end(job, SFT_JOB_TIMEOUT_S, run_dir)
    log = job_log(run_dir, job)
    assert end["JobState"] == "COMPLETED", job_logs(run_dir)
    assert end["Restarts"] == "1", job_logs(run_dir)
    assert f"job {job} restart 0 (SLURM_RESTART_COUNT)" in log
    assert f"job {job} restart 1 (SLURM_RESTART_COUNT)" in log
    rank0 = "".join(rank_logs(run_dir, job).values())
    resumed = [int(s) for s in re.findall(r"resume from \S+/step_(\d+)", rank0)]
    assert len(resumed) == 1 and 2 <= resumed[0] < SFT_STEPS, f"resumed at {resumed}\n{job_logs(run_dir)}"
    assert losses(run_dir) == ref
    return log


def rank_process(job: str, rank: int, command: str) -> psutil.Process | None:
    """The trainer process (`redone COMMAND ...`, not its bash wrapper) of `rank` in `job`."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            env = proc.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        ours = env.get("SLURM_JOB_ID") == job and env.get("SLURM_PROCID") == str(rank)
        if ours and proc.info["name"] != "bash" and command in (proc.info["cmdline"] or []):
            return proc
    return None
