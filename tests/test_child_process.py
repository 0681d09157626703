"""ChildRunner: stop signals reach the running child; a stop (signal or launcher mark) ends the run."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemo_recipes.pipeline.child_process import STOPPED, STOPPED_MARK_ENV, ChildRunner


@pytest.fixture
def runner() -> Iterator[ChildRunner]:
    """A ChildRunner; pytest's own signal handlers come back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield ChildRunner()
    for s, handler in saved.items():
        signal.signal(s, handler)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_stop_signal_is_passed_on_and_nothing_starts_after_it(runner: ChildRunner, tmp_path: Path) -> None:
    ready, ran = tmp_path / "ready", tmp_path / "ran"
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )

    def stop_when_ready() -> None:
        while not ready.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_ready, daemon=True).start()
    assert runner.run(python(child), tmp_path / "log.txt") == 3  # the child's own exit
    assert runner.stopped == ["signal SIGTERM"]
    assert runner.run(python(f"open({str(ran)!r}, 'w')"), tmp_path / "log.txt") == STOPPED
    assert not ran.exists()


def test_a_launcher_stop_mark_is_a_stop_not_a_finish(
    runner: ChildRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under srun the rank wrapper turns a trainer's exit 3 into 0 plus the mark file."""
    mark = tmp_path / "stopped-restart-0"
    monkeypatch.setenv(STOPPED_MARK_ENV, str(mark))
    assert runner.run(python("pass"), tmp_path / "log.txt") == 0 and not runner.stopped
    assert runner.run(python(f"open({str(mark)!r}, 'w')"), tmp_path / "log.txt") == 0
    assert runner.stopped == [f"the launcher's stop mark {mark}"]
    log = (tmp_path / "log.txt").read_text()
    assert log.count(f"$ {sys.executable} -c") == 2  # each command, as run
