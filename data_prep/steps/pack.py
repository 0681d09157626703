"""Tokenise the curated text and pack it into megatron-core indexed datasets (``.bin`` / ``.idx``).

The last step of a recipe. Every shard's surviving documents are encoded in batches with a Hugging
Face tokenizer (``tokenizer``: a shipped name under ``nemo_recipes/assets/tokenizer`` or a directory
with a ``tokenizer.json``; the ``tokenizers`` library, which transformers' fast tokenizers run on),
``eos_token`` is appended to each, and they are written with megatron-core's ``IndexedDatasetBuilder``
(one sequence per document) as ``<output_dir>/<step name>/shard-NNNNN.{bin,idx}``. Once every shard
is written, ``merged.{bin,idx}`` concatenates them (``merge``) and ``blend.json`` lists the shards:
``data_path`` is megatron's weighted list (``["tokens", "prefix", ...]``, weights = token counts) for
``get_blend_from_list`` / ``BlendedMegatronDatasetBuilder``, next to each shard's documents and tokens.

Token ids are stored as ``uint16`` when the vocabulary fits (megatron's ``DType.optimal_dtype``),
else ``int32``. What is packed is a document's text: task records (``to_task``) are read by the
training stages as JSONL, so a recipe cannot pack after formatting them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
from pydantic import Field
from tokenizers import Tokenizer

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from nemo_recipes.config.assets import resolve_asset


class PackConfig(StepConfig):
    kind: Literal["pack"] = "pack"
    tokenizer: str = "tiny"
    """A shipped tokenizer name, or a Hugging Face tokenizer directory (with tokenizer.json)."""
    eos_token: str | None = None
    """Appended to every document; null: the tokenizer's ``eos_token`` (tokenizer_config.json)."""
    add_special_tokens: bool = False
    """Let the tokenizer's post-processor add its special tokens (e.g. a BOS) to every document."""
    batch_docs: int = Field(1024, ge=1)
    merge: bool = True
    """Also write every shard concatenated as ``merged.{bin,idx}``."""


@cache
def load_tokenizer(name_or_dir: str, eos_token: str | None) -> tuple[Tokenizer, int]:
    """The tokenizer of a directory and the id of the token ending each document."""
    folder = resolve_asset(name_or_dir, "tokenizer")
    if not (folder / "tokenizer.json").exists():
        raise FileNotFoundError(f"pack.tokenizer: {folder} has no tokenizer.json (a fast HF tokenizer)")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    if eos_token is None:
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        eos = config.get("eos_token")
        eos_token = eos.get("content") if isinstance(eos, dict) else eos
        if eos_token is None:
            raise ValueError(f"pack.eos_token: {folder} names no eos_token; set pack.eos_token")
    eos_id = tokenizer.token_to_id(eos_token)
    if eos_id is None:
        raise ValueError(f"pack.eos_token: {eos_token!r} is not a token of {folder}")
    return tokenizer, eos_id


def indexed_dataset() -> ModuleType:
    """megatron-core's indexed dataset module, imported on first use (it pulls in torch)."""
    import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

    from megatron.core.datasets import indexed_dataset as module

    return module


def _token_dtype(tokenizer: Tokenizer) -> type[np.number]:
    return indexed_dataset().DType.optimal_dtype(tokenizer.get_vocab_size(with_added_tokens=True))


class Pack:
    def __init__(self, config: PackConfig) -> None:
        self.config = config

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text (one batch), with the end-of-document token appended."""
        tokenizer, eos_id = load_tokenizer(self.config.tokenizer, self.config.eos_token)
        dtype = _token_dtype(tokenizer)
        encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=self.config.add_special_tokens)
        return [np.array([*e.ids, eos_id], dtype=dtype) for e in encodings]

    def write_shard(self, docs: list[Doc], prefix: Path, stats: StepStats) -> None:
        if not docs:
            return
        tokenizer, _ = load_tokenizer(self.config.tokenizer, self.config.eos_token)
        builder = indexed_dataset().IndexedDatasetBuilder(f"{prefix}.bin", dtype=_token_dtype(tokenizer))
        for start in range(0, len(docs), self.config.batch_docs):
            for ids in self.encode([d.text for d in docs[start : start + self.config.batch_docs]]):
                builder.add_document(ids, [len(ids)])
                stats.counters["tokens"] += len(ids)
        builder.finalize(f"{prefix}.idx")

    def finish(self, prefixes: list[Path], folder: Path, stats: StepStats) -> None:
        module = indexed_dataset()
        written = [p for p in prefixes if Path(f"{p}.idx").exists()]  # a shard left empty has no files
        shards: list[dict[str, Any]] = []
        for prefix in written:
            dataset = module.IndexedDataset(str(prefix))  # its lengths live in its memory map: keep it open
            tokens = int(dataset.sequence_lengths.sum())
            shards.append({"prefix": str(prefix.resolve()), "documents": len(dataset), "tokens": tokens})
        merged = None
        if self.config.merge and written:
            merged = folder.resolve() / "merged"
            tokenizer, _ = load_tokenizer(self.config.tokenizer, self.config.eos_token)
            builder = module.IndexedDatasetBuilder(f"{merged}.bin", dtype=_token_dtype(tokenizer))
            for prefix in written:
                builder.add_index(str(prefix))
            builder.finalize(f"{merged}.idx")
        blend = {
            "data_path": [str(x) for s in shards for x in (s["tokens"], s["prefix"])],
            "merged": str(merged) if merged else None,
            "shards": shards,
        }
        (folder / "blend.json").write_text(json.dumps(blend, indent=1), encoding="utf-8")
        stats.counters["shards_written"] += len(shards)


def build(config: PackConfig) -> Pack:
    return Pack(config)
