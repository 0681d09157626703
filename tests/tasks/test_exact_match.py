from __future__ import annotations

import pytest

from nemo_recipes.tasks.rewards import check_reward_record
from tests.tasks.reward_calls import record, reward, spec

LABELS = {
    "kind": "exact_match",
    "extract": {"rule": "first_line"},
    "labels": ["female", "male", "neutral"],
    "aliases": {"female": ["女性", "女"], "male": ["男性"], "neutral": ["中性"]},
}


@pytest.mark.parametrize(
    ("response", "answer", "expected"),
    [
        ("female", "female", 1.0),
        ("Female.", "female", 1.0),
        ("ＦＥＭＡＬＥ", "female", 1.0),  # full-width
        ("女性", "female", 1.0),  # alias, Chinese response to an English reference
        ("女", "女性", 1.0),  # alias on both sides
        ("女性\n因为提到了口红💄", "女性", 1.0),  # extra text after the first line
        ("male", "female", 0.0),
        ("", "female", 0.0),  # empty output
        ("woman", "female", 0.0),  # not a label, not an alias
        ("💄", "female", 0.0),
    ],
)
def test_labels_and_aliases(response: str, answer: str, expected: float) -> None:
    assert reward(LABELS, response, answer).score == expected


def test_details_say_why() -> None:
    assert reward(LABELS, "", "female").details["reason"] == "no answer extracted"
    assert reward(LABELS, "cat", "female").details["reason"] == "not one of the labels"


def test_numeric_with_worked_reference() -> None:
    numeric = {"kind": "exact_match", "extract": {"rule": "last_number"}, "numeric": True}
    assert reward(numeric, "58 - 74 = -16", "58 - 74 = -16\nAnswer: -16").score == 1.0
    assert reward(numeric, "答案：-16.0", "答案：-16").score == 1.0
    assert reward(numeric, "Answer: 16", "Answer: -16").score == 0.0
    assert reward(numeric, "I don't know", "Answer: 3").score == 0.0


def test_case_and_emoji_sensitivity_are_params() -> None:
    strict = {"kind": "exact_match", "normalize": {"lowercase": False, "strip_punctuation": False}}
    assert reward(strict, "Yes!", "Yes!").score == 1.0
    assert reward(strict, "yes!", "Yes!").score == 0.0
    emoji_blind = {"kind": "exact_match", "normalize": {"strip_emoji": True}}
    assert reward(emoji_blind, "好评 👍", "好评").score == 1.0


def test_aliases_must_name_labels() -> None:
    with pytest.raises(ValueError, match="not in labels"):
        spec({"kind": "exact_match", "labels": ["a"], "aliases": {"b": ["x"]}})


def test_reference_must_be_a_label() -> None:
    problems = check_reward_record(spec(LABELS), record("unknown"))
    assert problems and problems[0][0] == "answer"
    assert check_reward_record(spec(LABELS), record("女性")) == []
