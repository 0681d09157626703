"""composite: a weighted mean of other rewards, optionally behind a format gate.

score = sum(weight_i * score_i) / sum(weight_i) over ``parts``; if a ``gate`` reward is given and
scores below ``gate_threshold`` the result is 0.0 (the parts are then not computed). Parts and gate
are full reward specs of any kind, composites included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PositiveFloat

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult

if TYPE_CHECKING:
    from nemo_recipes.tasks.rewards import RewardSpec


class WeightedReward(StrictModel):
    weight: PositiveFloat = 1.0
    reward: RewardSpec


class CompositeParams(StrictModel):
    kind: Literal["composite"] = "composite"
    parts: list[WeightedReward] = Field(min_length=1)
    gate: RewardSpec | None = None
    gate_threshold: float = Field(1.0, gt=0, le=1)


def score(response: str, record: TaskRecord, params: CompositeParams) -> RewardResult:
    from nemo_recipes.tasks.rewards import run_reward  # the kind table imports this module

    details: dict[str, Any] = {}
    if params.gate is not None:
        gate = run_reward(params.gate, response, record)
        details["gate"] = {"kind": params.gate.kind, "score": gate.score, **gate.details}
        if gate.score < params.gate_threshold:
            return RewardResult(0.0, {**details, "reason": "format gate failed"})
    total_weight = sum(part.weight for part in params.parts)
    value, parts = 0.0, []
    for part in params.parts:
        result = run_reward(part.reward, response, record)
        value += part.weight * result.score
        parts.append({"kind": part.reward.kind, "weight": part.weight, "score": result.score})
    return RewardResult(min(value / total_weight, 1.0), {**details, "parts": parts})


def check_record(record: TaskRecord, params: CompositeParams) -> list[tuple[str, str]]:
    from nemo_recipes.tasks.rewards import check_reward_record

    specs = [part.reward for part in params.parts] + ([params.gate] if params.gate is not None else [])
    return [problem for spec in specs for problem in check_reward_record(spec, record)]
