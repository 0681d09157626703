"""The value every reward and metric returns (torch-free, the bottom of the tasks package)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RewardResult:
    """A score in [0, 1] plus what it was computed from.

    ``details`` is for people and logs (the extracted answer, per-part scores, errors), never for
    control flow. ``equivalent`` says whether the response counts as equivalent to the reference
    (score >= the task's ``equivalent_at``); the registry sets it, a bare reward leaves it False.
    """

    score: float
    details: dict[str, Any] = field(default_factory=dict)
    equivalent: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.score, float | int) or math.isnan(self.score):
            raise ValueError(f"reward score must be a number, got {self.score!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"reward score must lie in [0, 1], got {self.score!r}")
        object.__setattr__(self, "score", float(self.score))


def zero(reason: str, **details: Any) -> RewardResult:
    """A 0.0 result that says why (empty output, nothing extracted, ...)."""
    return RewardResult(0.0, {"reason": reason, **details})
