"""The CPU image, built for real and run as a job: `containers/build.sh --variant cpu` (podman, on a base
made with mmdebstrap), then the smallest SFT run submitted with `redone slurm submit` on the local
two-node Slurm, every rank a `podman run` of the image (containers/podman_run.sh, standing in for
pyxis). The job's losses equal the same run under torchrun outside the container, also when it is
warned before its time limit: podman passes the stop signal on, the trainer checkpoints inside the
container, the job requeues itself and resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, losses
from tests.slurm.conftest import (
    SFT_RECIPE,
    job_log,
    job_logs,
    rank_logs,
    sft_overrides,
    stop_mid_run_and_resume,
    submit,
    wait_for_end,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]

# runc, not crun: crun refuses a host with a mixed cgroup setup.
PACKAGES = ("podman", "runc", "mmdebstrap")
IMAGE = "localhost/redone:test-cpu"
BUILD_TIMEOUT_S = 2400


def ensure_container_tools() -> None:
    """Install podman and mmdebstrap from Debian's packages if missing; skip where that is impossible."""
    if all(shutil.which(p) for p in PACKAGES):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"CPU IMAGE TEST SKIPPED: needs root and apt-get to install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        subprocess.run(cmd, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def cpu_image() -> str:
    """The image built from the working tree (podman's layer cache makes a rebuild quick)."""
    ensure_container_tools()
    start = time.monotonic()
    proc = subprocess.run(
        [str(REPO / "containers" / "build.sh"), "--variant", "cpu", "--host-pip", "--tag", IMAGE],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    print(f"CPU image {IMAGE} built in {time.monotonic() - start:.0f} s")
    return IMAGE


def podman_bin_dir(directory: Path, image: str, run_dir: Path) -> Path:
    """A --bin-dir whose `redone` runs the image's redone in the job's directory (podman_run.sh)."""
    directory.mkdir()
    shim = directory / "redone"
    shim.write_text(
        "#!/bin/bash\n"
        f'exec {REPO}/containers/podman_run.sh --volume {run_dir}:{run_dir} {image} redone "$@"\n'
    )
    shim.chmod(0o755)
    return directory


def container_job(image: str, tmp_path: Path, jobs: list[str], *flags: str) -> tuple[str, Path]:
    """Submit the smallest SFT run on 2 nodes x 1 rank in `image`; returns the job id and run dir."""
    run_dir = tmp_path / "run"
    bin_dir = podman_bin_dir(tmp_path / "bin", image, run_dir)
    job = submit(SFT_RECIPE, *sft_overrides(run_dir), "--nodes", "2", "--bin-dir", str(bin_dir), *flags)
    jobs.append(job)
    return job, run_dir


def test_two_node_job_in_the_cpu_image_matches_torchrun(
    cpu_image: str, torchrun_losses: list[float], tmp_path: Path, cancel_on_exit: list[str]
) -> None:
    job, run_dir = container_job(cpu_image, tmp_path, cancel_on_exit)
    end = wait_for_end(job, 600, run_dir)
    assert end["JobState"] == "COMPLETED", job_logs(run_dir)
    assert job_log(run_dir, job).rstrip().endswith("finished")
    # the ranks ran the image's installation, not this checkout's, and know its commit
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["argv"][0] == "/opt/venv/bin/redone"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    assert provenance["git_sha"].removesuffix("-dirty") == head.strip()
    assert "resume from scratch" in rank_logs(run_dir, job)["rank-0.log"]
    assert losses(run_dir) == torchrun_losses


def test_time_limit_warning_in_the_cpu_image_checkpoints_requeues_and_resumes(
    cpu_image: str, torchrun_losses: list[float], tmp_path: Path, cancel_on_exit: list[str]
) -> None:
    job, run_dir = container_job(cpu_image, tmp_path, cancel_on_exit, "--time", "30:00")
    stop = ["scancel", "--batch", "--signal=USR1", job]
    log = stop_mid_run_and_resume(run_dir, job, stop, torchrun_losses)
    assert "got SIGUSR1" in log and "requeueing, the run resumes as restart 1" in log
