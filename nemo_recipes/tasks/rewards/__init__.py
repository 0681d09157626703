"""The reward kinds: one module each, and the explicit table that maps a kind name to it.

A task's ``reward`` (and each eval metric) is a *reward spec*: a mapping with ``kind`` plus that
kind's params, validated into the kind's params model. Adding a kind = one module with a
``XParams`` model (``kind: Literal["name"]``) and ``score(response, record, params)``, plus one line
in :data:`REWARD_KINDS`. Every ``score`` returns a :class:`~nemo_recipes.tasks.result.RewardResult`
with a score in [0, 1]. Torch-free.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult
from nemo_recipes.tasks.rewards import (
    bleu,
    chrf,
    code_tests,
    composite,
    exact_match,
    llm_judge,
    pattern,
    ranking,
    rouge_l,
    set_f1,
    span_f1,
)

ScoreFn = Callable[[str, TaskRecord, Any], RewardResult]
CheckFn = Callable[[TaskRecord, Any], list[tuple[str, str]]]


@dataclass(frozen=True)
class RewardKind:
    params: type[StrictModel]
    score: ScoreFn
    check_record: CheckFn | None = None
    """Record-level requirements beyond the schema: (field, problem) pairs, empty when fine."""


REWARD_KINDS: dict[str, RewardKind] = {
    "exact_match": RewardKind(exact_match.ExactMatchParams, exact_match.score, exact_match.check_record),
    "set_f1": RewardKind(set_f1.SetF1Params, set_f1.score),
    "span_f1": RewardKind(span_f1.SpanF1Params, span_f1.score),
    "ranking": RewardKind(ranking.RankingParams, ranking.score),
    "bleu": RewardKind(bleu.BleuParams, bleu.score),
    "chrf": RewardKind(chrf.ChrfParams, chrf.score),
    "rouge_l": RewardKind(rouge_l.RougeLParams, rouge_l.score),
    "pattern": RewardKind(pattern.PatternParams, pattern.score, pattern.check_record),
    "code_tests": RewardKind(code_tests.CodeTestsParams, code_tests.score, code_tests.check_record),
    "llm_judge": RewardKind(llm_judge.LlmJudgeParams, llm_judge.score),
    "composite": RewardKind(composite.CompositeParams, composite.score, composite.check_record),
}

RewardSpec = Annotated[
    functools.reduce(operator.or_, [kind.params for kind in REWARD_KINDS.values()]),
    Field(discriminator="kind"),
]
# Composite parts are reward specs themselves: resolve the forward reference now the union exists.
composite.WeightedReward.model_rebuild(_types_namespace={"RewardSpec": RewardSpec})
composite.CompositeParams.model_rebuild(_types_namespace={"RewardSpec": RewardSpec})


def run_reward(spec: Any, response: str, record: TaskRecord) -> RewardResult:
    """Score ``response`` for ``record`` with a validated reward spec."""
    return REWARD_KINDS[spec.kind].score(response, record, spec)


def check_reward_record(spec: Any, record: TaskRecord) -> list[tuple[str, str]]:
    """What ``record`` lacks for this reward: (field, problem) pairs."""
    check = REWARD_KINDS[spec.kind].check_record
    return check(record, spec) if check is not None else []
