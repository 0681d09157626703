"""The task record: one SNS or general example, tagged with its task, language and split (torch-free).

A record is a question/answer pair or a chat conversation (``messages``, the last one from the
assistant, which is then the answer). It composes the chat schema of ``nemo_recipes.records.chat``: messages
are validated by :class:`~nemo_recipes.records.chat.ChatRecord`, errors are the same
:class:`~nemo_recipes.records.chat.RecordError` (file, line, field, message), and :meth:`TaskRecord.to_chat`
gives the ChatRecord the SFT stage trains on. Checks that need the task table (unknown task, answer
not a label, missing test code...) live in :mod:`nemo_recipes.tasks.table`. See ``docs/tasks.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from nemo_recipes.records.chat import (
    CONVERSATION_ERROR,
    ChatMessage,
    ChatRecord,
    RecordError,
    record_error_from_pydantic,
)

Split = Literal["train", "valid", "test"]
Language = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z]{2,3}(-[a-z]{2,3})?$")]
TaskName = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z][a-z0-9_]*$")]


def _rule_error(field: str, problem: str) -> PydanticCustomError:
    """An error whose field path is exact (rendered by nemo_recipes.records.chat like the chat rules)."""
    return PydanticCustomError(CONVERSATION_ERROR, "{field}: {problem}", {"field": field, "problem": problem})


class TaskRecord(BaseModel):
    """One example. Either ``question`` + ``answer``, or ``messages`` (answer = last assistant turn)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr
    task: TaskName
    language: Language
    """``zh``, ``en``, ... or ``source-target`` for translation (``zh-en``)."""
    split: Split
    capability: StrictStr | None = None
    """Defaults to the task table's capability; if given it must agree with it."""
    question: StrictStr | None = None
    answer: StrictStr | None = None
    messages: list[ChatMessage] | None = None
    reference: dict[str, Any] | None = None
    """Task-specific reference data a reward needs besides the answer (test code, constraints)."""
    meta: dict[str, Any] | None = None

    @field_validator("id", "question", "answer", "capability")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty or whitespace-only")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> TaskRecord:
        if self.messages is not None:
            if self.question is not None or self.answer is not None:
                raise _rule_error("messages", "give either question/answer or messages, not both")
            _check_conversation(self.messages)
            return self
        if self.question is None:
            raise _rule_error("question", "missing (a record needs question + answer, or messages)")
        if self.answer is None:
            raise _rule_error("answer", "missing: every record needs a reference answer")
        return self

    @property
    def answer_text(self) -> str:
        """The reference answer: ``answer``, or the content of the last (assistant) message."""
        if self.messages is not None:
            return self.messages[-1].content
        assert self.answer is not None
        return self.answer

    def prompt_messages(self, prompt_template: str | None = None) -> list[ChatMessage]:
        """The conversation up to the answer; ``{question}`` in the template is replaced."""
        if self.messages is not None:
            return list(self.messages[:-1])
        assert self.question is not None
        content = prompt_template.replace("{question}", self.question) if prompt_template else self.question
        return [ChatMessage(role="user", content=content)]

    def prompt_text(self) -> str:
        """The last user turn as plain text (what a judge rubric quotes)."""
        users = [m.content for m in self.prompt_messages() if m.role == "user"]
        return users[-1] if users else ""

    def to_chat(self, prompt_template: str | None = None) -> ChatRecord:
        """The record as a chat record for SFT (task and id kept, split/language go to meta)."""
        messages = [
            *self.prompt_messages(prompt_template),
            ChatMessage(role="assistant", content=self.answer_text),
        ]
        meta = {**(self.meta or {}), "split": self.split, "language": self.language}
        return ChatRecord(messages=messages, task=self.task, id=self.id, meta=meta)


def _check_conversation(messages: list[ChatMessage]) -> None:
    """The chat schema's conversation rules (an assistant turn last), reported at their field."""
    try:
        ChatRecord(messages=messages)
    except ValidationError as exc:
        detail = exc.errors()[0]
        ctx = detail.get("ctx") or {}
        raise _rule_error(ctx.get("field", "messages"), ctx.get("problem", detail["msg"])) from None


def parse_task_record_line(
    raw_line: bytes | str, file: str, line: int
) -> tuple[TaskRecord | None, list[RecordError]]:
    """Parse one JSONL line; returns the record or the list of its errors (never both)."""

    def error(message: str) -> list[RecordError]:
        return [RecordError(file=file, line=line, field="<line>", message=message)]

    if isinstance(raw_line, bytes):
        try:
            raw_line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, error(f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        payload = json.loads(raw_line)
    except json.JSONDecodeError as exc:
        return None, error(f"invalid JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(payload, dict):
        return None, error(f"a record must be a JSON object, got {type(payload).__name__}")
    try:
        return TaskRecord.model_validate(payload), []
    except ValidationError as exc:
        errors = [record_error_from_pydantic(detail, file, line) for detail in exc.errors()]
    if "messages" in payload and not {"task", "language", "split"} <= payload.keys():
        hint = (
            "this looks like a chat record (SFT data, sft.record_format: chat), not a task record: a task "
            "record has task, language and split, and question/answer or messages; docs/tasks.md"
        )
        errors.insert(0, RecordError(file=file, line=line, field="messages", message=hint))
    return None, errors


def iter_task_record_lines(path: Path | str) -> Iterator[tuple[int, TaskRecord | None, list[RecordError]]]:
    """Yield (1-based line, record or None, errors) for every non-blank line of a JSONL file."""
    path = Path(path)
    with path.open("rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            if raw_line.strip():
                record, errors = parse_task_record_line(raw_line, file=str(path), line=line_number)
                yield line_number, record, errors
