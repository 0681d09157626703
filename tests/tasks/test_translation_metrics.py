"""BLEU (with the zh tokenizer for Chinese targets) and chrF++ on hand examples."""

from __future__ import annotations

import pytest

from nemo_recipes.tasks.rewards.bleu import BleuParams, corpus_bleu
from nemo_recipes.tasks.rewards.chrf import ChrfParams, corpus_chrf
from tests.tasks.helpers import reward

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
