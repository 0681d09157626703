"""Task records and the task table: validation errors name the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_recipes.config.loader import ConfigError
from nemo_recipes.records.chat import RecordValidationError
from nemo_recipes.tasks import (
    TaskRecord,
    UnknownTaskError,
    evaluate,
    load_task_table,
    read_task_records,
    score,
)

TABLE_YAML = """\
tasks:
  gender:
    capability: user_behavior
    languages: [zh, en]
    reward:
      kind: exact_match
      labels: [female, male]
      aliases: {female: [女性]}
  code:
    capability: general
    reward: {kind: code_tests}
  trans:
    capability: translation
    prompt_template: "Translate into English: {question}"
    reward: {kind: bleu}
    metrics:
      bleu: {kind: bleu}
      chrf: {kind: chrf}
"""
GOOD = {"id": "a", "task": "gender", "language": "zh", "split": "train", "question": "谁？", "answer": "女性"}


@pytest.fixture
def table_path(tmp_path: Path) -> Path:
    path = tmp_path / "table.yaml"
    path.write_text(TABLE_YAML, encoding="utf-8")
    return path


def write_lines(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    )
    return path


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({**GOOD, "task": "gendr"}, "task", "unknown task 'gendr' (did you mean 'gender'?)"),
        ({k: v for k, v in GOOD.items() if k != "answer"}, "answer", "missing"),
        ({**GOOD, "answer": "   "}, "answer", "must not be empty"),
        ({**GOOD, "question": ""}, "question", "must not be empty"),
        ({**GOOD, "answer": 3}, "answer", "valid string"),
        ({**GOOD, "split": "dev"}, "split", "'train', 'valid' or 'test'"),
        ({**GOOD, "language": "Chinese"}, "language", "pattern"),
        ({**GOOD, "answer": "男孩"}, "answer", "not one of the task's labels"),
        ({**GOOD, "capability": "translation"}, "capability", "differs from the task's 'user_behavior'"),
        ({**GOOD, "language": "fr"}, "language", "not one of the task's"),
        ({**GOOD, "label": "x"}, "label", "unknown top-level key"),
        ({**GOOD, "task": "code", "answer": "x"}, "reference.tests", "Field required"),
        ({**GOOD, "messages": [{"role": "user", "content": "hi"}]}, "messages", "not both"),
    ],
)
def test_bad_record_errors(tmp_path: Path, table_path: Path, row: dict, field: str, message: str) -> None:
    data = write_lines(tmp_path / "data.jsonl", [GOOD, row])
    with pytest.raises(RecordValidationError) as caught:
        read_task_records(data, load_task_table(table_path))
    error = caught.value.errors[0]
    assert (error.file, error.line, error.field) == (str(data), 2, field)
    assert message in error.message
    assert f"{data}:2: {field}: " in str(caught.value)


def test_chat_form_uses_the_chat_rules(tmp_path: Path, table_path: Path) -> None:
    chat = {k: v for k, v in GOOD.items() if k not in ("question", "answer")}
    ok = {
        **chat,
        "messages": [{"role": "user", "content": "谁？"}, {"role": "assistant", "content": "female"}],
    }
    ends_on_user = {**chat, "messages": [{"role": "user", "content": "谁？"}]}
    bad_role = {
        **chat,
        "messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "male"}],
    }
    data = write_lines(tmp_path / "d.jsonl", [ok, ends_on_user, bad_role, "{not json"])
    result = read_task_records(data, load_task_table(table_path), on_error="skip")
    assert [r.answer_text for r in result.records] == ["female"]
    assert [(e.line, e.field) for e in result.errors] == [
        (2, "messages"),
        (3, "messages[0].role"),
        (4, "<line>"),
    ]


def test_record_helpers(table_path: Path) -> None:
    record = TaskRecord.model_validate(
        {**GOOD, "task": "trans", "language": "zh-en", "meta": {"src": "demo"}}
    )
    template = load_task_table(table_path).spec("trans").prompt_template
    assert record.prompt_messages(template)[0].content == "Translate into English: 谁？"
    chat = record.to_chat(template)
    assert chat.messages[-1].content == "女性" and chat.task == "trans"
    assert chat.meta == {"src": "demo", "split": "train", "language": "zh-en"}


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "tasks:\n  t:\n    capability: x\n    reward: {kind: exact}\n",
            "is unknown (did you mean 'exact_match'?)",
        ),
        (
            "tasks:\n  t:\n    capability: x\n    rewrd: {kind: bleu}\n",
            "bad.yaml:4: unknown key 'tasks.t.rewrd'",
        ),
        ("tasks:\n  t:\n    capability: x\n    reward: {kind: bleu, tokenize: jp}\n", "tokenize"),
        (
            "tasks:\n  t:\n    capability: x\n    prompt_template: hi\n    reward: {kind: bleu}\n",
            "{question}",
        ),
        (
            "tasks:\n  t:\n    capability: x\n    sampling_weight: 0\n    reward: {kind: bleu}\n",
            "greater than 0",
        ),
        ("tasks:\n  Bad-Name:\n    capability: x\n    reward: {kind: bleu}\n", "pattern"),
        ("tasks: {}\n", "at least 1"),
    ],
)
def test_bad_table_errors(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_task_table(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_error_names_the_yaml_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tasks:\n  t:\n    capability: x\n    reward: {kind: bleu}\n    sampling_weight: -1\n")
    with pytest.raises(ConfigError, match=f"{path}:5: tasks.t.sampling_weight"):
        load_task_table(path)


def test_directory_of_tables_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("tasks:\n  one:\n    capability: x\n    reward: {kind: exact_match}\n")
    (tmp_path / "b.yaml").write_text("tasks:\n  two:\n    capability: y\n    reward: {kind: rouge_l}\n")
    table = load_task_table(tmp_path)
    assert table.names == ["one", "two"] and table.sources["two"] == str(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("tasks:\n  one:\n    capability: z\n    reward: {kind: bleu}\n")
    with pytest.raises(ConfigError, match="already defined in"):
        load_task_table(tmp_path)


def test_unknown_task_when_scoring(table_path: Path) -> None:
    table = load_task_table(table_path)
    record = TaskRecord.model_validate(GOOD)
    with pytest.raises(UnknownTaskError, match="did you mean 'gender'"):
        score(table, "gendre", "female", record)


def test_eval_metrics_default_to_the_reward(table_path: Path) -> None:
    table = load_task_table(table_path)
    gender = TaskRecord.model_validate(GOOD)
    assert set(evaluate(table, "gender", "女性", gender)) == {"reward"}
    trans = TaskRecord.model_validate({**GOOD, "task": "trans", "answer": "She is here."})
    metrics = evaluate(table, "trans", "She is here.", trans)
    assert set(metrics) == {"bleu", "chrf"} and all(m.score == pytest.approx(1.0) for m in metrics.values())


def test_shipped_table_by_name() -> None:
    assert "sns_ner" in load_task_table("sns_demo").names
    with pytest.raises(ConfigError, match="neither a path nor a shipped tasks"):
        load_task_table("no_such_table")


def test_an_unknown_reward_kind_names_its_line_and_the_nearest_kind(tmp_path: Path) -> None:
    path = tmp_path / "table.yaml"
    path.write_text(
        "tasks:\n  sentiment:\n    capability: classification\n    reward:\n      kind: exact_mach\n"
    )
    with pytest.raises(ConfigError) as e:
        load_task_table(path)
    msg = str(e.value)
    assert f"{path}:5: tasks.sentiment.reward.kind = 'exact_mach' is unknown" in msg
    assert "(did you mean 'exact_match'?)" in msg and "{'kind'" not in msg


def test_an_unknown_constraint_type_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "table.yaml"
    path.write_text(
        "tasks:\n  fmt:\n    capability: general\n    reward:\n      kind: pattern\n"
        "      constraints:\n        - type: lenght\n          max_words: 3\n"
    )
    with pytest.raises(ConfigError, match=r"type = 'lenght' is unknown \(did you mean 'length'\?\)"):
        load_task_table(path)
