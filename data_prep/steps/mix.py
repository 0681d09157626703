"""Mix the input datasets by ratio (downsampling only): ``ratios: {weibo: 3, general: 1}``.

The target size is ``total_docs`` or, when unset, the largest mix the data allows without repeating a
document. Which documents a dataset keeps is a seeded, order-independent choice (smallest hash of
``seed`` and document id), so shards and resumption do not change it. A dataset with too few documents
for the requested size is an error (no upsampling).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xxhash
from pydantic import Field

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.steps.exact_dedup import split_drops


class MixConfig(StepConfig):
    kind: Literal["mix"] = "mix"
    ratios: dict[str, float] = Field(min_length=2)
    """Input name -> relative weight (> 0); must name every input."""
    total_docs: int | None = Field(None, ge=1)
    seed: int = 0


class MixTooSmallError(ValueError):
    """A dataset has fewer documents than its share of the requested mix."""


class Mix:
    def __init__(self, config: MixConfig) -> None:
        self.config = config
        self.names = sorted(config.ratios)

    def signatures(self, docs: list[Doc]) -> np.ndarray:
        rows = [
            (
                self.names.index(d.meta["dataset"]),
                xxhash.xxh3_64_intdigest(f"{self.config.seed}:{d.id}".encode()),
            )
            for d in docs
        ]
        return np.array(rows, dtype=np.uint64).reshape(-1, 2)

    def decide(self, shard_signatures: list[np.ndarray], stats: StepStats) -> list[dict[int, str]]:
        sizes = [len(s) for s in shard_signatures]
        sig = np.concatenate(shard_signatures) if sizes else np.zeros((0, 2), np.uint64)
        weights = np.array([self.config.ratios[n] for n in self.names], dtype=float)
        share = weights / weights.sum()
        available = np.bincount(sig[:, 0].astype(np.int64), minlength=len(self.names))
        total = self.config.total_docs or int(np.floor((available / share).min()))
        targets = np.floor(share * total + 1e-9).astype(np.int64)
        short = [f"{n}: {a} < {t}" for n, a, t in zip(self.names, available, targets, strict=True) if a < t]
        if short:
            raise MixTooSmallError(f"mix: not enough documents for total_docs={total} ({'; '.join(short)})")
        drop = np.zeros(len(sig), dtype=bool)
        for d, target in enumerate(targets):
            members = np.flatnonzero(sig[:, 0] == d)
            order = members[np.argsort(sig[members, 1], kind="stable")]
            drop[order[target:]] = True
            stats.counters[f"kept.{self.names[d]}"] += int(min(target, len(members)))
        return split_drops(drop, sizes, "mix_excess")


def build(config: MixConfig) -> Mix:
    return Mix(config)
