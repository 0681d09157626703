"""llm_judge: an LLM judge's rubric score, normalised to [0, 1] (see :mod:`nemo_recipes.tasks.judge`).

The judge sees the record's prompt (last user turn), its reference answer and the extracted
response. Open-ended tasks without a verifiable answer use it, and so does rehearsal best-of-n.
"""

from __future__ import annotations

from typing import Literal

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.judge import JudgeConfig, get_judge_client
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import ExtractConfig, extract_answer


class LlmJudgeParams(StrictModel):
    kind: Literal["llm_judge"] = "llm_judge"
    extract: ExtractConfig = ExtractConfig()
    judge: JudgeConfig


def score(response: str, record: TaskRecord, params: LlmJudgeParams) -> RewardResult:
    extracted = extract_answer(response, params.extract)
    if extracted is None:
        return zero("empty output")
    verdict = get_judge_client(params.judge).judge(record.prompt_text(), record.answer_text, extracted)
    details = {
        "raw_score": verdict.raw_score,
        "parsed": verdict.raw_score is not None,
        "cached": verdict.cached,
        "reply": verdict.reply[:500],
    }
    return RewardResult(verdict.score, details)
