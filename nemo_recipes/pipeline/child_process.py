"""One child command at a time, with stop signals passed on to it. Torch-free.

`redone run` and `redone demo` run every stage as a child process. A SIGTERM / SIGUSR1 sent to them
(a terminal, a batch script's trap) is forwarded to the child, the stage's own process (torchrun and
srun pass it on to their ranks): the stage checkpoints at its next safe point and exits, and the caller
sees `stopped` and exits 3 instead of starting the next stage. The stage's helper processes (vLLM, the
checkpoint writer's workers) are left alone: the stage stops them itself.

A launcher that turns a rank's exit 3 into 0 (so that srun's --kill-on-bad-exit leaves the other ranks
to finish their checkpoint, as the Slurm job script does) reports the stop by creating the file named
by $REDONE_STOPPED_MARK: a child that exits 0 with that file present was stopped, not finished.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

STOPPED = 3
"""Exit code of a command stopped by a signal after saving its progress."""
STOPPED_MARK_ENV = "REDONE_STOPPED_MARK"


class ChildRunner:
    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        """Stream the child's output to the console instead of its log file."""
        self.stopped: list[str] = []
        """Why the run stopped (a signal, the launcher's mark); empty while it goes on."""
        self._child: subprocess.Popen | None = None
        for s in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(s, self._forward)

    def run(self, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
        """Run `cmd` to its end (its output appended to `log_path`; `env`: its environment, default
        this process's); returns its exit code, or STOPPED without starting it when a stop came first."""
        if self.stopped:
            return STOPPED
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            out = None if self.verbose else log
            self._child = subprocess.Popen(
                cmd, stdout=out, stderr=None if self.verbose else subprocess.STDOUT, env=env
            )
            try:
                code = self._child.wait()
            finally:
                self._child = None
        mark = os.environ.get(STOPPED_MARK_ENV)
        if code == 0 and mark and Path(mark).exists():
            self.stopped.append(f"the launcher's stop mark {mark}")
        return code

    def _forward(self, signum: int, _frame) -> None:
        self.stopped.append(f"signal {signal.Signals(signum).name}")
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signum)
