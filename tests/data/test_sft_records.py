"""SFT on task records: rendered with the task's prompt template as GRPO and eval render the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.data.sft_records import read_sft_records
from nemo_recipes.records.chat import RecordValidationError
from nemo_recipes.tasks import load_task_table, read_task_records

DATA = resolve_asset("sns_demo/train.jsonl", "data")


def test_task_records_become_the_prompt_grpo_sees_plus_the_answer() -> None:
    table = load_task_table("sns_demo")
    chats = read_sft_records(DATA, "task", "raise", table)
    tasks = read_task_records(DATA, table)
    assert chats.line_numbers == tasks.line_numbers and len(chats.records) == len(tasks.records) > 100
    for chat, record in zip(chats.records, tasks.records, strict=True):
        template = table.spec(record.task).prompt_template
        assert chat.messages[:-1] == record.prompt_messages(template)  # what GRPO and eval generate from
        assert (chat.messages[-1].role, chat.messages[-1].content) == ("assistant", record.answer_text)
        assert (chat.task, chat.id) == (record.task, record.id)


def test_a_task_record_read_as_chat_says_which_setting_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "tasks.jsonl"
    data.write_text(DATA.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(
        RecordValidationError,
        match=r"tasks.jsonl:1: question: this is a task record.*"
        r"sft.record_format: task",
    ):
        read_sft_records(data, "chat", "raise", None)
    skipped = read_sft_records(data, "task", "skip", load_task_table("toy_rl"))
    assert skipped.records == [] and skipped.skipped_line_count == 1  # its task is not in that table
    chat = resolve_asset("toy_chat/valid.jsonl", "data")  # the opposite mistake says so too
    with pytest.raises(RecordValidationError, match=r"valid.jsonl:1: messages: this looks like a chat"):
        read_sft_records(chat, "task", "raise", load_task_table("sns_demo"))
