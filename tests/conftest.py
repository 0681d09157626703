"""Shared fixtures: run the `redone` CLI in subprocesses (torchrun for several ranks), read metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    env.pop("RANK", None)
    return env


def cli_command(args: list[str], nproc: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "nemo_recipes.cli", *args]
    return cmd + (["--nproc", str(nproc)] if nproc > 1 else [])


def run_cli(
    args: list[str], nproc: int = 1, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess:
    """Run `redone ARGS` and fail the test with its output if it fails (when `check`)."""
    proc = subprocess.run(
        cli_command(args, nproc), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"redone {' '.join(args)} (nproc={nproc}) exited {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def run_torchrun(args: list[str], nproc: int = 2, timeout: int = 300) -> None:
    """`python -m torch.distributed.run ARGS` on `nproc` local ranks (a free port of its own: torchrun's
    --standalone spends ~40 s on rendezvous here); fail the test with its output if it fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    cmd += ["--master-addr", "127.0.0.1", "--master-port", str(port), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"torchrun {' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )


def start_cli(args: list[str], nproc: int = 1) -> subprocess.Popen:
    """`redone ARGS` in the background, in a session of its own, output discarded."""
    return subprocess.Popen(
        cli_command(args, nproc),
        cwd=REPO,
        env=cli_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until(proc: subprocess.Popen, done: Callable[[], bool], what: str, timeout: float = 600) -> None:
    """Poll `done()` while `proc` runs; fail if it exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            out = proc.stdout.read().decode()[-3000:] if proc.stdout else ""
            pytest.fail(f"the run exited ({proc.returncode}) before {what}\n{out}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def signal_tree(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send `sig` to `proc` and every process below it (torchrun workers, vLLM engines), as Slurm does
    to a job step; with SIGKILL also wait for them all."""
    tree = psutil.Process(proc.pid)
    victims = [tree, *tree.children(recursive=True)]
    for p in victims:
        p.send_signal(sig)
    if sig == signal.SIGKILL:
        psutil.wait_procs(victims, timeout=30)
        proc.wait()


def read_metrics(run_dir: Path, stage: str = "sft") -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["stage"] == stage]


def losses(run_dir: Path, stage: str = "sft") -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir, stage)]


@pytest.fixture(scope="session")
def init_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random tiny-qwen3 saved once (world 1): every layout starts from these weights."""
    out = tmp_path_factory.mktemp("init") / "tiny-qwen3"
    run_cli(["init-model", "--out", str(out)])
    return out


@pytest.fixture(scope="session")
def small_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline tests' eval set: three held-out records per task (the suites stay whole, the
    evaluations short)."""
    out = tmp_path_factory.mktemp("eval") / "test_small.jsonl"
    seen: dict[str, int] = {}
    lines = []
    test_sets = ("sns_demo", "general")
    for line in [
        x
        for d in test_sets
        for x in (REPO / f"nemo_recipes/assets/data/{d}/test.jsonl").read_text().splitlines()
    ]:
        task = json.loads(line)["task"]
        seen[task] = seen.get(task, 0) + 1
        if seen[task] <= 3:
            lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out
