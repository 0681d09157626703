"""Stage 2's data decisions, pure: which failing-task records, how many rehearsal items, which answer wins.

Targeted records come only from the tasks the diagnosis selected, stratified: a cap is split evenly
over capabilities, then evenly over each capability's tasks (a task with fewer records gives all it
has; the shortfall is counted, not refilled). Records flagged in `meta` (rare but important cases)
are repeated. Rehearsal gets `ratio` of the final set.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nemo_recipes.tasks import TaskRecord, TaskTable


@dataclass
class SelectionStats:
    per_task: dict[str, int] = field(default_factory=dict)
    per_capability: dict[str, int] = field(default_factory=dict)
    shortfall: dict[str, int] = field(default_factory=dict)
    """Tasks that had fewer records than their share: how many were missing."""
    upweighted: int = 0
    """Extra copies added by `upweight`."""


def _even_split(total: int, names: Sequence[str]) -> dict[str, int]:
    base, extra = divmod(total, len(names))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(sorted(names))}


def select_targeted(
    records: Sequence[TaskRecord],
    selected_tasks: Sequence[str],
    table: TaskTable,
    max_records: int | None,
    upweight: Mapping[str, int],
    seed: int,
) -> tuple[list[TaskRecord], SelectionStats]:
    """The selected tasks' records, stratified by capability under `max_records`, rare ones repeated."""
    by_task: dict[str, list[TaskRecord]] = defaultdict(list)
    for record in records:
        if record.task in selected_tasks:
            by_task[record.task].append(record)
    rng = random.Random(seed)
    stats = SelectionStats()
    chosen: list[TaskRecord] = []
    tasks_of: dict[str, list[str]] = defaultdict(list)
    for task in by_task:
        tasks_of[table.spec(task).capability].append(task)
    caps = _even_split(max_records, list(tasks_of)) if max_records is not None and tasks_of else {}
    for capability in sorted(tasks_of):
        quotas = _even_split(caps[capability], tasks_of[capability]) if caps else {}
        for task in sorted(tasks_of[capability]):
            pool = by_task[task]
            take = pool if not quotas else rng.sample(pool, min(quotas[task], len(pool)))
            if quotas and quotas[task] > len(pool):
                stats.shortfall[task] = quotas[task] - len(pool)
            stats.per_task[task] = len(take)
            stats.per_capability[capability] = stats.per_capability.get(capability, 0) + len(take)
            chosen += take
    out = []
    for record in chosen:
        copies = max([upweight[k] for k in upweight if (record.meta or {}).get(k)], default=1)
        stats.upweighted += copies - 1
        out += [record] * copies
    return out, stats


def rehearsal_count(targeted: int, ratio: float) -> int:
    """Rehearsal items so that they make `ratio` of targeted + rehearsal."""
    return round(targeted * ratio / (1.0 - ratio))


def best_answer(scores: Sequence[float]) -> int:
    """Index of the best-scoring answer (the first among equals)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def rehearsal_target(texts: Sequence[str], scores: Sequence[float], min_score: float) -> int | str:
    """The index of the answer a rehearsal prompt keeps as its SFT target (the best, the first among
    equals), or why it keeps none: "below_min_judge_score", or "blank_best_answer" (an empty answer is
    no target, whatever it scored)."""
    best = best_answer(scores)
    if scores[best] < min_score:
        return "below_min_judge_score"
    return best if texts[best].strip() else "blank_best_answer"
