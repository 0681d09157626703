"""Format documents as task records (``nemo_recipes.records.task.TaskRecord``, see docs/tasks.md).

The question is ``question_template`` filled with ``{text}`` (the curated text) and any input record
field (``{title}``); the answer is the record's ``answer_field``. The language is fixed or taken from
the language step's annotation. Each record is validated by the schema (and by the task table, if one
is given); a document that does not make a valid record is dropped (``invalid_task_record``) and its
error (file:line: field: problem) is listed in the report.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import ValidationError

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from nemo_recipes.records.chat import record_error_from_pydantic
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.table import TaskTable, load_task_table


class ToTaskConfig(StepConfig):
    kind: Literal["to_task"] = "to_task"
    task: str
    split: Literal["train", "valid", "test"] = "train"
    answer_field: str
    question_template: str = "{text}"
    language: str | None = None
    """Fixed language; null: ``meta.language`` from a ``language`` step before this one."""
    capability: str | None = None
    task_table: str | None = None
    """A shipped table name, YAML file or directory: records are also checked against it."""


@cache
def cached_task_table(name: str) -> TaskTable:
    """The task table ``name`` (a shipped name, YAML file or directory), loaded once per process."""
    return load_task_table(name)


def validated_task_record(
    data: dict[str, Any], source: str, table: TaskTable | None, stats: StepStats
) -> TaskRecord | None:
    """``data`` as a TaskRecord the table accepts, or None once its errors (file:line: field: problem) are
    listed in ``stats``."""
    file, _, line = source.rpartition(":")
    try:
        record = TaskRecord.model_validate(data)
    except ValidationError as exc:
        for detail in exc.errors():
            stats.add_error(str(record_error_from_pydantic(detail, file, int(line or 0))))
        return None
    problems = table.check_record(record) if table else []
    for field, problem in problems:
        stats.add_error(f"{source}: {field}: {problem}")
    return None if problems else record


class ToTask:
    def __init__(self, config: ToTaskConfig) -> None:
        self.config = config
        self.table = cached_task_table(config.task_table) if config.task_table else None

    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        c = self.config
        try:
            question = c.question_template.format_map({**doc.record, "text": doc.text})
        except (KeyError, IndexError, ValueError) as exc:
            stats.add_error(f"{doc.source}: question_template: cannot fill it ({exc!r})")
            return "invalid_task_record"
        data: dict[str, Any] = {
            "id": doc.id,
            "task": c.task,
            "language": c.language or doc.meta.get("language"),
            "split": c.split,
            "question": question,
            "answer": doc.record.get(c.answer_field),
            "meta": {k: v for k, v in doc.meta.items() if k not in ("language",)} or None,
        }
        if c.capability:
            data["capability"] = c.capability
        record = validated_task_record(data, doc.source, self.table, stats)
        if record is None:
            return "invalid_task_record"
        doc.output = record.model_dump(exclude_none=True)
        return None


def build(config: ToTaskConfig) -> ToTask:
    return ToTask(config)
