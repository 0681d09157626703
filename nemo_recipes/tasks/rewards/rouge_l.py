"""rouge_l: ROUGE-L F1 (longest common subsequence) over mixed zh/en tokens.

Implemented here rather than with ``rouge-score``, whose default tokenizer drops every non-ASCII
character (Chinese would score 0). Tokens are :func:`~nemo_recipes.tasks.text.mixed_tokens` of the
normalised texts; precision = LCS / |prediction|, recall = LCS / |reference|, F1 (beta 1). Inputs are
cut to ``max_tokens`` each (the LCS table is quadratic); the cut is reported in the details.
"""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import (
    ExtractConfig,
    NormalizeConfig,
    extract_answer,
    mixed_tokens,
    normalize_text,
)


class RougeLParams(StrictModel):
    kind: Literal["rouge_l"] = "rouge_l"
    extract: ExtractConfig = ExtractConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    max_tokens: PositiveInt = 1024


def lcs_length(first: list[str], second: list[str]) -> int:
    """Length of the longest common subsequence (O(len(first) * len(second)) time, linear memory)."""
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for position, other in enumerate(second):
            current.append(
                previous[position] + 1 if token == other else max(previous[position + 1], current[-1])
            )
        previous = current
    return previous[-1]


def rouge_l_f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return 1.0 if predicted == gold else 0.0
    common = lcs_length(predicted, gold)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def score(response: str, record: TaskRecord, params: RougeLParams) -> RewardResult:
    extracted = extract_answer(response, params.extract)
    if extracted is None:
        return zero("empty output")
    predicted = mixed_tokens(normalize_text(extracted, params.normalize))
    gold = mixed_tokens(normalize_text(record.answer_text, params.normalize))
    truncated = len(predicted) > params.max_tokens or len(gold) > params.max_tokens
    value = rouge_l_f1(predicted[: params.max_tokens], gold[: params.max_tokens])
    return RewardResult(value, {"predicted_tokens": len(predicted), "truncated": truncated})
