from __future__ import annotations

import pytest

from nemo_recipes.tasks.text import (
    ExtractConfig,
    NormalizeConfig,
    extract_answer,
    mixed_tokens,
    normalize_text,
    parse_number,
    script_counts,
)


@pytest.mark.parametrize(
    ("rule", "response", "expected"),
    [
        ("full", "  hello  ", "hello"),
        ("first_line", "\n酒店\n因为提到了房间", "酒店"),
        ("last_line", "reasoning...\n\nfood", "food"),
        ("last_number", "12 + 30 = 42, so 42.", "42"),
        ("last_number", "一共１，２３４元", "1234"),
        ("last_number", "58 - 74 = -16", "-16"),
        ("after_marker", "thinking\nAnswer: male\nbye", "male"),
        ("after_marker", "想一想……答案：女性", "女性"),
        ("boxed", "so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
        ("code_block", "a\n```python\nx = 1\n```\nb\n```py\ny = 2\n```", "y = 2\n"),
    ],
)
def test_extraction_rules(rule: str, response: str, expected: str) -> None:
    assert extract_answer(response, ExtractConfig(rule=rule)) == expected


def test_extraction_finds_nothing() -> None:
    assert extract_answer("", ExtractConfig()) is None
    assert extract_answer("   \n ", ExtractConfig(rule="first_line")) is None
    assert extract_answer("no digits here", ExtractConfig(rule="last_number")) is None
    assert extract_answer("no marker", ExtractConfig(rule="after_marker")) is None
    assert extract_answer("no fence", ExtractConfig(rule="code_block")) is None


def test_regex_rule_takes_last_match_and_group() -> None:
    config = ExtractConfig(rule="regex", pattern=r"label=(\w+)")
    assert extract_answer("label=a ... label=b", config) == "b"


def test_thinking_is_stripped_first() -> None:
    assert extract_answer("<think>答案：错</think>答案：对", ExtractConfig(rule="after_marker")) == "对"
    assert extract_answer("still thinking</think>food", ExtractConfig()) == "food"
    assert extract_answer("<think>x</think>", ExtractConfig()) is None


def test_normalisation_width_case_punctuation_emoji() -> None:
    default = NormalizeConfig()
    assert normalize_text("Ｆｏｏｄ！", default) == "food"
    assert normalize_text("  酒店。 ", default) == "酒店"
    assert normalize_text("Great  job 👍", default) == "great job 👍"
    assert normalize_text("Great job 👍", NormalizeConfig(strip_emoji=True)) == "great job"
    assert normalize_text("a b\tc", NormalizeConfig(whitespace="remove")) == "abc"
    assert normalize_text("A,B", NormalizeConfig(lowercase=False, strip_punctuation=False)) == "A,B"


def test_mixed_tokens_and_scripts() -> None:
    assert mixed_tokens("我爱New York 2025 🍎!") == ["我", "爱", "New", "York", "2025", "🍎"]
    assert script_counts("Hello 世界, hi") == (2, 2)
    assert parse_number("１,２００") == 1200.0
    assert parse_number("12 apples") is None
