"""Verifiable constraints (IFEval-style) and the pattern reward."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from nemo_recipes.tasks.constraints import Constraint
from nemo_recipes.tasks.rewards import check_reward_record
from tests.tasks.reward_calls import record, reward, spec

CONSTRAINT = TypeAdapter(Constraint)


def holds(raw: dict, text: str) -> bool:
    return CONSTRAINT.validate_python(raw).check(text)


def test_length() -> None:
    assert holds({"type": "length", "max": 4}, "房间 推荐")  # whitespace not counted
    assert not holds({"type": "length", "max": 3}, "房间推荐")
    assert holds({"type": "length", "unit": "words", "min": 3}, "I love 🍜")
    assert not holds({"type": "length", "min": 1}, "   ")


def test_language_by_script() -> None:
    zh, en = {"type": "language", "language": "zh"}, {"type": "language", "language": "en"}
    assert holds(zh, "我们谈到了相似和陕西。")
    assert holds(zh, "我喜欢iPhone和华为的手机屏幕")  # mostly Han
    assert not holds(zh, "I like pandas")  # wrong language
    assert holds(en, "I like pandas 🐼")
    assert not holds(en, "我喜欢熊猫")
    assert not holds(en, "🐼🐼 123")  # no letters at all


def test_keywords_counts_and_forbidden_words() -> None:
    exactly_three = {"type": "keywords", "words": ["cat"], "min_count": 3, "max_count": 3}
    assert holds(exactly_three, "CAT CAT CAT")
    assert not holds(exactly_three, "CAT CAT")
    assert holds({"type": "keywords", "words": ["相似", "陕西"]}, "相似的陕西")
    assert not holds({"type": "forbidden_words", "words": ["不"]}, "我不喜欢")
    assert holds({"type": "forbidden_words", "words": ["very"]}, "Really good")


def test_json_item_count_case_lines_affix_regex() -> None:
    json_city = {"type": "json_object", "required_keys": ["city"]}
    assert holds(json_city, '{"city": "成都"}')
    assert holds(json_city, '```json\n{"city": "Paris"}\n```')
    assert not holds(json_city, 'city: "Paris"')
    assert not holds(json_city, '["city"]')
    assert holds({"type": "item_count", "count": 3}, "cat, dog, fox")
    assert not holds({"type": "item_count", "count": 3}, "cat, dog,")
    assert holds({"type": "case", "case": "upper"}, "CAT CAT 🐱")
    assert not holds({"type": "case", "case": "upper"}, "😀")  # no letters
    assert holds({"type": "line_count", "max": 1}, "one line\n")
    assert not holds({"type": "line_count", "max": 1}, "two\nlines")
    assert holds({"type": "affix", "prefix": "答：", "suffix": "。"}, " 答：好的。 ")
    assert holds({"type": "regex", "pattern": r"\d{3}", "fullmatch": True}, "123")


def test_unknown_constraint_type_is_rejected() -> None:
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        CONSTRAINT.validate_python({"type": "sentiment"})


def test_pattern_reward_task_and_record_constraints() -> None:
    params = {"kind": "pattern", "constraints": [{"type": "language", "language": "en"}]}
    extra = {"reference": {"constraints": [{"type": "keywords", "words": ["panda"]}]}}
    assert reward(params, "I saw a panda", "x", **extra).score == 1.0
    assert reward(params, "I saw a koala", "x", **extra).score == 0.0
    fraction = {**params, "mode": "fraction"}
    result = reward(fraction, "I saw a koala", "x", **extra)
    assert result.score == 0.5
    assert [c["passed"] for c in result.details["checks"]] == [True, False]
    assert reward(params, "", "x", **extra).score == 0.0


def test_pattern_record_checks() -> None:
    bare = spec({"kind": "pattern"})
    assert check_reward_record(bare, record("x"))[0][0] == "reference.constraints"
    bad = record("x", reference={"constraints": [{"type": "length", "max": "many"}]})
    field, message = check_reward_record(bare, bad)[0]
    assert field.startswith("reference.constraints.0") and "integer" in message
