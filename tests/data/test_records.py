"""The chat record schema and reader: what is accepted, and that every error names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_recipes.records.chat import ChatRecord, RecordError, RecordValidationError, read_chat_records

GOOD = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "label: 苹果 🍎"},
        {"role": "assistant", "content": "fruit fruit"},
    ],
    "task": "label",
    "id": "r1",
    "meta": {"source": "unit-test", "weight": 2},
}


def _messages(*pairs: tuple[str, object]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


# (line text, expected field path, a fragment of the expected message)
BAD_LINES = [
    (
        {"messages": _messages(("user", "hi"), ("bot", "yo"))},
        "messages[1].role",
        "'system', 'user' or 'assistant' (got 'bot')",
    ),
    ({"messages": _messages(("user", "  "), ("assistant", "yo"))}, "messages[0].content", "whitespace"),
    ({"messages": _messages(("user", "hi"), ("assistant", ""))}, "messages[1].content", "empty"),
    ({"messages": _messages(("user", "hi"), ("assistant", 7))}, "messages[1].content", "valid string"),
    ({"messages": _messages(("user", "hi"))}, "messages", "no assistant message"),
    (
        {"messages": _messages(("assistant", "hi"), ("user", "and?"))},
        "messages[1].role",
        "ends on a 'user' message",
    ),
    (
        {"messages": _messages(("user", "hi"), ("assistant", "yo"), ("system", "x"))},
        "messages[2].role",
        "last message must be from the assistant",
    ),
    ({"messages": []}, "messages", "at least one message"),
    ({"task": "x"}, "messages", "Field required"),
    ({**GOOD, "source": "web"}, "source", "unknown top-level key; put extra metadata under 'meta'"),
    (
        {"messages": [{"role": "assistant", "content": "yo", "name": "bob"}]},
        "messages[0].name",
        "unknown key",
    ),
    ({**GOOD, "task": 3}, "task", "valid string"),
    ({**GOOD, "meta": [1]}, "meta", "valid dictionary"),
    ({**GOOD, "messages": "hi"}, "messages", "valid list"),
    ("[1, 2]", "<line>", "must be a JSON object, got list"),
    ('{"messages": [', "<line>", "invalid JSON"),
]


def _write_lines(path: Path, lines: list[object]) -> Path:
    text = "".join(
        (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_record_is_read_with_meta(tmp_path: Path) -> None:
    result = read_chat_records(_write_lines(tmp_path / "ok.jsonl", [GOOD]), on_error="raise")
    assert result.errors == []
    assert result.line_numbers == [1]
    (record,) = result.records
    assert record.task == "label" and record.id == "r1"
    assert record.meta == {"source": "unit-test", "weight": 2}
    assert [message.role for message in record.messages] == ["system", "user", "assistant"]
    assert record.to_json_dict() == GOOD


def test_optional_fields_may_be_absent() -> None:
    record = ChatRecord.model_validate({"messages": _messages(("assistant", "hello"))})
    assert (record.task, record.id, record.meta) == (None, None, None)
    assert record.to_json_dict() == {"messages": [{"role": "assistant", "content": "hello"}]}


@pytest.mark.parametrize(("bad_line", "field", "fragment"), BAD_LINES)
def test_raise_names_file_line_field_and_problem(
    tmp_path: Path, bad_line: object, field: str, fragment: str
) -> None:
    path = _write_lines(tmp_path / "data.jsonl", [GOOD, "", bad_line, GOOD])  # the bad line is line 3
    with pytest.raises(RecordValidationError) as raised:
        read_chat_records(path, on_error="raise")
    first = raised.value.errors[0]
    assert (first.file, first.line, first.field) == (str(path), 3, field)
    assert fragment in first.message
    assert f"{path}:3: {field}: " in str(raised.value)


def test_invalid_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"messages": "\xff"}\n')
    result = read_chat_records(path, on_error="skip")
    assert len(result.records) == 1
    assert [(error.line, error.field) for error in result.errors] == [(2, "<line>")]
    assert "UTF-8" in result.errors[0].message


def test_skip_keeps_every_error_and_every_good_record(tmp_path: Path) -> None:
    lines: list[object] = [GOOD]
    for bad_line, _, _ in BAD_LINES:
        lines += [bad_line, GOOD]
    path = _write_lines(tmp_path / "mixed.jsonl", lines)
    result = read_chat_records(path, on_error="skip")
    assert len(result.records) == len(BAD_LINES) + 1
    assert result.line_numbers == list(range(1, len(lines) + 1, 2))
    assert result.skipped_line_count == len(BAD_LINES)
    assert sorted({error.line for error in result.errors}) == list(range(2, len(lines) + 1, 2))
    # Each bad line's first error is the one the raise mode reports.
    first_error_of_line: dict[int, RecordError] = {}
    for error in result.errors:
        first_error_of_line.setdefault(error.line, error)
    assert [first_error_of_line[line].field for line in sorted(first_error_of_line)] == [
        f for _, f, _ in BAD_LINES
    ]


def test_skip_keeps_several_errors_of_one_line(tmp_path: Path) -> None:
    bad = {"messages": _messages(("user", ""), ("robot", "x")), "extra": 1}
    result = read_chat_records(_write_lines(tmp_path / "multi.jsonl", [bad]), on_error="skip")
    assert result.records == []
    assert result.skipped_line_count == 1
    assert {error.field for error in result.errors} == {"messages[0].content", "messages[1].role", "extra"}
    assert all(error.line == 1 for error in result.errors)


def test_blank_lines_are_ignored_but_line_numbers_stay_physical(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "gaps.jsonl", ["", GOOD, "   ", "", GOOD])
    result = read_chat_records(path, on_error="raise")
    assert result.line_numbers == [2, 5]


def test_unknown_on_error_mode_is_refused(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "ok.jsonl", [GOOD])
    with pytest.raises(ValueError, match="on_error"):
        read_chat_records(path, on_error="ignore")  # type: ignore[arg-type]


def test_record_error_formats_as_file_line_field_message() -> None:
    error = RecordError(file="a.jsonl", line=7, field="messages[0].role", message="bad")
    assert str(error) == "a.jsonl:7: messages[0].role: bad"
