"""Decontamination: drop training documents that share n-grams with evaluation items.

Every string in the chosen fields of every eval record (``question``, ``answer``, ``text``, each
``messages[].content``) is cut into ``ngram_size``-token n-grams over the CJK-aware tokens of its match
key (one token per Han character, one per Latin word: punctuation, case and width do not hide a copy).
A document sharing at least ``min_matches`` n-grams with the index is dropped (``contaminated``). An
eval string shorter than ``ngram_size`` tokens (a short English post) is indexed whole if it has at
least ``min_tokens`` tokens, and a document containing that token sequence is contaminated; shorter
strings (labels such as ``酒店``, which would match everything) are not indexed. Questions often embed
the post after an instruction (``分类：<post>``), so every segment after a colon or newline is indexed
the same way as a string of its own.
"""

from __future__ import annotations

import glob
import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

import regex
from pydantic import Field

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.text_keys import tokens

_SEGMENT = regex.compile(r"[:：\n]")


class DecontaminateConfig(StepConfig):
    kind: Literal["decontaminate"] = "decontaminate"
    eval_paths: list[str] = Field(min_length=1)
    """JSONL files (globs) of evaluation records: task records or any objects with the fields below."""
    fields: list[str] = Field(default_factory=lambda: ["question", "answer", "text", "messages"])
    ngram_size: int = Field(8, ge=3)
    min_tokens: int = Field(5, ge=2)
    min_matches: int = Field(1, ge=1)


def ngrams(toks: list[str], size: int) -> list[str]:
    return [" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)]


def _strings(record: dict[str, Any], fields: list[str]) -> list[str]:
    out = []
    for name in fields:
        value = record.get(name)
        if isinstance(value, str):
            out.append(value)
        elif name == "messages" and isinstance(value, list):
            out += [m["content"] for m in value if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return out


@cache
def _index(
    paths: tuple[str, ...], fields: tuple[str, ...], size: int, min_tokens: int
) -> dict[int, frozenset[str]]:
    """n-gram length -> indexed n-grams (``size``, plus the lengths of whole short eval strings)."""
    index: dict[int, set[str]] = {}
    files = sorted({f for pattern in paths for f in glob.glob(pattern, recursive=True)})
    if not files:
        raise FileNotFoundError(f"decontaminate: no eval file matches {list(paths)}")
    for file in files:
        for line in Path(file).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            for text in _strings(json.loads(line), list(fields)):
                for piece in [text, *_SEGMENT.split(text)[1:]]:
                    toks = tokens(piece)
                    if len(toks) >= min_tokens:
                        length = min(size, len(toks))
                        index.setdefault(length, set()).update(ngrams(toks, length))
    return {length: frozenset(grams) for length, grams in index.items()}


class Decontaminate:
    def __init__(self, config: DecontaminateConfig) -> None:
        self.config = config
        self.index = _index(
            tuple(config.eval_paths), tuple(config.fields), config.ngram_size, config.min_tokens
        )

    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        toks = tokens(doc.text)
        matches = 0
        for length, grams in self.index.items():
            matches += sum(gram in grams for gram in ngrams(toks, length))
            if matches >= self.config.min_matches:
                return "contaminated"
        return None


def build(config: DecontaminateConfig) -> Decontaminate:
    return Decontaminate(config)
