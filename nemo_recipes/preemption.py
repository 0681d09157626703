"""Stop at a safe point on SIGTERM / SIGUSR1 (Slurm time limits, preemption, requeue).

The handler only records the signal; the stage loop asks `should_stop()` between steps, which agrees
across ranks (one rank signalled means all stop), saves a checkpoint, and exits.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

_received: list[int] = []


STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold the stop signals back in this thread, and keep them from processes started meanwhile.

    Slurm signals every process of a job step. A helper process started here (vLLM's engine, the
    checkpoint writer's workers) inherits the blocked mask, even across exec, so the signal cannot kill
    it half-way; this process gets the signal when the block ends and its handler records it.
    """
    from multiprocessing import resource_tracker

    # The resource tracker unblocks SIGTERM in the thread that starts it: start it first.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def install_handlers(signals: tuple[int, ...] = STOP_SIGNALS) -> None:
    """Record stop signals from now on (torch-free: the CLI installs them before the heavy imports)."""

    def handler(signum, _frame):
        _received.append(signum)

    for s in signals:
        signal.signal(s, handler)


class Stopped(Exception):
    """A single-process command stopped at a safe point by a stop signal (its work so far is saved)."""


def stop_requested() -> bool:
    """This process received a stop signal (local: for single-process commands such as eval)."""
    return bool(_received)


def should_stop() -> bool:
    """Collective: True on every rank if any rank received a stop signal."""
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if _received else 0.0])
    if torch.cuda.is_available():
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def received_signal() -> int | None:
    return _received[0] if _received else None
