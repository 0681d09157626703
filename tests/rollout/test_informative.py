"""DAPO's dynamic-sampling filter, `RolloutGroup.informative`: a group is kept when its rewards are
not all equal, compared exactly (0.5 and 0.5000001 differ, so its advantages are not all 0)."""

from __future__ import annotations

import pytest

from nemo_recipes.records.rollout import Completion, RolloutGroup


def group(rewards: list[float]) -> RolloutGroup:
    completions = [Completion([7], [-1.0], "stop") for _ in rewards]
    return RolloutGroup(0, "task", [1, 2], completions, rewards, [r == 1.0 for r in rewards])


@pytest.mark.parametrize(
    ("rewards", "informative"),
    [
        ([1.0, 1.0, 1.0], False),
        ([0.0, 0.0, 0.0], False),
        ([1.0, 0.0, 1.0], True),
        ([0.5, 0.5, 0.5000001], True),
    ],
)
def test_informative_compares_rewards_exactly(rewards: list[float], informative: bool) -> None:
    assert group(rewards).informative is informative
