"""The toy chat task: short, seeded, rule-based conversations a tiny random-init model can learn.

Four tasks, tagged in each record's ``task``:

* ``reverse``: ``reverse: c a t`` -> ``t a c`` (3-6 lowercase letters)
* ``uppercase``: ``uppercase: c a t`` -> ``C A T`` (3-6 lowercase letters)
* ``sort_digits``: ``sort: 391`` -> ``139`` (3-6 digits)
* ``label``: ``label: 苹果 dog`` -> ``fruit animal`` (1-3 words from a fixed English/Chinese/emoji set)

Every letter and digit is its own token under the shipped byte-level BPE (letters because they are
space-separated, digits because its pre-tokeniser splits them, as Qwen's does): the tasks then test
copying, mapping and ordering rather than the spelling of merged tokens. Some
records carry a system prompt and some have two exchanges (same task) to exercise multi-turn masking.

Every user prompt is unique across one generated list, so splitting that list gives disjoint
train/valid sets: ``python -m data_prep.toy_chat --out nemo_recipes/assets/data/toy_chat``.

``--rl-tasks`` writes task records (question/answer) for the RL stage instead: ``train.jsonl`` and,
with ``--test-records N``, a disjoint held-out ``test.jsonl`` (the last N prompts of the same list).
Shipped: ``--out nemo_recipes/assets/data/toy_rl --train-records 512 --rl-tasks reverse uppercase``
and ``--out nemo_recipes/assets/data/toy_rl/label --train-records 512 --test-records 200
--rl-tasks label``.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

from nemo_recipes.records.chat import ChatRecord

TOY_TASKS = ("reverse", "uppercase", "sort_digits", "label")
LABEL_OF_WORD = {
    "apple": "fruit",
    "banana": "fruit",
    "苹果": "fruit",
    "香蕉": "fruit",
    "🍎": "fruit",
    "dog": "animal",
    "cat": "animal",
    "狗": "animal",
    "猫": "animal",
    "🐶": "animal",
    "red": "color",
    "blue": "color",
    "红色": "color",
    "蓝色": "color",
    "🔴": "color",
}
SYSTEM_PROMPTS = ("You are a helpful assistant.", "你是一个乐于助人的助手。")
SYSTEM_PROMPT_PROBABILITY = 0.3
SECOND_EXCHANGE_PROBABILITY = 0.2
MIN_SYMBOLS, MAX_SYMBOLS = 3, 6
MAX_LABEL_WORDS = 3
MAX_DRAWS_PER_PROMPT = 1000  # a fresh prompt is drawn until unused; this bounds the search


def _reverse(rng: random.Random) -> tuple[str, str]:
    letters = rng.choices(string.ascii_lowercase, k=rng.randint(MIN_SYMBOLS, MAX_SYMBOLS))
    return "reverse: " + " ".join(letters), " ".join(reversed(letters))


def _uppercase(rng: random.Random) -> tuple[str, str]:
    letters = rng.choices(string.ascii_lowercase, k=rng.randint(MIN_SYMBOLS, MAX_SYMBOLS))
    return "uppercase: " + " ".join(letters), " ".join(letter.upper() for letter in letters)


def _sort_digits(rng: random.Random) -> tuple[str, str]:
    digits = rng.choices(string.digits, k=rng.randint(MIN_SYMBOLS, MAX_SYMBOLS))
    return "sort: " + "".join(digits), "".join(sorted(digits))


def _label(rng: random.Random) -> tuple[str, str]:
    words = rng.choices(sorted(LABEL_OF_WORD), k=rng.randint(1, MAX_LABEL_WORDS))
    return "label: " + " ".join(words), " ".join(LABEL_OF_WORD[word] for word in words)


_PROMPT_MAKERS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "reverse": _reverse,
    "uppercase": _uppercase,
    "sort_digits": _sort_digits,
    "label": _label,
}


def generate_toy_chat(n: int, seed: int) -> list[dict]:
    """Generate ``n`` toy chat records (schema of :class:`nemo_recipes.records.chat.ChatRecord`).

    Deterministic for a given ``(n, seed)``; the first ``k`` records do not depend on ``n``. No user
    prompt repeats within the list, so any split of it is disjoint.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    used_prompts: set[str] = set()
    records = []
    for index in range(n):
        task = rng.choice(TOY_TASKS)
        messages = []
        if rng.random() < SYSTEM_PROMPT_PROBABILITY:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        exchange_count = 2 if rng.random() < SECOND_EXCHANGE_PROBABILITY else 1
        for _ in range(exchange_count):
            prompt, answer = _fresh_prompt(task, rng, used_prompts)
            messages.append({"role": "user", "content": prompt})
            messages.append({"role": "assistant", "content": answer})
        records.append({"messages": messages, "task": task, "id": f"toy-{index:05d}"})
    return records


def generate_toy_task_records(n: int, seed: int, tasks: tuple[str, ...] = TOY_TASKS) -> list[dict]:
    """``n`` single-exchange toy prompts as task records (question/answer) for the RL stage."""
    rng = random.Random(seed)
    used_prompts: set[str] = set()
    records = []
    for index in range(n):
        task = rng.choice(tasks)
        question, answer = _fresh_prompt(task, rng, used_prompts)
        records.append(
            {"id": f"toy-{index:05d}", "task": task, "language": "en", "split": "train"}
            | {"question": question, "answer": answer}
        )
    return records


def _fresh_prompt(task: str, rng: random.Random, used_prompts: set[str]) -> tuple[str, str]:
    for _ in range(MAX_DRAWS_PER_PROMPT):
        prompt, answer = _PROMPT_MAKERS[task](rng)
        if prompt not in used_prompts:
            used_prompts.add(prompt)
            return prompt, answer
    raise RuntimeError(f"could not draw an unused {task!r} prompt in {MAX_DRAWS_PER_PROMPT} tries")


def write_jsonl(records: list[dict], path: Path) -> None:
    """Validate each record against the schema and write one JSON object per line (UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            ChatRecord.model_validate(record)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    """CLI: write ``train.jsonl`` and a disjoint ``valid.jsonl`` under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--train-records", type=int, default=2000)
    parser.add_argument("--valid-records", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--rl-tasks", nargs="+", choices=TOY_TASKS, help="write RL task records of these tasks instead"
    )
    parser.add_argument(
        "--test-records", type=int, default=0, help="with --rl-tasks: also a disjoint held-out test.jsonl"
    )
    args = parser.parse_args(argv)
    if args.rl_tasks:
        records = generate_toy_task_records(
            args.train_records + args.test_records, args.seed, tuple(args.rl_tasks)
        )
        splits = {"train.jsonl": records[: args.train_records]}
        if args.test_records:
            splits["test.jsonl"] = [r | {"split": "test"} for r in records[args.train_records :]]
        args.out.mkdir(parents=True, exist_ok=True)
        for name, split in splits.items():
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split)
            (args.out / name).write_text(lines, encoding="utf-8")
            print(f"wrote {len(split)} RL task records to {args.out / name}")
        return
    records = generate_toy_chat(args.train_records + args.valid_records, seed=args.seed)
    write_jsonl(records[: args.train_records], args.out / "train.jsonl")
    write_jsonl(records[args.train_records :], args.out / "valid.jsonl")
    print(f"wrote {args.train_records} train and {args.valid_records} valid records to {args.out}")


if __name__ == "__main__":
    main()
