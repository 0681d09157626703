"""The SNS task suite: task records, the task table, and a reward per task type (torch-free).

Public API (what the GRPO and eval stages call)::

    table = load_task_table("sns_demo")                # a shipped table, a YAML file or a directory
    records = read_task_records(path, table).records   # checked against the table
    result = score(table, record.task, response, record)   # RewardResult(score, details, equivalent)
    results = score_batch(table, responses, records)
    metrics = evaluate(table, record.task, response, record)

See ``docs/tasks.md``.
"""

from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.registry import evaluate, score, score_batch
from nemo_recipes.tasks.result import RewardResult
from nemo_recipes.tasks.rewards import REWARD_KINDS, RewardKind, RewardSpec, run_reward
from nemo_recipes.tasks.table import (
    TaskReadResult,
    TaskSpec,
    TaskTable,
    UnknownTaskError,
    load_task_table,
    read_task_records,
)

__all__ = [
    "REWARD_KINDS",
    "RewardKind",
    "RewardResult",
    "RewardSpec",
    "TaskReadResult",
    "TaskRecord",
    "TaskSpec",
    "TaskTable",
    "UnknownTaskError",
    "evaluate",
    "load_task_table",
    "read_task_records",
    "run_reward",
    "score",
    "score_batch",
]
