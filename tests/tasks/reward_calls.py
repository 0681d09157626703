"""Task records, reward specs and reward calls built for the task tests."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from nemo_recipes.tasks import RewardResult, RewardSpec, TaskRecord, run_reward

_SPEC = TypeAdapter(RewardSpec)


def record(
    answer: str, question: str = "q", task: str = "t", language: str = "en", **extra: Any
) -> TaskRecord:
    return TaskRecord(
        id="r1", task=task, language=language, split="train", question=question, answer=answer, **extra
    )


def spec(raw: dict[str, Any]) -> Any:
    return _SPEC.validate_python(raw)


def reward(raw: dict[str, Any], response: str, answer: str, **extra: Any) -> RewardResult:
    return run_reward(spec(raw), response, record(answer, **extra))
