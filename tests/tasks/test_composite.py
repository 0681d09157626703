"""Composite rewards: weighted means, format gates, nesting, and the equivalence flag."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nemo_recipes.tasks import TaskSpec, TaskTable, score
from tests.tasks.reward_calls import reward, spec

TRANSLATION = {
    "kind": "composite",
    "parts": [
        {"weight": 0.5, "reward": {"kind": "bleu", "tokenize": "zh"}},
        {"weight": 0.5, "reward": {"kind": "chrf"}},
    ],
}
GATED = {
    "kind": "composite",
    "gate": {"kind": "pattern", "constraints": [{"type": "line_count", "max": 1}]},
    "parts": [{"reward": {"kind": "rouge_l"}}],
}


def test_weighted_mean_of_parts() -> None:
    result = reward(TRANSLATION, "我最喜欢的是熊猫。", "我最喜欢的是企鹅。")
    bleu, chrf = (part["score"] for part in result.details["parts"])
    assert result.score == pytest.approx(0.5 * bleu + 0.5 * chrf)
    unequal = {**TRANSLATION, "parts": [{**TRANSLATION["parts"][0], "weight": 1.5}, TRANSLATION["parts"][1]]}
    assert reward(unequal, "我最喜欢的是熊猫。", "我最喜欢的是企鹅。").score == pytest.approx(
        0.75 * bleu + 0.25 * chrf
    )


def test_format_gate() -> None:
    assert reward(GATED, "房间推荐", "房间推荐").score == 1.0
    failed = reward(GATED, "房间推荐\n还有别的", "房间推荐")
    assert failed.score == 0.0 and failed.details["reason"] == "format gate failed"


def test_nested_composites_and_bad_parts() -> None:
    nested = {"kind": "composite", "parts": [{"reward": GATED}, {"reward": {"kind": "exact_match"}}]}
    assert reward(nested, "房间推荐", "房间推荐").score == 1.0
    with pytest.raises(ValidationError, match="parts"):
        spec({"kind": "composite", "parts": []})
    with pytest.raises(ValidationError, match="tokenise"):
        spec({"kind": "composite", "parts": [{"reward": {"kind": "bleu", "tokenise": "zh"}}]})


def test_equivalence_threshold_for_continuous_rewards() -> None:
    table = TaskTable(
        {"trans": TaskSpec(capability="translation", reward=spec(TRANSLATION), equivalent_at=0.6)}
    )
    from tests.tasks.reward_calls import record

    close = score(table, "trans", "我最喜欢的是熊猫。", record("我最喜欢的是企鹅。", task="trans"))
    exact = score(table, "trans", "我最喜欢的是企鹅。", record("我最喜欢的是企鹅。", task="trans"))
    far = score(table, "trans", "hello", record("我最喜欢的是企鹅。", task="trans"))
    assert exact.equivalent and exact.score == pytest.approx(1.0)
    assert close.equivalent == (close.score >= 0.6)
    assert not far.equivalent
