"""chrf: sentence chrF++ (sacrebleu; character 6-grams plus word 1-2-grams, beta 2) / 100.

``word_order: 2`` is chrF++, ``0`` is plain chrF. Character n-grams ignore whitespace, so the metric
needs no tokenizer for Chinese (its word n-grams then see whole unsegmented runs, which only the
word part of the score feels). :func:`corpus_chrf_stats` / :func:`chrf_from_stats`: corpus chrF from
summed per-sentence statistics (for bootstrap resamples).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

from pydantic import Field
from sacrebleu.metrics import CHRF

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import ExtractConfig, extract_answer


class ChrfParams(StrictModel):
    kind: Literal["chrf"] = "chrf"
    extract: ExtractConfig = ExtractConfig()
    char_order: int = Field(6, ge=1)
    word_order: int = Field(2, ge=0)
    lowercase: bool = False


@functools.cache
def _metric(char_order: int, word_order: int, lowercase: bool) -> CHRF:
    return CHRF(char_order=char_order, word_order=word_order, lowercase=lowercase)


def score(response: str, record: TaskRecord, params: ChrfParams) -> RewardResult:
    hypothesis = extract_answer(response, params.extract)
    if hypothesis is None:
        return zero("empty output")
    result = _metric(params.char_order, params.word_order, params.lowercase).sentence_score(
        hypothesis, [record.answer_text]
    )
    return RewardResult(min(result.score / 100.0, 1.0), {"chrf": result.score})


def corpus_chrf(hypotheses: list[str], references: list[str], params: ChrfParams) -> float:
    """Corpus chrF(++) / 100 over aligned lists."""
    result = _metric(params.char_order, params.word_order, params.lowercase).corpus_score(
        hypotheses, [references]
    )
    return result.score / 100.0


def corpus_chrf_stats(hypotheses: list[str], references: list[str], params: ChrfParams) -> list[list[int]]:
    """Per sentence, corpus chrF's sufficient statistics (sacrebleu's hypothesis, reference and
    matching n-gram counts per character and word order); see :func:`chrf_from_stats`."""
    metric = _metric(params.char_order, params.word_order, params.lowercase)
    stats = metric._extract_corpus_statistics(hypotheses, [references])
    return [[int(x) for x in row] for row in stats]


def chrf_from_stats(stats: Sequence[int], params: ChrfParams) -> float:
    """Corpus chrF(++) / 100 from summed :func:`corpus_chrf_stats` rows (equal to :func:`corpus_chrf`
    on the sentences summed)."""
    metric = _metric(params.char_order, params.word_order, params.lowercase)
    return metric._compute_score_from_stats([int(x) for x in stats]).score / 100.0
