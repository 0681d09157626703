"""What a torchrun test worker reports to its test: the worst of each measured difference over its ranks."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist


def write_worst(diffs: dict[str, float], out: Path) -> None:
    """Every rank's `diffs`, maximised over the ranks, written by rank 0 to `out` as JSON (collective)."""
    worst = torch.tensor([diffs[k] for k in sorted(diffs)], dtype=torch.float64)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    if dist.get_rank() == 0:
        out.write_text(json.dumps(dict(zip(sorted(diffs), worst.tolist(), strict=True))))
