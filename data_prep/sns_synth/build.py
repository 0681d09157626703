"""Build the bilingual SNS demo set: every task, train and test splits, deterministic for a seed.

``python -m data_prep.sns_synth --out nemo_recipes/assets/data/sns_demo`` rewrites the shipped files:
the SNS and translation tasks under ``--out``, the general rehearsal tasks under ``--general-out``
(default: ``general`` beside ``--out``); ``--train-per-task`` / ``--test-per-task`` for a larger set.
Records follow the task record schema (``nemo_recipes.records.task``; see ``docs/tasks.md``); the task
tables that score them are ``nemo_recipes/assets/tasks/sns_demo.yaml`` and ``general.yaml``. Questions
are unique within a task across both splits.
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.sns_synth import general, sns_tasks
from data_prep.sns_synth.sns_tasks import Example
from data_prep.sns_synth.sources import fakers

DEFAULT_SEED = 20251107
DEFAULT_TRAIN_PER_TASK = 100
DEFAULT_TEST_PER_TASK = 60
DEFAULT_BASE_PER_TASK = 150
SPLITS = ("train", "test", "base")
"""The files, in draw order: a larger test or base split leaves the records before it unchanged. Base
records are training records (``split: train``) kept apart for the demo base model."""
MAX_DRAWS_PER_EXAMPLE = 200
GENERAL = "general"
"""The capability of the general rehearsal tasks, written apart from the SNS set."""

Builder = Callable[[random.Random, str, dict[str, Any]], tuple[Example, str]]


def _plain(fn: Callable[[random.Random, str], Example]) -> Builder:
    return lambda rng, language, fakes: (fn(rng, language), language)


def _with_faker(fn: Callable[[random.Random, str, Any], Example]) -> Builder:
    return lambda rng, language, fakes: (fn(rng, language, fakes[language]), language)


def _translate(direction: str) -> Builder:
    return lambda rng, language, fakes: general.translation(rng, direction)


@dataclass(frozen=True)
class TaskBuilder:
    capability: str
    build: Builder
    languages: tuple[str, ...] = ("zh", "en")
    share: float = 1.0  # of the per-task count


# The explicit table: task name (as in the task table) -> how its records are made.
TASK_BUILDERS: dict[str, TaskBuilder] = {
    "sns_taxonomy": TaskBuilder("content_understanding", _plain(sns_tasks.taxonomy)),
    "sns_hashtag": TaskBuilder("content_understanding", _plain(sns_tasks.hashtag)),
    "sns_query_note_correlation": TaskBuilder("semantic_matching", _plain(sns_tasks.query_note_correlation)),
    "sns_reading_comprehension": TaskBuilder(
        "information_extraction", _with_faker(sns_tasks.reading_comprehension)
    ),
    "sns_ner": TaskBuilder("information_extraction", _with_faker(sns_tasks.ner)),
    "sns_gender_appeal": TaskBuilder("user_behavior", _plain(sns_tasks.gender_appeal)),
    "sns_comment_highlight": TaskBuilder("information_extraction", _plain(sns_tasks.comment_highlight)),
    "sns_query_generation": TaskBuilder("content_generation", _plain(sns_tasks.query_generation)),
    "sns_translation_zh2en": TaskBuilder("translation", _translate("zh-en"), ("zh-en",)),
    "sns_translation_en2zh": TaskBuilder("translation", _translate("en-zh"), ("en-zh",)),
    "general_arithmetic": TaskBuilder(GENERAL, _plain(general.arithmetic)),
    "general_instruction": TaskBuilder(GENERAL, _with_faker(general.instruction)),
    "general_code": TaskBuilder(GENERAL, _plain(general.code), share=0.4),
}


def build_task(
    name: str, train_count: int, test_count: int, seed: int, base_count: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """(file split, record) of one task: ``train_count`` train, ``test_count`` test, then
    ``base_count`` base (the demo base model's own training records), questions unique across all."""
    builder = TASK_BUILDERS[name]
    rng = random.Random(f"{seed}-{name}")
    fakes = fakers(seed + zlib.crc32(name.encode()))
    seen: set[str] = set()
    records = []
    bounds = (train_count, train_count + test_count, train_count + test_count + base_count)
    for index in range(bounds[-1]):
        language = builder.languages[index % len(builder.languages)]
        for _ in range(MAX_DRAWS_PER_EXAMPLE):
            example, tag = builder.build(rng, language, fakes)
            if example.question not in seen:
                break
        else:
            raise RuntimeError(f"{name}: no new question after {MAX_DRAWS_PER_EXAMPLE} draws (ask for fewer)")
        seen.add(example.question)
        split = next(split for split, bound in zip(SPLITS, bounds, strict=True) if index < bound)
        record_split = "test" if split == "test" else "train"
        records.append((split, _record(name, builder.capability, record_split, index, tag, example)))
    return records


def _record(task: str, capability: str, split: str, index: int, language: str, example: Example) -> dict:
    record: dict[str, Any] = {
        "id": f"{task}-{index:05d}",
        "task": task,
        "language": language,
        "split": split,
        "capability": capability,
        "question": example.question,
        "answer": example.answer,
    }
    if example.reference is not None:
        record["reference"] = example.reference
    return record


def build_all(
    train_per_task: int, test_per_task: int, seed: int, base_per_task: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """{"train": [...], "test": [...]} over every task of :data:`TASK_BUILDERS`, and "base" when
    ``base_per_task`` > 0."""
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    if base_per_task:
        splits["base"] = []
    for name, builder in TASK_BUILDERS.items():
        train_count = max(1, round(train_per_task * builder.share))
        test_count = max(1, round(test_per_task * builder.share))
        base_count = round(base_per_task * builder.share) and max(1, round(base_per_task * builder.share))
        for split, record in build_task(name, train_count, test_count, seed, base_count):
            splits[split].append(record)
    return splits


def write_jsonl(records: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.sns_synth", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the SNS train/test.jsonl")
    parser.add_argument(
        "--general-out",
        type=Path,
        help="directory for the general tasks' train/test.jsonl (default: OUT/../general)",
    )
    parser.add_argument("--train-per-task", type=int, default=DEFAULT_TRAIN_PER_TASK)
    parser.add_argument("--test-per-task", type=int, default=DEFAULT_TEST_PER_TASK)
    parser.add_argument(
        "--base-per-task",
        type=int,
        default=DEFAULT_BASE_PER_TASK,
        help="also write base.jsonl: records the demo base model trains on, apart from train and test",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    general_out = args.general_out or args.out.parent / "general"
    splits = build_all(args.train_per_task, args.test_per_task, args.seed, args.base_per_task)
    for split, records in splits.items():
        for out, general_set in ((args.out, False), (general_out, True)):
            chosen = [r for r in records if (r["capability"] == GENERAL) == general_set]
            write_jsonl(chosen, out / f"{split}.jsonl")
            print(f"{out / f'{split}.jsonl'}: {len(chosen)} records")
