"""Stop at a safe point on SIGTERM / SIGUSR1 (Slurm time limits, preemption, requeue).

The handler only records the signal; the stage loop asks `should_stop()` between steps, which agrees
across ranks (one rank signalled means all stop), saves a checkpoint, and exits.
"""

from __future__ import annotations

import signal

_received: list[int] = []


def install_handlers(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)) -> None:
    """Record stop signals from now on (torch-free: the CLI installs them before the heavy imports)."""

    def handler(signum, _frame):
        _received.append(signum)

    for s in signals:
        signal.signal(s, handler)


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
