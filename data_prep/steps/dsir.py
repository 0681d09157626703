"""Data selection by importance resampling toward a target distribution (DSIR, Xie et al. 2023).

Each document is a bag of hashed n-grams: the 1- to ``ngram_size``-grams of its first ``max_tokens``
CJK-aware tokens (:func:`data_prep.text_keys.tokens`: one per Han character, one per Latin word, one
per emoji), hashed into ``num_buckets`` buckets. Two bucket distributions are estimated, each with
``pseudo_count`` added to every bucket: the target's (the ``target_paths`` files) and the raw data's
(every document reaching this step). A document's log importance weight is the sum over its n-grams
of ``log p_target - log p_raw`` of their buckets. ``num_docs`` (or ``fraction``) documents are drawn
without replacement with probability proportional to the weight (Gumbel top-k: the largest log
weights plus Gumbel noise are kept), or the largest weights are kept with ``top_k``. The noise is
drawn from ``seed`` for the documents in input order, so the number of workers or ranks does not
change the choice. The others are dropped (``not_selected``). The decision holds every document's
bucket ids (2 bytes each while ``num_buckets`` < 65,536: ~0.5 KB per document at the defaults).

This is the hashed n-gram DSIR of the ``data-selection`` package, written here because that package
tokenises on whitespace and punctuation (a Chinese clause would be one word), works on files of its
own with an unseeded global random state, and hashes every n-gram with SHA-256. It smooths
probabilities by 1e-8, which suits targets of millions of tokens; with a few hundred target posts each
bucket the target missed costs ~18 nats, and the weights end up counting unseen n-grams (measured in
docs/data-prep.md), hence the pseudo-count.
"""

from __future__ import annotations

import glob
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import xxhash
from pydantic import Field, model_validator

from data_prep.documents import Doc, read_input_file
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.steps.exact_dedup import split_drops
from data_prep.text_keys import tokens


class DsirConfig(StepConfig):
    kind: Literal["dsir"] = "dsir"
    target_paths: list[str] = Field(min_length=1)
    """JSONL / Parquet files (globs) of examples of the wanted data."""
    target_text_field: str = "text"
    num_docs: int | None = Field(None, ge=1)
    fraction: float | None = Field(None, gt=0, le=1)
    """Share of the documents reaching this step to keep (set this or ``num_docs``)."""
    num_buckets: int = Field(10_000, ge=16, lt=2**32)
    ngram_size: int = Field(2, ge=1)
    max_tokens: int = Field(128, ge=1)
    """Features come from a document's first ``max_tokens`` tokens."""
    pseudo_count: float = Field(1.0, gt=0)
    """Added to every bucket's count of both distributions (additive smoothing)."""
    top_k: bool = False
    """Keep the largest weights instead of sampling (less diverse, more on-target)."""
    seed: int = 0

    @model_validator(mode="after")
    def _one_size(self) -> DsirConfig:
        if (self.num_docs is None) == (self.fraction is None):
            raise ValueError("dsir: set exactly one of num_docs and fraction")
        return self


def hashed_ngrams(text: str, ngram_size: int, max_tokens: int, num_buckets: int) -> list[int]:
    """Bucket of every 1..ngram_size-gram of the text's first ``max_tokens`` tokens."""
    toks = tokens(text)[:max_tokens]
    grams = [" ".join(toks[i : i + n]) for n in range(1, ngram_size + 1) for i in range(len(toks) - n + 1)]
    return [xxhash.xxh3_64_intdigest(g.encode("utf-8")) % num_buckets for g in grams]


def smoothed_log_probs(counts: np.ndarray, pseudo_count: float) -> np.ndarray:
    """log of (count + pseudo_count) / (total + pseudo_count * buckets), per bucket."""
    smoothed = counts.astype(np.float64) + pseudo_count
    return np.log(smoothed / smoothed.sum())


@cache
def _target_counts(
    paths: tuple[str, ...], text_field: str, ngram_size: int, max_tokens: int, num_buckets: int
) -> np.ndarray:
    """Bucket counts of every target document."""
    files = sorted({f for pattern in paths for f in glob.glob(pattern, recursive=True)})
    if not files:
        raise FileNotFoundError(f"dsir.target_paths: no file matches {list(paths)}")
    rows = [
        hashed_ngrams(doc.text, ngram_size, max_tokens, num_buckets)
        for file in files
        for doc in read_input_file(Path(file), "auto", text_field, None, "raise").docs
    ]
    if not any(rows):
        raise ValueError(f"dsir.target_paths: no text in {files}")
    return np.bincount(np.fromiter((b for row in rows for b in row), np.int64), minlength=num_buckets)


class SelectionTooLargeError(ValueError):
    """``num_docs`` asks for more documents than reach the step."""


class Dsir:
    def __init__(self, config: DsirConfig) -> None:
        self.config = config

    def signatures(self, docs: list[Doc]) -> np.ndarray:
        """Per document, its n-gram buckets, padded with ``num_buckets`` to the shard's longest."""
        c = self.config
        rows = [hashed_ngrams(d.text, c.ngram_size, c.max_tokens, c.num_buckets) for d in docs]
        dtype = np.uint16 if c.num_buckets < 2**16 else np.uint32
        sig = np.full((len(docs), max((len(r) for r in rows), default=0)), c.num_buckets, dtype=dtype)
        for i, row in enumerate(rows):
            sig[i, : len(row)] = row
        return sig

    def log_weights(self, shard_signatures: list[np.ndarray]) -> np.ndarray:
        """Log importance weight of every document, shards concatenated."""
        c = self.config
        raw = np.zeros(c.num_buckets + 1, dtype=np.int64)  # the last bucket counts padding
        for sig in shard_signatures:
            raw += np.bincount(sig.ravel(), minlength=c.num_buckets + 1)
        target = _target_counts(
            tuple(c.target_paths), c.target_text_field, c.ngram_size, c.max_tokens, c.num_buckets
        )
        log_ratio = smoothed_log_probs(target, c.pseudo_count) - smoothed_log_probs(raw[:-1], c.pseudo_count)
        log_ratio = np.append(log_ratio, 0.0)  # padding weighs nothing
        return np.concatenate([log_ratio[sig].sum(axis=1) for sig in shard_signatures])

    def decide(self, shard_signatures: list[np.ndarray], stats: StepStats) -> list[dict[int, str]]:
        c = self.config
        sizes = [len(s) for s in shard_signatures]
        total = sum(sizes)
        keep = c.num_docs or round((c.fraction or 0.0) * total)
        if keep > total:
            raise SelectionTooLargeError(f"dsir: num_docs={keep} but only {total} documents reach the step")
        if total == 0:
            return [{} for _ in sizes]
        key = self.log_weights(shard_signatures)
        if not c.top_k:
            key = key + np.random.default_rng(c.seed).gumbel(size=total)
        order = np.argsort(-key, kind="stable")
        drop = np.ones(total, dtype=bool)
        drop[order[:keep]] = False
        stats.counters["selected"] += keep
        return split_drops(drop, sizes, "not_selected")


def build(config: DsirConfig) -> Dsir:
    return Dsir(config)
