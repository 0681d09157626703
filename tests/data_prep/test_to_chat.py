"""`to_chat`: task records rendered as chat records by `TaskRecord.to_chat`, bad records reported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from data_prep.recipe import DataRecipe
from data_prep.runner import run_recipe
from nemo_recipes.data.sft_records import read_sft_records
from nemo_recipes.records.chat import ChatRecord
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks import load_task_table
from tests.conftest import REPO, run_cli
from tests.data_prep.recipe_files import make_recipe, read_output, write_jsonl, write_recipe

TRAIN = REPO / "nemo_recipes/assets/data/sns_demo/train.jsonl"
TABLE = load_task_table("sns_demo")


def _one_record_per_task() -> list[dict]:
    """The first record of each task of the shipped SNS set (translation tasks have prompt templates)."""
    firsts: dict[str, dict] = {}
    for line in TRAIN.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["task"] in TABLE.tasks:
            firsts.setdefault(record["task"], record)
    return list(firsts.values())


def _expected(record: dict) -> dict:
    task_record = TaskRecord.model_validate(record)
    return task_record.to_chat(TABLE.spec(task_record.task).prompt_template).model_dump(exclude_none=True)


def _chat_recipe(tmp_path: Path, paths: list[Path], steps: list[dict] | None = None) -> DataRecipe:
    steps = steps or [{"kind": "to_chat", "task_table": "sns_demo"}]
    return make_recipe(
        tmp_path, paths, steps, inputs=[{"paths": [str(p) for p in paths], "text_field": "question"}]
    )


def test_each_task_record_becomes_its_to_chat_and_bad_ones_are_reported(tmp_path):
    good = _one_record_per_task()
    templated = [r for r in good if TABLE.spec(r["task"]).prompt_template]
    assert len(good) >= 5 and templated  # the prompt template is exercised
    unknown = {**good[0], "id": "bad-task", "task": good[0]["task"][:-1] + "x"}
    no_answer = {k: v for k, v in good[1].items() if k != "answer"} | {"id": "bad-answer"}
    rows = [good[0], unknown, *good[1:3], no_answer, *good[3:]]
    path = write_jsonl(tmp_path / "tasks.jsonl", rows)

    stats = {s.name: s for s in run_recipe(_chat_recipe(tmp_path, [path]))}
    out = read_output(tmp_path / "out")

    assert out == [_expected(r) for r in good]
    assert [ChatRecord.model_validate(r).model_dump(exclude_none=True) for r in out] == out
    for record in templated:  # the user turn is the task's template around the question
        chat = next(r for r in out if r["id"] == record["id"])
        prompt = TABLE.spec(record["task"]).prompt_template.replace("{question}", record["question"])
        assert chat["messages"] == [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": record["answer"]},
        ]
    step = stats["to_chat"]
    assert (step.docs_in, step.docs_kept, dict(step.dropped)) == (
        len(rows),
        len(good),
        {"invalid_task_record": 2},
    )
    assert step.errors[0].startswith(f"{path}:2: task: unknown task {unknown['task']!r}")
    assert f"(did you mean {good[0]['task']!r}?)" in step.errors[0]
    assert step.errors[1] == f"{path}:5: answer: missing: every record needs a reference answer"
    report = json.loads((tmp_path / "out/report.json").read_text(encoding="utf-8"))
    assert next(s for s in report["steps"] if s["name"] == "to_chat")["errors"] == step.errors

    # The SFT reader takes the output as chat records, equal to what it renders from the task records
    # themselves, and it reports the same two lines as errors.
    shard = tmp_path / "out/data/shard-00000.jsonl"
    as_chat = read_sft_records(shard, "chat", "raise", None)
    as_task = read_sft_records(path, "task", "skip", TABLE)
    assert as_chat.records == as_task.records and len(as_chat.records) == len(good)
    assert sorted(str(e) for e in as_task.errors) == sorted(step.errors)


def test_steps_before_to_chat_curate_the_question(tmp_path):
    record = {
        "id": "q1",
        "task": "sns_translation_zh2en",
        "language": "zh-en",
        "split": "train",
        "question": "有问题请发邮件到 someone@example.com 谢谢",
        "answer": "Please e-mail someone@example.com if you have questions, thanks",
    }
    path = write_jsonl(tmp_path / "tasks.jsonl", [record])
    steps = [{"kind": "pii"}, {"kind": "to_chat", "task_table": "sns_demo"}]
    run_recipe(_chat_recipe(tmp_path, [path], steps))
    [chat] = read_output(tmp_path / "out")
    template = TABLE.spec(record["task"]).prompt_template
    assert chat["messages"][0]["content"] == template.replace("{question}", "有问题请发邮件到 <EMAIL> 谢谢")
    assert chat["messages"][1]["content"] == record["answer"]  # only the text field is curated


def test_to_chat_after_to_task_renders_the_task_record(tmp_path):
    path = write_jsonl(
        tmp_path / "posts.jsonl", [{"id": "p1", "text": "房间很干净，早餐丰富", "label": "酒店"}]
    )
    steps = [
        {
            "kind": "to_task",
            "task": "sns_taxonomy",
            "answer_field": "label",
            "question_template": "笔记分类：{text}",
            "language": "zh",
        },
        {"kind": "to_chat", "task_table": "sns_demo"},
    ]
    run_recipe(make_recipe(tmp_path, [str(path)], steps))
    assert read_output(tmp_path / "out") == [
        {
            "messages": [
                {"role": "user", "content": "笔记分类：房间很干净，早餐丰富"},
                {"role": "assistant", "content": "酒店"},
            ],
            "task": "sns_taxonomy",
            "id": "p1",
            "meta": {"split": "train", "language": "zh"},
        }
    ]


def test_to_chat_needs_a_task_table_and_cannot_precede_pack(tmp_path):
    with pytest.raises(ValidationError, match="task_table"):
        make_recipe(tmp_path, ["x.jsonl"], [{"kind": "to_chat"}])
    steps = [{"kind": "to_chat", "task_table": "sns_demo"}, {"kind": "pack", "tokenizer": "tiny"}]
    with pytest.raises(ValidationError, match="cannot follow to_chat"):
        make_recipe(tmp_path, ["x.jsonl"], steps)


def test_the_documented_to_chat_recipe_runs(tmp_path):
    """The recipe of docs/data-prep.md, run as documented, turns the whole shipped training set."""
    doc = (REPO / "docs/data-prep.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL) if "kind: to_chat" in b]
    recipe = write_recipe(tmp_path / "to_chat.yaml", yaml.safe_load(block))
    run_cli(["data", str(recipe), "--set", f"output_dir={tmp_path / 'out'}"])
    out = read_output(tmp_path / "out")
    records = [json.loads(line) for line in TRAIN.read_text(encoding="utf-8").splitlines()]
    assert out == [_expected(r) for r in records]
