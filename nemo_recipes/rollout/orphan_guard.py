"""Engine processes die with their host: a watcher kills them when the host process is gone.

The engine is spawned with the stop signals blocked (so a job-wide SIGTERM cannot kill it under the
trainer), and vLLM's engine core does not notice its front end dying: a host killed by SIGKILL, or by a
signal it does not handle, would leave the engine running for good. `guard` starts a small watcher
(this module run as a script, stop signals ignored) that waits for the host to exit and then kills the
engine processes and their children; it exits by itself once they are gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

POLL_SECONDS = 0.5


def guard(pids: list[int]) -> subprocess.Popen:
    """Watch this process on behalf of the processes `pids` (and their children).

    Call it with the stop signals blocked: the mask survives exec, so a signal sent to the whole job
    before the watcher ignores it stays pending and is then discarded.
    """
    return subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid()), *map(str, pids)], stdin=subprocess.DEVNULL
    )


def _ignore_stop_signals() -> None:
    for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)


def kill_tree(process: psutil.Process | int) -> None:
    """SIGKILL a process (or pid) and all its descendants."""
    try:
        process = psutil.Process(process) if isinstance(process, int) else process
        victims = [*process.children(recursive=True), process]
    except psutil.NoSuchProcess:
        return
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (an exited child its parent has not reaped yet)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def watch(host_pid: int, pids: list[int]) -> None:
    """Until the guarded processes are gone: when the host exits, kill them."""
    _ignore_stop_signals()
    guarded = []
    for pid in pids:
        try:
            guarded.append(psutil.Process(pid))  # the identity (pid + start time) is fixed now
        except psutil.NoSuchProcess:
            continue
    try:
        host = psutil.Process(host_pid)
    except psutil.NoSuchProcess:
        host = None
    while any(_alive(p) for p in guarded):
        if host is None or not _alive(host):
            for p in guarded:
                kill_tree(p)
            return
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    watch(int(sys.argv[1]), [int(a) for a in sys.argv[2:]])
