"""The two kinds of step and what every step config shares.

* A **document step** looks at one document at a time (normalise, language ID, PII, filters,
  decontamination, formatting): it may rewrite ``doc.text`` / ``doc.meta`` and returns ``None`` to keep
  the document or a short reason to drop it. Shards run it in parallel.
* A **global step** needs every shard (dedup, mixing): each shard computes one signature row per
  document in parallel (``signatures``), then one process sees all of them and says which rows to drop
  and why (``decide``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from data_prep.documents import Doc
from data_prep.report import StepStats
from nemo_recipes.config_loader import StrictModel


class StepConfig(StrictModel):
    """Fields every step has; each step adds ``kind: Literal[...]`` and its own settings."""

    name: str | None = None
    """Name in the report (default: the kind; made unique with a suffix when a kind repeats)."""


@runtime_checkable
class DocStep(Protocol):
    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        """Keep (None) or drop (a reason) one document; may rewrite it in place."""
        ...


@runtime_checkable
class GlobalStep(Protocol):
    def signatures(self, docs: list[Doc]) -> np.ndarray:
        """One row per document of a shard (any numeric dtype, 2-D)."""
        ...

    def decide(self, shard_signatures: list[np.ndarray], stats: StepStats) -> list[dict[int, str]]:
        """For every shard, the rows to drop and why; shards and rows are in input order."""
        ...
