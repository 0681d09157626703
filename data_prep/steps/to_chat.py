"""Render task records as chat records (``nemo_recipes.records.chat.ChatRecord``) for SFT files.

The companion of ``to_task``: each document's record (the record the run would otherwise write: the
input record with its curated text field and step annotations in ``meta``, or the task record of a
``to_task`` before this step) is validated as a ``TaskRecord``, checked against the task table and
rendered by ``TaskRecord.to_chat`` with its task's ``prompt_template``, the one rendering GRPO, eval and
SFT share. A record that is not a valid task record is dropped (``invalid_task_record``) and its error
(file:line: field: problem) is listed in the report.
"""

from __future__ import annotations

from typing import Literal

from data_prep.documents import Doc, render_output
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.steps.to_task import cached_task_table, validated_task_record


class ToChatConfig(StepConfig):
    kind: Literal["to_chat"] = "to_chat"
    task_table: str
    """A shipped table name, YAML file or directory: records are checked against it, and each task's
    ``prompt_template`` renders its prompt."""


class ToChat:
    def __init__(self, config: ToChatConfig) -> None:
        self.config = config
        self.table = cached_task_table(config.task_table)

    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        try:
            data = render_output(doc)
        except ValueError as exc:  # a 'meta' that is not an object, with step annotations to merge
            stats.add_error(str(exc))
            return "invalid_task_record"
        record = validated_task_record(data, doc.source, self.table, stats)
        if record is None:
            return "invalid_task_record"
        chat = record.to_chat(self.table.spec(record.task).prompt_template)
        doc.output = chat.model_dump(exclude_none=True)
        return None


def build(config: ToChatConfig) -> ToChat:
    return ToChat(config)
