"""Balanced prompt sampling across tasks for the RL stage (torch-free).

Draw `i` first picks a task with probability proportional to its weight, then the next record of
that task in a seeded per-task permutation (a new permutation each pass over the task). Long-tail
tasks thus stay visible whatever their record counts. Every draw is a pure function of the seed and
its position, so a resumed run needs only the position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

BLOCK = 4096
"""Task choices are drawn in blocks of this many positions, each from its own seeded generator."""


class TaskSampler:
    """Record indices for draw positions [start, start + count)."""

    def __init__(self, record_tasks: Sequence[str], weights: Mapping[str, float], seed: int) -> None:
        self.tasks = sorted(set(record_tasks))
        if not self.tasks:
            raise ValueError("no records to sample from")
        self._members = [
            np.array([i for i, t in enumerate(record_tasks) if t == task]) for task in self.tasks
        ]
        w = np.array([float(weights.get(task, 1.0)) for task in self.tasks])
        self._probs = w / w.sum()
        self._seed = seed
        self._cursor, self._counts = 0, np.zeros(len(self.tasks), dtype=np.int64)
        self._perms: dict[int, tuple[int, np.ndarray]] = {}  # task -> (epoch, its permutation)

    def draw(self, start: int, count: int) -> list[int]:
        if start < self._cursor:  # rewind (rare: a resumed run reads from the start once)
            self._cursor, self._counts = 0, np.zeros(len(self.tasks), dtype=np.int64)
        self._advance_to(start)
        out = []
        for task in self._task_choices(start, count):
            k = int(self._counts[task])
            members = self._members[task]
            epoch, offset = divmod(k, len(members))
            out.append(int(members[self._permutation(task, epoch)[offset]]))
            self._counts[task] += 1
        self._cursor = start + count
        return out

    def _advance_to(self, position: int) -> None:
        """Per-task draw counts of every position before `position`."""
        while self._cursor < position:
            n = min(position, (self._cursor // BLOCK + 1) * BLOCK) - self._cursor
            chosen = self._task_choices(self._cursor, n)
            self._counts += np.bincount(chosen, minlength=len(self.tasks))
            self._cursor += n

    def _task_choices(self, start: int, count: int) -> np.ndarray:
        out = []
        for block in range(start // BLOCK, (start + count - 1) // BLOCK + 1 if count else start // BLOCK):
            rng = np.random.default_rng((self._seed, block))
            choices = rng.choice(len(self.tasks), size=BLOCK, p=self._probs)
            lo, hi = max(start, block * BLOCK), min(start + count, (block + 1) * BLOCK)
            out.append(choices[lo - block * BLOCK : hi - block * BLOCK])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _permutation(self, task: int, epoch: int) -> np.ndarray:
        cached = self._perms.get(task)
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng((self._seed, 1 + task, epoch))
            cached = self._perms[task] = (epoch, rng.permutation(len(self._members[task])))
        return cached[1]
