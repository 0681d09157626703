"""BLEU (with the zh tokenizer for Chinese targets) and chrF++ on hand examples."""

from __future__ import annotations

import pytest

from nemo_recipes.tasks.rewards.bleu import BleuParams, bleu_from_stats, corpus_bleu, corpus_bleu_stats
from nemo_recipes.tasks.rewards.chrf import ChrfParams, chrf_from_stats, corpus_chrf, corpus_chrf_stats
from tests.tasks.reward_calls import reward

ZH_BLEU = {"kind": "bleu", "tokenize": "zh"}
EN_BLEU = {"kind": "bleu", "tokenize": "13a"}


def test_identical_output_scores_one() -> None:
    assert reward(ZH_BLEU, "我最喜欢的是企鹅。", "我最喜欢的是企鹅。").score == pytest.approx(1.0)
    assert reward(
        EN_BLEU, "My favorite is the penguin.", "My favorite is the penguin."
    ).score == pytest.approx(1.0)
    assert reward({"kind": "chrf"}, "我最喜欢的是企鹅。", "我最喜欢的是企鹅。").score == pytest.approx(1.0)


def test_chinese_needs_the_zh_tokenizer() -> None:
    # Without spaces, 13a sees one "word": a one-character change zeroes BLEU; zh splits characters.
    hypothesis, reference = "我最喜欢的是熊猫。", "我最喜欢的是企鹅。"
    with_zh = reward(ZH_BLEU, hypothesis, reference).score
    with_13a = reward(EN_BLEU, hypothesis, reference).score
    assert 0.3 < with_zh < 1.0
    assert with_13a < with_zh


def test_partial_and_wrong_language_and_empty() -> None:
    close = reward(EN_BLEU, "My favourite is the penguin.", "My favorite is the penguin.").score
    assert 0.2 < close < 1.0
    assert reward(EN_BLEU, "我最喜欢的是企鹅。", "My favorite is the penguin.").score == 0.0  # wrong language
    assert reward({"kind": "chrf"}, "我最喜欢的是企鹅。", "My favorite is the penguin.").score < 0.05
    assert reward(EN_BLEU, "", "My favorite is the penguin.").score == 0.0
    assert reward({"kind": "chrf"}, "   ", "abc").score == 0.0


def test_chrf_plus_plus_counts_word_bigrams() -> None:
    hypothesis, reference = "the penguin is my favorite", "my favorite is the penguin"
    chrf_pp = reward({"kind": "chrf"}, hypothesis, reference).score
    chrf = reward({"kind": "chrf", "word_order": 0}, hypothesis, reference).score
    assert chrf_pp < chrf  # shuffled words keep characters but lose word bigrams


def test_emoji_survive_tokenisation() -> None:
    assert reward(EN_BLEU, "So good 🍜!", "So good 🍜!").score == pytest.approx(1.0)


def test_corpus_level() -> None:
    hypotheses, references = (
        ["我最喜欢的是企鹅。", "今天吃了香蕉"],
        ["我最喜欢的是企鹅。", "今天吃了香蕉，太好吃了！"],
    )
    bleu = corpus_bleu(hypotheses, references, BleuParams(tokenize="zh"))
    chrf = corpus_chrf(hypotheses, references, ChrfParams())
    assert 0.5 < bleu < 1.0
    assert 0.5 < chrf < 1.0


def test_corpus_scores_from_summed_sentence_statistics() -> None:
    """A resample (sentences repeated or left out) scored from summed statistics equals the corpus
    metric run on those sentences: what the eval bootstrap relies on."""
    hypotheses = ["我最喜欢的是企鹅。", "今天吃了香蕉", "明天去买斧头", ""]
    references = [
        "我最喜欢的是企鹅。",
        "今天吃了香蕉，太好吃了！",
        "明天和朋友一起去买斧头。",
        "这本书很好看。",
    ]
    bleu_params, chrf_params = BleuParams(tokenize="zh"), ChrfParams()
    bleu_stats = corpus_bleu_stats(hypotheses, references, bleu_params)
    chrf_stats = corpus_chrf_stats(hypotheses, references, chrf_params)
    for pick in ([0, 1, 2, 3], [1, 1, 2], [3], [0, 0, 0, 2, 3]):
        hyps, refs = [hypotheses[i] for i in pick], [references[i] for i in pick]
        bleu_sum = [sum(col) for col in zip(*(bleu_stats[i] for i in pick), strict=True)]
        chrf_sum = [sum(col) for col in zip(*(chrf_stats[i] for i in pick), strict=True)]
        assert bleu_from_stats(bleu_sum, bleu_params) == pytest.approx(corpus_bleu(hyps, refs, bleu_params))
        assert chrf_from_stats(chrf_sum, chrf_params) == pytest.approx(corpus_chrf(hyps, refs, chrf_params))
