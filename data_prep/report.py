"""Per-step statistics (documents in, kept, dropped and why, counters, time) and the run report."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_ERRORS_IN_REPORT = 200


@dataclass
class StepStats:
    """What one step did to the documents it saw (summed over shards)."""

    name: str
    docs_in: int = 0
    docs_kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> documents
    counters: Counter[str] = field(default_factory=Counter)  # e.g. "pii.phone" -> replacements
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # "file:line: field: message" (first ones)
    error_count: int = 0

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count

    def add_error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_IN_REPORT:
            self.errors.append(message)

    @property
    def docs_dropped(self) -> int:
        return sum(self.dropped.values())

    def merge(self, other: StepStats) -> None:
        self.docs_in += other.docs_in
        self.docs_kept += other.docs_kept
        self.dropped.update(other.dropped)
        self.counters.update(other.counters)
        self.seconds += other.seconds
        self.error_count += other.error_count
        self.errors.extend(other.errors[: MAX_ERRORS_IN_REPORT - len(self.errors)])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "docs_in": self.docs_in,
            "docs_kept": self.docs_kept,
            "dropped": dict(sorted(self.dropped.items())),
            "counters": dict(sorted(self.counters.items())),
            "seconds": round(self.seconds, 4),
            "docs_per_s": round(self.docs_in / self.seconds, 1) if self.seconds > 0 else None,
            "error_count": self.error_count,
            "errors": self.errors,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepStats:
        stats = cls(name=data["name"], docs_in=data["docs_in"], docs_kept=data["docs_kept"])
        stats.dropped.update(data["dropped"])
        stats.counters.update(data["counters"])
        stats.seconds = data["seconds"]
        stats.error_count = data["error_count"]
        stats.errors = list(data["errors"])
        return stats


def save_stats(path: Path, stats: list[StepStats]) -> None:
    path.write_text(json.dumps([s.to_json() for s in stats], ensure_ascii=False), encoding="utf-8")


def load_stats(path: Path) -> list[StepStats]:
    return [StepStats.from_json(d) for d in json.loads(path.read_text(encoding="utf-8"))]


def merge_by_name(parts: list[list[StepStats]], order: list[str]) -> list[StepStats]:
    """Sum the shards' stats per step, in pipeline order."""
    total = {name: StepStats(name) for name in order}
    for shard in parts:
        for stats in shard:
            total[stats.name].merge(stats)
    return [total[name] for name in order]


def format_report(stats: list[StepStats]) -> str:
    """A plain-text table: one line per step, then the first errors."""
    lines = [f"{'step':<28}{'in':>10}{'kept':>10}{'dropped':>10}{'docs/s':>12}  why dropped"]
    for s in stats:
        rate = f"{s.docs_in / s.seconds:,.0f}" if s.seconds > 0 else "-"
        why = ", ".join(f"{k}={v}" for k, v in sorted(s.dropped.items()))
        lines.append(f"{s.name:<28}{s.docs_in:>10}{s.docs_kept:>10}{s.docs_dropped:>10}{rate:>12}  {why}")
    for s in stats:
        if s.error_count:
            lines.append(f"{s.name}: {s.error_count} malformed line(s), first: " + "; ".join(s.errors[:5]))
    return "\n".join(lines)
