"""span_f1: SQuAD-style bag-of-tokens F1 between the extracted answer and the reference span.

Tokens are :func:`~nemo_recipes.tasks.text.mixed_tokens` of the normalised texts: one per Han
character (as CMRC scores Chinese), one per Latin word or number, one per emoji. Reading
comprehension uses it; ``exact`` in the details says whether the normalised strings are equal.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import (
    ExtractConfig,
    NormalizeConfig,
    extract_answer,
    mixed_tokens,
    normalize_text,
    reference_answer,
)


class SpanF1Params(StrictModel):
    kind: Literal["span_f1"] = "span_f1"
    extract: ExtractConfig = ExtractConfig()
    normalize: NormalizeConfig = NormalizeConfig()


def token_f1(predicted: list[str], gold: list[str]) -> float:
    """Multiset-overlap F1 of two token lists (both empty: 1.0)."""
    if not predicted and not gold:
        return 1.0
    overlap = sum((Counter(predicted) & Counter(gold)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def score(response: str, record: TaskRecord, params: SpanF1Params) -> RewardResult:
    extracted = extract_answer(response, params.extract)
    if extracted is None:
        return zero("no answer extracted", rule=params.extract.rule)
    prediction = normalize_text(extracted, params.normalize)
    gold = normalize_text(reference_answer(record, params.extract), params.normalize)
    value = token_f1(mixed_tokens(prediction), mixed_tokens(gold))
    return RewardResult(value, {"prediction": prediction, "gold": gold, "exact": prediction == gold})
