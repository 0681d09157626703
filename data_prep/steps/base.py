"""The kinds of step and what every step config shares.

* A **document step** looks at one document at a time (normalise, language ID, PII, filters,
  decontamination, formatting): it may rewrite ``doc.text`` / ``doc.meta`` and returns ``None`` to keep
  the document or a short reason to drop it. Shards run it in parallel.
* A **global step** needs every shard (dedup, mixing, resampling): each shard computes one signature
  row per document in parallel (``signatures``), then one process sees all of them and says which rows
  to drop and why (``decide``).
* A **fitted step** is a document step that first learns from files of its own (a quality classifier
  trained on examples): ``fit`` runs once per run, on rank 0, before any shard, and every process
  reads what it saved with ``load``.
* A **shard writer** turns each shard's final documents into files of another format (token files for
  megatron-core) and, once every shard is written, combines them (``finish``). It is the last step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from data_prep.documents import Doc
from data_prep.report import StepStats
from nemo_recipes.config.loader import StrictModel


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


@runtime_checkable
class FittedStep(Protocol):
    def fit(self, folder: Path, stats: StepStats) -> None:
        """Learn from the step's own files and save the result into ``folder`` (an empty directory)."""
        ...

    def load(self, folder: Path) -> None:
        """Read what ``fit`` saved (a no-op once loaded); called before the step's first document."""
        ...

    def apply(self, doc: Doc, stats: StepStats) -> str | None: ...


@runtime_checkable
class ShardWriter(Protocol):
    def write_shard(self, docs: list[Doc], prefix: Path, stats: StepStats) -> None:
        """Write one shard's final documents to files starting with ``prefix``."""
        ...

    def finish(self, prefixes: list[Path], folder: Path, stats: StepStats) -> None:
        """Combine every shard's files (in shard order) once all are written."""
        ...
