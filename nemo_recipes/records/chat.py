"""The chat record schema and the strict JSONL reader for it (torch-free).

One JSON object per line::

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "task": "reverse", "id": "toy-00001", "meta": {"source": "..."}}

Unknown top-level keys are errors: free-form metadata belongs under ``meta``. Every problem is
reported as a :class:`RecordError` naming the file, the 1-based line, the field path
(``messages[1].role``) and what is wrong. See ``docs/data-format.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

Role = Literal["system", "user", "assistant"]

# Error type used by the cross-message rules; its ctx carries the precise field path.
CONVERSATION_ERROR = "conversation_rule"


class ChatMessage(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: StrictStr

    @field_validator("content")
    @classmethod
    def _content_not_blank(cls, content: str) -> str:
        if not content.strip():
            raise ValueError("must not be empty or whitespace-only")
        return content


class ChatRecord(BaseModel):
    """A conversation to train on, optionally tagged with its task and an id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[ChatMessage]
    task: StrictStr | None = None
    id: StrictStr | None = None
    meta: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _conversation_rules(self) -> ChatRecord:
        if not self.messages:
            raise PydanticCustomError(
                CONVERSATION_ERROR,
                "{field}: {problem}",
                {"field": "messages", "problem": "must hold at least one message"},
            )
        if not any(message.role == "assistant" for message in self.messages):
            raise PydanticCustomError(
                CONVERSATION_ERROR,
                "{field}: {problem}",
                {"field": "messages", "problem": "has no assistant message (at least one is required)"},
            )
        last = len(self.messages) - 1
        if self.messages[last].role != "assistant":
            raise PydanticCustomError(
                CONVERSATION_ERROR,
                "{field}: {problem}",
                {
                    "field": f"messages[{last}].role",
                    "problem": f"conversation ends on a {self.messages[last].role!r} message; "
                    "the last message must be from the assistant",
                },
            )
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, without the optional fields that are unset."""
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class RecordError:
    """One problem found in one line of a JSONL file."""

    file: str
    line: int  # 1-based
    field: str  # e.g. "messages[1].role"; "<line>" when the line is not a JSON object
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class RecordValidationError(ValueError):
    """Raised by the record readers with ``on_error="raise"``; carries the line's errors."""

    def __init__(self, errors: list[RecordError]) -> None:
        self.errors = errors
        super().__init__("invalid record\n  " + "\n  ".join(str(error) for error in errors))


R = TypeVar("R")


@dataclass
class RecordReadResult(Generic[R]):
    """What a read of chat or task records produced: the valid records (with their line numbers) and
    every error of the lines skipped under `on_error="skip"`."""

    records: list[R] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)  # 1-based line of each record
    errors: list[RecordError] = field(default_factory=list)

    def add(self, record: R | None, line: int, errors: list[RecordError], on_error: str) -> None:
        """Keep one line's record, or its errors: raised at once under `on_error="raise"`."""
        if errors:
            if on_error == "raise":
                raise RecordValidationError(errors)
            self.errors.extend(errors)
            return
        assert record is not None
        self.records.append(record)
        self.line_numbers.append(line)

    @property
    def skipped_line_count(self) -> int:
        """Number of distinct lines dropped (a line may carry several errors)."""
        return len({(error.file, error.line) for error in self.errors})


def read_chat_records(
    path: Path | str, on_error: Literal["raise", "skip"] = "raise"
) -> RecordReadResult[ChatRecord]:
    """Read and validate a JSONL file of chat records.

    Blank lines are ignored. With ``on_error="raise"`` the first bad line raises
    :class:`RecordValidationError`; with ``"skip"`` bad lines are dropped and every one of their
    errors is kept in ``RecordReadResult.errors``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    result = RecordReadResult()
    with path.open("rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            if not raw_line.strip():
                continue
            record, errors = parse_chat_record_line(raw_line, file=str(path), line=line_number)
            result.add(record, line_number, errors, on_error)
    return result


def parse_chat_record_line(
    raw_line: bytes | str, file: str, line: int
) -> tuple[ChatRecord | None, list[RecordError]]:
    """Parse one JSONL line; returns the record or the list of its errors (never both)."""

    def error(field_path: str, message: str) -> list[RecordError]:
        return [RecordError(file=file, line=line, field=field_path, message=message)]

    if isinstance(raw_line, bytes):
        try:
            raw_line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, error("<line>", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        payload = json.loads(raw_line)
    except json.JSONDecodeError as exc:
        return None, error("<line>", f"invalid JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(payload, dict):
        return None, error("<line>", f"a record must be a JSON object, got {type(payload).__name__}")
    if "question" in payload and "messages" not in payload:
        return None, error(
            "question",
            "this is a task record (question/answer), not a chat record: SFT reads task records with "
            "sft.record_format: task (and the run's task_table; docs/tasks.md)",
        )
    try:
        return ChatRecord.model_validate(payload), []
    except ValidationError as exc:
        return None, [record_error_from_pydantic(detail, file, line) for detail in exc.errors()]


def record_error_from_pydantic(detail: Any, file: str, line: int) -> RecordError:
    """Turn one pydantic error into a RecordError with a readable field path and message."""
    if detail["type"] == CONVERSATION_ERROR:
        ctx = detail["ctx"]
        return RecordError(file=file, line=line, field=ctx["field"], message=ctx["problem"])
    location = detail["loc"]
    field_path = _field_path(location)
    if detail["type"] == "extra_forbidden":
        where = "top-level key" if len(location) == 1 else "key"
        hint = "; put extra metadata under 'meta'" if len(location) == 1 else ""
        return RecordError(file=file, line=line, field=field_path, message=f"unknown {where}{hint}")
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] != "missing":
        message += f" (got {_short_repr(detail.get('input'))})"
    return RecordError(file=file, line=line, field=field_path, message=message)


def _field_path(location: tuple[str | int, ...]) -> str:
    """('messages', 1, 'role') -> 'messages[1].role'."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "<record>"


def _short_repr(value: Any, max_chars: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."
