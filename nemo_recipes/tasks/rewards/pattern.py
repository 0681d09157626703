"""pattern: the share (or all-or-nothing) of verifiable constraints the response satisfies.

Constraints come from the task (``params.constraints``, the same for every record) and from the
record (``reference.constraints``, e.g. "use the word X three times"); see
:mod:`nemo_recipes.tasks.constraints`. ``mode: all`` scores 1.0 only if every constraint holds
(IFEval's strict prompt-level accuracy); ``mode: fraction`` scores the satisfied share.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.constraints import Constraint
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import ExtractConfig, extract_answer


class PatternParams(StrictModel):
    kind: Literal["pattern"] = "pattern"
    extract: ExtractConfig = ExtractConfig()
    constraints: list[Constraint] = Field(default_factory=list)
    mode: Literal["all", "fraction"] = "all"


class PatternReference(BaseModel):
    """What a record may add under ``reference`` (other keys are left to other rewards)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    constraints: list[Constraint] = []


def all_constraints(record: TaskRecord, params: PatternParams) -> list[Constraint]:
    return [*params.constraints, *PatternReference.model_validate(record.reference or {}).constraints]


def score(response: str, record: TaskRecord, params: PatternParams) -> RewardResult:
    constraints = all_constraints(record, params)
    if not constraints:
        raise ValueError(f"record {record.id!r}: the pattern reward has no constraints to check")
    text = extract_answer(response, params.extract)
    if text is None:
        return zero("empty output", constraints=len(constraints))
    passed = [constraint.check(text) for constraint in constraints]
    checks = [{"type": c.type, "passed": ok} for c, ok in zip(constraints, passed, strict=True)]
    value = sum(passed) / len(passed) if params.mode == "fraction" else float(all(passed))
    return RewardResult(value, {"checks": checks})


def check_record(record: TaskRecord, params: PatternParams) -> list[tuple[str, str]]:
    try:
        constraints = all_constraints(record, params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return [(f"reference.{where}", first["msg"])]
    if not constraints:
        return [("reference.constraints", "the task has no constraints and the record gives none")]
    return []
