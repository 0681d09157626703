"""bleu: sentence BLEU (sacrebleu) / 100, with the tokenizer the target language needs.

``tokenize: zh`` for Chinese targets (sacrebleu's Chinese tokenizer splits Han characters), ``13a``
for English and other space-separated targets. Sentence BLEU uses exponential smoothing and the
effective n-gram order, so short outputs get partial credit; the eval stage may aggregate at corpus
level with :func:`corpus_bleu` (same tokenizer); :func:`corpus_bleu_stats` and :func:`bleu_from_stats`
split that into per-sentence sufficient statistics and the score of their sum (a bootstrap resample's
corpus BLEU without re-tokenizing, as sacrebleu's paired bootstrap does).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

from sacrebleu.metrics import BLEU

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import ExtractConfig, extract_answer

Tokenizer = Literal["13a", "zh", "intl", "char", "none"]


class BleuParams(StrictModel):
    kind: Literal["bleu"] = "bleu"
    extract: ExtractConfig = ExtractConfig()
    tokenize: Tokenizer = "13a"
    lowercase: bool = False


@functools.cache
def _metric(tokenize: str, lowercase: bool, sentence_level: bool) -> BLEU:
    # Sentence BLEU uses the effective order (only the n-gram orders the sentence has): sacrebleu's advice.
    return BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=sentence_level)


def score(response: str, record: TaskRecord, params: BleuParams) -> RewardResult:
    hypothesis = extract_answer(response, params.extract)
    if hypothesis is None:
        return zero("empty output")
    result = _metric(params.tokenize, params.lowercase, True).sentence_score(hypothesis, [record.answer_text])
    return RewardResult(min(result.score / 100.0, 1.0), {"bleu": result.score, "tokenize": params.tokenize})


def corpus_bleu(hypotheses: list[str], references: list[str], params: BleuParams) -> float:
    """Corpus BLEU / 100 over aligned lists (what translation benchmarks report)."""
    result = _metric(params.tokenize, params.lowercase, False).corpus_score(hypotheses, [references])
    return result.score / 100.0


def corpus_bleu_stats(hypotheses: list[str], references: list[str], params: BleuParams) -> list[list[int]]:
    """Per sentence, corpus BLEU's sufficient statistics (sacrebleu's: hypothesis and reference
    lengths, then matching and total n-gram counts per order); summed over any subset of sentences
    they give that subset's corpus BLEU through :func:`bleu_from_stats`."""
    metric = _metric(params.tokenize, params.lowercase, False)
    stats = metric._extract_corpus_statistics(hypotheses, [references])
    return [[int(x) for x in row] for row in stats]


def bleu_from_stats(stats: Sequence[int], params: BleuParams) -> float:
    """Corpus BLEU / 100 from summed :func:`corpus_bleu_stats` rows (equal to :func:`corpus_bleu`
    on the sentences summed)."""
    metric = _metric(params.tokenize, params.lowercase, False)
    return metric._compute_score_from_stats([int(x) for x in stats]).score / 100.0
