"""set_f1, span_f1, ranking and rouge_l on hand examples (zh, en, emoji, edge cases)."""

from __future__ import annotations

import pytest

from nemo_recipes.tasks.rewards.rouge_l import lcs_length
from tests.tasks.reward_calls import reward

HASHTAGS = {"kind": "set_f1", "item_pattern": "#[^\\s#,，、;；]+"}
NER = {
    "kind": "set_f1",
    "separators": "[;；\\n]+",
    "normalize": {"whitespace": "remove", "strip_punctuation": False},
}


@pytest.mark.parametrize(
    ("response", "answer", "expected"),
    [
        ("#读书 #好评", "#读书 #好评", 1.0),
        ("#好评 #读书", "#读书 #好评", 1.0),  # order does not matter
        ("我选 #读书，还有 #好评 😀", "#读书 #好评", 1.0),  # extra text and emoji around the tags
        ("#读书", "#读书 #好评", pytest.approx(2 / 3)),  # P=1, R=1/2
        ("#读书 #好评 #数码 #育儿", "#读书 #好评", pytest.approx(2 / 3)),  # P=1/2, R=1
        ("#ＦＯＯＤＩＥ", "#foodie", 1.0),  # full-width, case
        ("no tags", "#foodie", 0.0),
        ("", "#foodie", 0.0),
    ],
)
def test_hashtag_f1(response: str, answer: str, expected: float) -> None:
    assert reward(HASHTAGS, response, answer).score == expected


def test_ner_items_and_empty_marker() -> None:
    gold = "PER:江泽民;LOC:北京"
    assert reward(NER, "LOC: 北京；PER: 江泽民", gold).score == 1.0
    assert reward(NER, "PER:江泽民;ORG:北京", gold).score == 0.5  # wrong type is a miss
    assert reward(NER, "无", "none").score == 1.0  # both empty
    assert reward(NER, "PER:张三", "无").score == 0.0


def test_highlight_words_default_separators() -> None:
    assert reward({"kind": "set_f1"}, "不错、干净", "干净，不错").score == 1.0
    assert reward({"kind": "set_f1"}, "amazing, friendly", "Amazing,friendly").score == 1.0


SPAN = {"kind": "span_f1", "extract": {"rule": "first_line"}}


def test_span_f1_chinese_characters() -> None:
    assert reward(SPAN, "162元", "162元").score == 1.0
    # tokens 哈 尔 滨 vs 哈 尔 滨 市: P=1, R=3/4
    assert reward(SPAN, "哈尔滨", "哈尔滨市").score == pytest.approx(6 / 7)
    assert reward(SPAN, "上海", "哈尔滨市").score == 0.0


def test_span_f1_english_words_and_extra_text() -> None:
    assert reward(SPAN, "David Jackson.", "David Jackson").score == 1.0
    assert reward(SPAN, "It was David", "David Jackson").score == pytest.approx(0.4)  # P=1/3, R=1/2
    assert reward(SPAN, "", "David").score == 0.0


def test_ranking_ndcg() -> None:
    ranking = {"kind": "ranking"}
    assert reward(ranking, "B > A > C", "B > A > C").score == 1.0
    assert reward(ranking, "b, a, c", "B > A > C").score == 1.0
    reversed_order = reward(ranking, "C > A > B", "B > A > C").score
    assert 0.0 < reversed_order < 1.0
    ideal = 3 / 1 + 2 / 1.584962500721156 + 1 / 2
    assert reversed_order == pytest.approx((1 / 1 + 2 / 1.584962500721156 + 3 / 2) / ideal)
    assert reward(ranking, "X > Y", "B > A > C").score == 0.0
    assert reward({"kind": "ranking", "top_k": 1}, "B > C > A", "B > A > C").score == 1.0


def test_rouge_l() -> None:
    rouge = {"kind": "rouge_l"}
    assert lcs_length(list("abcde"), list("ace")) == 3
    assert reward(rouge, "房间推荐", "房间推荐").score == 1.0
    # LCS(房 间 避 雷, 房 间 推 荐) = 2 -> P = R = 1/2
    assert reward(rouge, "房间避雷", "房间推荐").score == pytest.approx(0.5)
    assert reward(rouge, "best ramen 🍜", "best ramen").score == pytest.approx(0.8)
    assert reward(rouge, "", "best ramen").score == 0.0
    assert reward(rouge, "完全无关", "best ramen").score == 0.0
