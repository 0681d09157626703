"""The engine's watcher: engine processes die with their host, and the watcher leaves when they do."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from tests.conftest import REPO, cli_env

HOST = """
import subprocess, sys, time
from nemo_recipes.rollout import orphan_guard
engine = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(float(sys.argv[1]))"
child = subprocess.Popen([sys.executable, "-c", "import sys; " + engine, sys.argv[1]])
watcher = orphan_guard.guard([child.pid])
print(child.pid, watcher.pid, flush=True)
time.sleep(600)
"""


def start_host(engine_seconds: float) -> tuple[subprocess.Popen, psutil.Process, psutil.Process]:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST, str(engine_seconds)], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE
    )
    engine_pid, watcher_pid = map(int, host.stdout.readline().split())
    return host, psutil.Process(engine_pid), psutil.Process(watcher_pid)


def wait_ended(processes: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """The processes still running after `timeout` s (an exited, unreaped child counts as ended)."""

    def running(p: psutil.Process) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while any(map(running, processes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in processes if running(p)]


def test_a_killed_host_takes_its_engine_along() -> None:
    host, engine, watcher = start_host(600)
    time.sleep(1.0)
    engine.send_signal(15)  # the engine ignores stop signals, as a real one (blocked) does
    watcher.send_signal(15)  # ... and so does the watcher
    time.sleep(1.0)
    assert engine.is_running() and watcher.is_running()
    host.kill()
    host.wait()
    alive = wait_ended([engine, watcher])
    assert not alive, f"still running after the host died: {alive}"


def test_the_watcher_leaves_when_the_engine_ends() -> None:
    host, engine, watcher = start_host(1.0)
    try:
        assert not wait_ended([engine, watcher])
    finally:
        host.kill()
        host.wait()
