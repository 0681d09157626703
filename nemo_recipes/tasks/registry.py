"""Scoring entry points the GRPO and eval stages call: route a response to its task's reward.

The same functions score training rewards (:func:`score`, :func:`score_batch`) and evaluation
(:func:`evaluate`, whose metrics default to the reward), so a task is never scored two ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult
from nemo_recipes.tasks.rewards import run_reward
from nemo_recipes.tasks.table import TaskTable


def score(table: TaskTable, task_name: str, response: str, record: TaskRecord) -> RewardResult:
    """The training reward of ``response`` to ``record`` under task ``task_name``.

    ``equivalent`` is set: the score reaches the task's ``equivalent_at``.
    """
    spec = table.spec(task_name)
    result = run_reward(spec.reward, response, record)
    return replace(result, equivalent=result.score >= spec.equivalent_at)


def score_batch(
    table: TaskTable, responses: Sequence[str], records: Sequence[TaskRecord], max_workers: int = 4
) -> list[RewardResult]:
    """Rewards for aligned responses and records (each routed by ``record.task``), in order.

    Threads overlap the slow kinds (sandboxed code, judge requests; the judge has its own
    concurrency limit); ``max_workers=1`` scores sequentially.
    """
    if len(responses) != len(records):
        raise ValueError(f"{len(responses)} responses for {len(records)} records")
    for record in records:
        table.spec(record.task)  # unknown tasks fail before any work starts
    if max_workers <= 1 or len(records) <= 1:
        return [score(table, r.task, text, r) for text, r in zip(responses, records, strict=True)]
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="reward") as pool:
        futures = [
            pool.submit(score, table, r.task, text, r) for text, r in zip(responses, records, strict=True)
        ]
        return [future.result() for future in futures]


def evaluate(table: TaskTable, task_name: str, response: str, record: TaskRecord) -> dict[str, RewardResult]:
    """Every eval metric of the task for one response (``{"reward": ...}`` unless the table says)."""
    spec = table.spec(task_name)
    return {name: run_reward(metric, response, record) for name, metric in spec.eval_metrics().items()}
