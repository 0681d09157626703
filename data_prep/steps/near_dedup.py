"""Near dedup: MinHash signatures of CJK-aware shingles, LSH banding, candidates verified, clusters.

Shingles are ``shingle_size`` consecutive tokens of :func:`data_prep.text_keys.tokens` (one token per
Han character, one per Latin word or number, one per emoji). Signatures are rensa's ``RMinHash``
(Rust, ``num_perm`` 32-bit values per document). Banding: ``bands`` bands of ``num_perm // bands``
rows; documents sharing any band are candidates. More bands find more pairs of lower similarity;
``verify_threshold`` then keeps only candidate pairs whose estimated Jaccard (the share of equal
signature values) reaches it, which restores precision. The defaults (2-token shingles, 32 bands of 4
rows, verification at 0.7) are tuned on short posts: see docs/data-prep.md for the measured
precision and recall. Verified pairs are joined into clusters
(union-find) and every document but the first of its cluster (in input order) is dropped.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import rensa
from pydantic import Field, model_validator

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.steps.exact_dedup import split_drops
from data_prep.text_keys import shingles


class NearDedupConfig(StepConfig):
    kind: Literal["near_dedup"] = "near_dedup"
    num_perm: int = Field(128, ge=8)
    bands: int = Field(32, ge=1)
    shingle_size: int = Field(2, ge=1)
    verify_threshold: float | None = Field(0.7, gt=0, le=1)
    """Estimated Jaccard a candidate pair must reach; null: every LSH candidate counts as a duplicate."""
    seed: int = 1

    @model_validator(mode="after")
    def _bands_divide(self) -> NearDedupConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"bands ({self.bands}) must divide num_perm ({self.num_perm})")
        return self


def minhash_signatures(texts: list[str], num_perm: int, shingle_size: int, seed: int) -> np.ndarray:
    """(documents, num_perm) uint32 MinHash signatures of the texts' shingle sets."""
    sets = [shingles(t, shingle_size) or {t} for t in texts]  # no tokens: the raw text is the shingle
    if not sets:
        return np.zeros((0, num_perm), dtype=np.uint32)
    rows = rensa.RMinHash.digest_matrix_from_token_sets(sets, num_perm, seed).to_rows()
    return np.asarray(rows, dtype=np.uint32)


def candidate_pairs(sig: np.ndarray, bands: int) -> np.ndarray:
    """(pairs, 2) row indices (first member of a bucket, other member) over all bands, deduplicated."""
    rows_per_band = sig.shape[1] // bands
    pairs = []
    for b in range(bands):
        band = np.ascontiguousarray(sig[:, b * rows_per_band : (b + 1) * rows_per_band])
        keys = band.view(np.dtype((np.void, band.dtype.itemsize * rows_per_band))).ravel()
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        group_first = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]
        member = ~starts
        pairs.append(np.stack([group_first[member], order[member]], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


def cluster_duplicates(n_docs: int, pairs: np.ndarray) -> np.ndarray:
    """Boolean mask of documents that are not the first (lowest index) of their cluster."""
    parent = list(range(n_docs))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n_docs)], dtype=np.int64)
    return roots != np.arange(n_docs)


class NearDedup:
    def __init__(self, config: NearDedupConfig) -> None:
        self.config = config

    def signatures(self, docs: list[Doc]) -> np.ndarray:
        c = self.config
        return minhash_signatures([d.text for d in docs], c.num_perm, c.shingle_size, c.seed)

    def decide(self, shard_signatures: list[np.ndarray], stats: StepStats) -> list[dict[int, str]]:
        sizes = [len(s) for s in shard_signatures]
        sig = np.concatenate(shard_signatures) if sizes else np.zeros((0, self.config.num_perm), np.uint32)
        pairs = candidate_pairs(sig, self.config.bands)
        stats.counters["candidate_pairs"] += len(pairs)
        if self.config.verify_threshold is not None and len(pairs):
            similarity = (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)
            pairs = pairs[similarity >= self.config.verify_threshold]
        stats.counters["verified_pairs"] += len(pairs)
        return split_drops(cluster_duplicates(len(sig), pairs), sizes, "near_duplicate")


def build(config: NearDedupConfig) -> NearDedup:
    return NearDedup(config)
