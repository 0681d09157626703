"""set_f1: F1 between the set of predicted items and the set of reference items.

For multi-label answers: hashtags, typed NER entities (``PER:张伟``), highlight words. Items are
found with ``item_pattern`` (all matches) or by splitting on ``separators``; each item is normalised,
aliases resolved, duplicates dropped. Both sets empty scores 1.0; exactly one empty scores 0.0. An
answer equal to one of ``empty_markers`` (``none``, ``无``) is the empty set.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import (
    ExtractConfig,
    NormalizeConfig,
    extract_answer,
    normalize_text,
    reference_answer,
)


class SetF1Params(StrictModel):
    kind: Literal["set_f1"] = "set_f1"
    extract: ExtractConfig = ExtractConfig()
    normalize: NormalizeConfig = NormalizeConfig(strip_punctuation=False)
    item_pattern: str | None = None
    """Regex whose matches are the items (e.g. ``#[^\\s#]+`` for hashtags); overrides separators."""
    separators: str = r"[,，、;；\n|]+"
    empty_markers: list[str] = Field(default_factory=lambda: ["none", "无", "没有"])
    aliases: dict[str, list[str]] = Field(default_factory=dict)


def items_of(text: str, params: SetF1Params) -> set[str]:
    """The normalised item set of an answer string."""
    if normalize_text(text, params.normalize) in {
        normalize_text(m, params.normalize) for m in params.empty_markers
    }:
        return set()
    raw = re.findall(params.item_pattern, text) if params.item_pattern else re.split(params.separators, text)
    alias_of = {
        normalize_text(form, params.normalize): normalize_text(label, params.normalize)
        for label, forms in params.aliases.items()
        for form in forms
    }
    items = (normalize_text(item, params.normalize) for item in raw)
    return {alias_of.get(item, item) for item in items if item}


def f1(predicted: set[str], gold: set[str]) -> tuple[float, float, float]:
    """(precision, recall, F1); two empty sets agree perfectly."""
    if not predicted and not gold:
        return 1.0, 1.0, 1.0
    overlap = len(predicted & gold)
    if overlap == 0:
        return 0.0, 0.0, 0.0
    precision, recall = overlap / len(predicted), overlap / len(gold)
    return precision, recall, 2 * precision * recall / (precision + recall)


def score(response: str, record: TaskRecord, params: SetF1Params) -> RewardResult:
    extracted = extract_answer(response, params.extract)
    if extracted is None:
        return zero("no answer extracted", rule=params.extract.rule)
    predicted, gold = items_of(extracted, params), items_of(reference_answer(record, params.extract), params)
    precision, recall, f_score = f1(predicted, gold)
    details = {"predicted": sorted(predicted), "gold": sorted(gold), "precision": precision, "recall": recall}
    return RewardResult(f_score, details)
