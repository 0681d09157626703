"""Exact dedup across all shards: the first document with a given key is kept.

The key is the match key (``match``: NFKC, lower case, no punctuation, symbols or whitespace, so
``好吃！！`` and ``好吃!`` are one) or the stored text (``text``). A post with an empty match key (only
emoji or punctuation) falls back to its stored text, so ``😂`` and ``👍`` stay distinct.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xxhash

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.text_keys import match_key


class ExactDedupConfig(StepConfig):
    kind: Literal["exact_dedup"] = "exact_dedup"
    key: Literal["match", "text"] = "match"


class ExactDedup:
    def __init__(self, config: ExactDedupConfig) -> None:
        self.config = config

    def _key(self, text: str) -> str:
        key = match_key(text) if self.config.key == "match" else text
        return key or text

    def signatures(self, docs: list[Doc]) -> np.ndarray:
        hashes = [xxhash.xxh3_64_intdigest(self._key(d.text).encode("utf-8")) for d in docs]
        return np.array(hashes, dtype=np.uint64).reshape(-1, 1)

    def decide(self, shard_signatures: list[np.ndarray], stats: StepStats) -> list[dict[int, str]]:
        sizes = [len(s) for s in shard_signatures]
        flat = np.concatenate([s[:, 0] for s in shard_signatures]) if sizes else np.zeros(0, np.uint64)
        _, first = np.unique(flat, return_index=True)
        duplicate = np.ones(len(flat), dtype=bool)
        duplicate[first] = False
        return split_drops(duplicate, sizes, "exact_duplicate")


def split_drops(drop: np.ndarray, sizes: list[int], reason: str) -> list[dict[int, str]]:
    """A global boolean drop mask -> per shard {row: reason}."""
    out, start = [], 0
    for size in sizes:
        rows = np.flatnonzero(drop[start : start + size])
        out.append(dict.fromkeys(rows.tolist(), reason))
        start += size
    return out


def build(config: ExactDedupConfig) -> ExactDedup:
    return ExactDedup(config)
