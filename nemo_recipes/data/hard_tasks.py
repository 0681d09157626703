"""Stage 3's task weights: stage 1's sampling weights tilted toward the hard tasks. Torch-free.

A task is hard when the diagnosis selected it, or when stage 1's rollouts rarely passed it. Its weight
is `base x (diagnosed_task_weight if selected) x (1 + pass_rate_boost x (1 - pass rate))`, the pass
rate being the mean of `task/<name>/pass_rate` over stage 1's last logged steps. Each weight comes
with the numbers behind it, for the stage's `task_weights.json`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nemo_recipes.config.pipeline import RefineConfig


@dataclass(frozen=True)
class TaskWeight:
    weight: float
    base_weight: float
    pass_rate: float | None
    """Stage 1's late pass rate (None: the task was not drawn in the window)."""
    diagnosed: bool


def late_pass_rates(metrics_file: Path, window_steps: int, stage: str = "grpo") -> dict[str, float]:
    """Per task, the mean pass rate over the last `window_steps` logged steps of a metrics.jsonl."""
    rows = [json.loads(line) for line in metrics_file.read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if r.get("stage") == stage]
    if not rows:
        raise ValueError(f"{metrics_file}: no `{stage}` steps logged")
    last = max(r["step"] for r in rows)
    rates: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["step"] <= last - window_steps:
            continue
        for key, value in row.items():
            if key.startswith("task/") and key.endswith("/pass_rate"):
                rates[key[len("task/") : -len("/pass_rate")]].append(value)
    return {task: sum(v) / len(v) for task, v in sorted(rates.items())}


def hard_task_weights(
    tasks: Sequence[str],
    base_weights: Mapping[str, float],
    diagnosed: Sequence[str],
    pass_rates: Mapping[str, float],
    cfg: RefineConfig,
) -> dict[str, TaskWeight]:
    """Every task's stage-3 sampling weight and why."""
    out = {}
    for task in tasks:
        base = base_weights[task]
        weight = base * (cfg.diagnosed_task_weight if task in diagnosed else 1.0)
        rate = pass_rates.get(task)
        if rate is not None:
            weight *= 1.0 + cfg.pass_rate_boost * (1.0 - rate)
        out[task] = TaskWeight(weight, base, rate, task in diagnosed)
    return out
