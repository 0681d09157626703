"""Rank, world size and rendezvous from torchrun's or Slurm srun's environment."""

from __future__ import annotations

import pytest

from nemo_recipes.launcher import read_launch_env

LAUNCH_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_LOCALID",
    "SLURM_JOB_ID",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)


def test_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        "RANK": "3",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "n1",
        "MASTER_PORT": "2345",
    }.items():
        monkeypatch.setenv(k, v)
    env = read_launch_env()
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.master_port, env.launcher) == (
        3,
        8,
        1,
        "n1",
        2345,
        "torchrun",
    )


def test_srun_with_master_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "16",
        "SLURM_LOCALID": "5",
        "SLURM_JOB_ID": "1234",
        "MASTER_ADDR": "gpu-node-07",
    }.items():
        monkeypatch.setenv(k, v)
    env = read_launch_env()
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.launcher) == (
        5,
        16,
        5,
        "gpu-node-07",
        "srun",
    )
    assert env.master_port == 20000 + 1234  # the same on every rank of the job, derived from the job id


def test_single_process_without_a_launcher() -> None:
    env = read_launch_env()
    assert (env.rank, env.world_size, env.launcher) == (0, 1, "single")
