"""Local multi-process launch: re-run a `redone` command under torchrun (torch-free, imported by the CLI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
