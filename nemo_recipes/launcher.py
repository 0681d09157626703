"""Where this process sits in a job (from torchrun's or srun's environment), and a local relaunch of a
`redone` command under torchrun. Torch-free: the CLI imports it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launched_world_size() -> int | None:
    """The job's world size when torchrun or srun started this process (see `read_launch_env`), else None."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["WORLD_SIZE"])
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return int(env["SLURM_NTASKS"])
    return None


def relaunch_under_torchrun(argv: list[str], nproc: int) -> int:
    """Run `redone ARGV` (minus `--nproc N`) as `nproc` local ranks; returns torchrun's exit code."""
    argv = list(argv)
    if "--nproc" in argv:
        i = argv.index("--nproc")
        del argv[i : i + 2]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    # An explicit loopback rendezvous: `--standalone` spent ~40 s in rendezvous on a 2-core machine.
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        f"--nproc-per-node={nproc}",
        "-m",
        "nemo_recipes.cli",
        *argv,
    ]
    return subprocess.call(cmd, env=env)


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in the job, read from the launcher's environment."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    launcher: str  # "torchrun" | "srun" | "single"


def _first_slurm_host() -> str:
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST", "")
    if shutil.which("scontrol") and nodelist:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        )
        return out.stdout.split()[0]
    raise RuntimeError("srun launch: MASTER_ADDR is not set and scontrol cannot expand the node list")


def read_launch_env() -> LaunchEnv:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; a bare `srun` sets SLURM_PROCID/NTASKS/LOCALID."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return LaunchEnv(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", 29500)),
            launcher="torchrun",
        )
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        job = int(env.get("SLURM_JOB_ID", 0))
        return LaunchEnv(
            rank=int(env["SLURM_PROCID"]),
            world_size=int(env["SLURM_NTASKS"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)),
            master_addr=env.get("MASTER_ADDR") or _first_slurm_host(),
            master_port=int(env.get("MASTER_PORT", 20000 + job % 20000)),
            launcher="srun",
        )
    return LaunchEnv(0, 1, 0, "127.0.0.1", free_port(), "single")
