"""The shipped task table and demo data: every task resolves and scores its own references at 1.0."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from data_prep.sns_synth.build import (
    DEFAULT_BASE_PER_TASK,
    DEFAULT_SEED,
    DEFAULT_TEST_PER_TASK,
    DEFAULT_TRAIN_PER_TASK,
    TASK_BUILDERS,
    build_all,
    main,
)
from nemo_recipes.tasks import TaskRecord, TaskTable, load_task_table, read_task_records, score_batch
from nemo_recipes.tasks.sandbox import network_namespace_command
from tests.conftest import REPO

DATA = REPO / "nemo_recipes" / "assets" / "data"
SETS = ("sns_demo", "general")
MAX_PROMPT_TOKENS = 200
SNS_BENCH_TASKS = {
    "sns_taxonomy",
    "sns_hashtag",
    "sns_query_note_correlation",
    "sns_reading_comprehension",
    "sns_ner",
    "sns_gender_appeal",
    "sns_comment_highlight",
    "sns_query_generation",
}


@pytest.fixture(scope="module")
def table() -> TaskTable:
    return load_task_table(*SETS)


@pytest.fixture(scope="module")
def records(table: TaskTable) -> dict[str, list[TaskRecord]]:
    return {
        split: [r for name in SETS for r in read_task_records(DATA / name / f"{split}.jsonl", table).records]
        for split in ("train", "test")
    }


def test_every_task_has_train_and_test_records_in_both_languages(table, records) -> None:  # type: ignore[no-untyped-def]
    assert set(table.names) >= SNS_BENCH_TASKS
    assert set(TASK_BUILDERS) == set(table.names)
    for split, split_records in records.items():
        assert {r.task for r in split_records} == set(table.names), split
        assert all(r.split == split for r in split_records)
    languages = Counter((r.task, r.language) for r in records["train"])
    for task in SNS_BENCH_TASKS:
        assert languages[(task, "zh")] > 0 and languages[(task, "en")] > 0, task


def test_no_question_is_in_both_splits(records) -> None:  # type: ignore[no-untyped-def]
    train = {(r.task, r.question) for r in records["train"]}
    assert not train & {(r.task, r.question) for r in records["test"]}


def test_prompts_are_short(table, records) -> None:  # type: ignore[no-untyped-def]
    tokenizer = Tokenizer.from_file(str(REPO / "nemo_recipes/assets/tokenizer/tiny/tokenizer.json"))
    all_records = records["train"] + records["test"]
    prompts = [r.prompt_messages(table.spec(r.task).prompt_template)[-1].content for r in all_records]
    longest = max(len(encoding.ids) for encoding in tokenizer.encode_batch(prompts))
    assert longest < MAX_PROMPT_TOKENS


def test_every_reference_scores_one(table, records) -> None:  # type: ignore[no-untyped-def]
    # Code records run in the sandbox (about a second each on a busy machine): a few of them suffice.
    all_records = [r for r in records["train"] + records["test"] if r.task != "general_code"]
    code = [r for r in records["test"] if r.task == "general_code"][:3]
    if network_namespace_command() is not None:
        all_records += code
    results = score_batch(table, [r.answer_text for r in all_records], all_records, max_workers=2)
    failures = [
        (r.id, res) for r, res in zip(all_records, results, strict=True) if res.score != pytest.approx(1.0)
    ]
    assert not failures, failures[:5]
    assert all(res.equivalent for res in results)
    assert {r.task for r in all_records} >= set(table.names) - {"general_code"}


def test_generator_is_deterministic_and_matches_the_shipped_files() -> None:
    splits = build_all(DEFAULT_TRAIN_PER_TASK, DEFAULT_TEST_PER_TASK, DEFAULT_SEED, DEFAULT_BASE_PER_TASK)
    for split, built in splits.items():
        shipped = [
            line
            for name in SETS
            for line in (DATA / name / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        assert [TaskRecord.model_validate(r).model_dump() for r in built] == [
            TaskRecord.model_validate_json(line).model_dump() for line in shipped
        ], split


def test_general_tasks_are_a_table_and_set_of_their_own() -> None:
    """The SNS table holds no general task; the shipped general table and set hold only general ones."""
    sns, general = load_task_table("sns_demo"), load_task_table("general")
    assert not set(sns.names) & set(general.names)
    assert {general.spec(t).capability for t in general.names} == {"general"}
    assert "general" not in {sns.spec(t).capability for t in sns.names}
    for split in ("train", "test"):
        assert {
            r.task for r in read_task_records(DATA / "general" / f"{split}.jsonl", general).records
        } == set(general.names)


def test_generator_other_sizes_and_seeds(tmp_path: Path) -> None:
    small = build_all(train_per_task=4, test_per_task=2, seed=1)
    again = build_all(train_per_task=4, test_per_task=2, seed=1)
    other = build_all(train_per_task=4, test_per_task=2, seed=2)
    assert small == again and small != other
    assert len(small["train"]) == 4 * (len(TASK_BUILDERS) - 1) + 2  # general_code has share 0.4


def test_generator_writes_the_general_tasks_beside_the_sns_set(tmp_path: Path) -> None:
    main(
        [
            "--out",
            str(tmp_path / "sns"),
            "--train-per-task",
            "2",
            "--test-per-task",
            "1",
            "--base-per-task",
            "1",
        ]
    )
    sns, general = load_task_table("sns_demo"), load_task_table("general")
    assert {r.task for r in read_task_records(tmp_path / "sns" / "train.jsonl", sns).records} == set(
        sns.names
    )
    assert {r.task for r in read_task_records(tmp_path / "general" / "test.jsonl", general).records} == set(
        general.names
    )
    base = read_task_records(tmp_path / "sns" / "base.jsonl", sns).records
    assert {r.task for r in base} == set(sns.names) and {r.split for r in base} == {"train"}
