"""ranking: NDCG of a predicted order of candidate ids against the reference order.

The reference answer lists the candidates best first (``B > A > C`` or ``B, A, C``); the candidate at
reference position i (0-based, n candidates) has graded relevance n - i. The prediction is read the
same way; unknown ids are ignored and repeats count once. Score = DCG(prediction) / DCG(reference),
with DCG = sum over predicted positions p of rel / log2(p + 2), cut at ``top_k`` if given.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import PositiveInt

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import ExtractConfig, NormalizeConfig, extract_answer, normalize_text


class RankingParams(StrictModel):
    kind: Literal["ranking"] = "ranking"
    extract: ExtractConfig = ExtractConfig()
    normalize: NormalizeConfig = NormalizeConfig(strip_punctuation=False)
    separators: str = r"\s*(?:>|,|，|、|;|；|\n|\s)\s*"
    top_k: PositiveInt | None = None


def order_of(text: str, params: RankingParams) -> list[str]:
    """Distinct normalised ids in the order they appear."""
    seen: list[str] = []
    for item in re.split(params.separators, text):
        item = normalize_text(item, params.normalize)
        if item and item not in seen:
            seen.append(item)
    return seen


def dcg(order: list[str], relevance: dict[str, int], top_k: int | None) -> float:
    cut = order[:top_k] if top_k else order
    return sum(relevance.get(item, 0) / math.log2(position + 2) for position, item in enumerate(cut))


def score(response: str, record: TaskRecord, params: RankingParams) -> RewardResult:
    extracted = extract_answer(response, params.extract)
    if extracted is None:
        return zero("no answer extracted", rule=params.extract.rule)
    gold = order_of(record.answer_text, params)
    relevance = {item: len(gold) - position for position, item in enumerate(gold)}
    predicted = [item for item in order_of(extracted, params) if item in relevance]
    ideal = dcg(gold, relevance, params.top_k)
    value = dcg(predicted, relevance, params.top_k) / ideal if ideal else 0.0
    return RewardResult(min(value, 1.0), {"predicted": predicted, "gold": gold})
