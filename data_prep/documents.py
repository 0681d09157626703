"""Documents flowing through `redone data`: reading JSONL / Parquet inputs and the shard files between steps.

A malformed input line (not JSON, not an object, no string text field) is never dropped silently:
it becomes a :class:`~nemo_recipes.records.chat.RecordError` naming the file and 1-based line (the row
for Parquet), is counted in the report, and stops the run with ``on_bad_record: raise``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nemo_recipes.records.chat import RecordError, RecordValidationError

InputFormat = Literal["auto", "jsonl", "parquet"]


@dataclass
class Doc:
    """One document: its text (what steps read and rewrite), where it came from, and the input record."""

    id: str
    text: str
    source: str  # "file:line" (Parquet: "file:row")
    record: dict[str, Any]  # the input record as read; written back with the final text
    meta: dict[str, Any] = field(default_factory=dict)  # annotations added by steps (language, ...)
    output: dict[str, Any] | None = None  # set by a formatting step: written instead of `record`
    text_field: str = "text"  # the record key the text was read from (and is written back to)

    def to_json(self) -> dict[str, Any]:
        return {
            "text_field": self.text_field,
            "id": self.id,
            "text": self.text,
            "source": self.source,
            "record": self.record,
            "meta": self.meta,
            "output": self.output,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Doc:
        return cls(**data)


@dataclass
class ReadOutcome:
    """What reading one input file gave: documents in file order plus every malformed line."""

    docs: list[Doc] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    blank_text_count: int = 0


def detect_format(path: Path, fmt: InputFormat) -> Literal["jsonl", "parquet"]:
    """The reader for a file: explicit, or by suffix (.parquet / .jsonl, .json)."""
    if fmt != "auto":
        return fmt
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise ValueError(f"{path}: cannot tell the format from the suffix; set inputs.format")


def _to_doc(
    payload: Any, file: str, line: int, text_field: str, id_field: str | None
) -> tuple[Doc | None, RecordError | None]:
    def error(where: str, message: str) -> tuple[None, RecordError]:
        return None, RecordError(file=file, line=line, field=where, message=message)

    if not isinstance(payload, dict):
        return error("<line>", f"a record must be a JSON object, got {type(payload).__name__}")
    if text_field not in payload:
        return error(text_field, "missing (the text field set by inputs.text_field)")
    text = payload[text_field]
    if not isinstance(text, str):
        return error(text_field, f"must be a string (got {type(text).__name__})")
    doc_id = payload.get(id_field) if id_field else None
    if doc_id is None:
        doc_id = f"{Path(file).stem}:{line}"
    return Doc(str(doc_id), text, f"{file}:{line}", payload, text_field=text_field), None


def read_input_file(
    path: Path,
    fmt: InputFormat = "auto",
    text_field: str = "text",
    id_field: str | None = "id",
    on_bad_record: Literal["skip", "raise"] = "skip",
) -> ReadOutcome:
    """Read one JSONL or Parquet file; bad lines raise or are kept in ``errors`` (never silently lost)."""
    out = ReadOutcome()
    reader = _jsonl_payloads if detect_format(path, fmt) == "jsonl" else _parquet_payloads
    for line, payload, problem in reader(path):
        doc, error = (None, problem) if problem else _to_doc(payload, str(path), line, text_field, id_field)
        if error is not None:
            if on_bad_record == "raise":
                raise RecordValidationError([error])
            out.errors.append(error)
        elif doc is not None and not doc.text.strip():
            out.blank_text_count += 1
        elif doc is not None:
            out.docs.append(doc)
    return out


def _jsonl_payloads(path: Path) -> Iterator[tuple[int, Any, RecordError | None]]:
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield line, json.loads(raw.decode("utf-8")), None
            except UnicodeDecodeError as exc:
                msg = f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
                yield line, None, RecordError(str(path), line, "<line>", msg)
            except json.JSONDecodeError as exc:
                msg = f"invalid JSON: {exc.msg} (column {exc.colno})"
                yield line, None, RecordError(str(path), line, "<line>", msg)


def _parquet_payloads(path: Path) -> Iterator[tuple[int, Any, RecordError | None]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        for payload in batch.to_pylist():
            row += 1
            yield row, payload, None


def write_docs(path: Path, docs: list[Doc]) -> None:
    """Write a shard of documents atomically (a crash never leaves a half-written shard behind)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc.to_json(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_docs(path: Path) -> list[Doc]:
    """Read a shard written by :func:`write_docs`."""
    with path.open(encoding="utf-8") as handle:
        return [Doc.from_json(json.loads(line)) for line in handle if line.strip()]


def render_output(doc: Doc) -> dict[str, Any]:
    """The record a user gets: the formatted record, or the input record with the final text and meta."""
    if doc.output is not None:
        return doc.output
    record = dict(doc.record)
    record[doc.text_field] = doc.text
    if doc.meta:
        existing = record.get("meta")
        if existing is not None and not isinstance(existing, dict):
            raise ValueError(f"{doc.source}: 'meta' is not an object; cannot add the annotations {doc.meta}")
        record["meta"] = {**(existing or {}), **doc.meta}
    return record
