"""One child command at a time, with stop signals passed on to it. Torch-free.

`redone run` and `redone demo` run every stage as a child process. A SIGTERM / SIGUSR1 sent to them
(a terminal, a batch script's trap) is forwarded to the child, the stage's own process (torchrun passes
it on to its ranks): the stage checkpoints at its next safe point and exits, and the caller sees
`stopped` and exits 3 instead of starting the next stage. The stage's helper processes (vLLM, the
checkpoint writer's workers) are left alone: the stage stops them itself.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

STOPPED = 3
"""Exit code of a command stopped by a signal after saving its progress."""


class ChildRunner:
    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        """Stream the child's output to the console instead of its log file."""
        self.stopped: list[int] = []
        self._child: subprocess.Popen | None = None
        for s in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(s, self._forward)

    def run(self, cmd: list[str], log_path: Path) -> int:
        """Run `cmd` to its end (its output appended to `log_path`); returns its exit code."""
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            out = None if self.verbose else log
            self._child = subprocess.Popen(
                cmd, stdout=out, stderr=None if self.verbose else subprocess.STDOUT
            )
            try:
                return self._child.wait()
            finally:
                self._child = None

    def _forward(self, signum: int, _frame) -> None:
        self.stopped.append(signum)
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signum)
