"""Reading inputs: JSONL and Parquet, malformed lines reported with file and line, never lost."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_prep.documents import read_input_file, render_output
from nemo_recipes.records.chat import RecordValidationError
from tests.data_prep.recipe_files import write_jsonl

ROWS = [
    {"id": "p1", "text": "今天的奶茶也太好喝了吧🧋", "likes": 3},
    "{not json",
    {"id": "p2", "body": "no text field"},
    {"id": "p3", "text": ["not", "a", "string"]},
    "[1, 2]",
    {"text": "   "},
    {"text": "no id here"},
]


def test_jsonl_malformed_lines_are_reported_and_counted(tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", ROWS)
    out = read_input_file(path)
    assert [d.id for d in out.docs] == ["p1", "posts:7"]
    assert out.docs[0].source == f"{path}:1"
    assert [(e.line, e.field) for e in out.errors] == [(2, "<line>"), (3, "text"), (4, "text"), (5, "<line>")]
    assert str(out.errors[0]).startswith(f"{path}:2: <line>: invalid JSON")
    assert out.blank_text_count == 1


def test_raise_mode_stops_at_the_first_bad_line(tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", ROWS)
    with pytest.raises(RecordValidationError, match=r"posts.jsonl:2: <line>: invalid JSON"):
        read_input_file(path, on_bad_record="raise")


def test_parquet_rows_are_numbered(tmp_path):
    path = tmp_path / "posts.parquet"
    table = pa.table({"id": ["a", "b", "c"], "content": ["first post", None, "third 🎉"]})
    pq.write_table(table, path)
    out = read_input_file(path, text_field="content")
    assert [d.text for d in out.docs] == ["first post", "third 🎉"]
    assert out.docs[1].source == f"{path}:3"
    assert [(e.line, e.field) for e in out.errors] == [(2, "content")]


def test_output_keeps_the_record_and_adds_meta(tmp_path):
    doc = read_input_file(write_jsonl(tmp_path / "a.jsonl", [ROWS[0]])).docs[0]
    doc.text = "changed"
    doc.meta["language"] = "zh"
    assert render_output(doc) == {"id": "p1", "text": "changed", "likes": 3, "meta": {"language": "zh"}}
