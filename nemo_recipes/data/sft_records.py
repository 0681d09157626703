"""The SFT stage's records as chat records, from either record format (`sft.record_format`). Torch-free.

Chat records are read as they are; task records are checked against the run's task table and rendered
by `TaskRecord.to_chat`: the task's prompt template on the question (the prompt GRPO and eval generate
from, `TaskRecord.prompt_messages`), the answer as the assistant's turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from nemo_recipes.records.chat import ChatRecord, RecordReadResult, read_chat_records
from nemo_recipes.tasks import TaskTable, read_task_records


def read_sft_records(
    path: Path,
    record_format: Literal["chat", "task"],
    on_error: Literal["raise", "skip"],
    table: TaskTable | None,
) -> RecordReadResult[ChatRecord]:
    """The records of one file as chat records, with their line numbers and the errors of lines skipped.
    `table`: the run's task table (needed for task records)."""
    if record_format == "chat":
        return read_chat_records(path, on_error)
    if table is None:
        raise ValueError("task records need the run's task table")
    read = read_task_records(path, table, on_error)
    chats = [r.to_chat(table.spec(r.task).prompt_template) for r in read.records]
    return RecordReadResult(chats, read.line_numbers, read.errors)
