"""The toy chat generator: deterministic, correct answers, short, and the shipped splits are disjoint."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from data_prep.toy_chat import LABEL_OF_WORD, TOY_TASKS, generate_toy_chat, main
from nemo_recipes.records.chat import ChatRecord, read_chat_records

TOY_CHAT_DIR = Path(__file__).resolve().parents[2] / "nemo_recipes" / "assets" / "data" / "toy_chat"


def _expected_answer(task: str, prompt: str) -> str:
    operand = prompt.split(": ", 1)[1]
    if task == "sort_digits":
        return "".join(sorted(operand))
    operand = operand.split(" ")
    if task == "reverse":
        return " ".join(reversed(operand))
    if task == "uppercase":
        return " ".join(symbol.upper() for symbol in operand)
    return " ".join(LABEL_OF_WORD[word] for word in operand)


def _user_prompts(records: list[dict]) -> list[str]:
    return [m["content"] for record in records for m in record["messages"] if m["role"] == "user"]


def test_same_seed_same_records_other_seed_other_records() -> None:
    assert generate_toy_chat(50, seed=7) == generate_toy_chat(50, seed=7)
    assert generate_toy_chat(50, seed=7) != generate_toy_chat(50, seed=8)
    assert generate_toy_chat(300, seed=7)[:50] == generate_toy_chat(50, seed=7)


def test_records_are_valid_and_answers_are_right() -> None:
    records = generate_toy_chat(400, seed=3)
    assert Counter(record["task"] for record in records).keys() == set(TOY_TASKS)
    assert len({record["id"] for record in records}) == len(records)
    for record in records:
        ChatRecord.model_validate(record)
        messages = [m for m in record["messages"] if m["role"] != "system"]
        for user, assistant in zip(messages[::2], messages[1::2], strict=True):
            assert (user["role"], assistant["role"]) == ("user", "assistant")
            assert assistant["content"] == _expected_answer(record["task"], user["content"])
    prompts = _user_prompts(records)
    assert len(set(prompts)) == len(prompts)


def test_answers_are_a_few_tokens(shipped_tokenizer) -> None:
    answers = [
        m["content"]
        for r in generate_toy_chat(400, seed=5)
        for m in r["messages"]
        if m["role"] == "assistant"
    ]
    lengths = [len(shipped_tokenizer.encode(answer, add_special_tokens=False)) for answer in answers]
    assert max(lengths) <= 6


def test_shipped_splits_are_disjoint_and_reproducible(tmp_path: Path) -> None:
    train = read_chat_records(TOY_CHAT_DIR / "train.jsonl", on_error="raise").records
    valid = read_chat_records(TOY_CHAT_DIR / "valid.jsonl", on_error="raise").records
    assert (len(train), len(valid)) == (2000, 200)
    train_dicts = [record.to_json_dict() for record in train]
    valid_dicts = [record.to_json_dict() for record in valid]
    assert not set(_user_prompts(train_dicts)) & set(_user_prompts(valid_dicts))
    assert not {r["id"] for r in train_dicts} & {r["id"] for r in valid_dicts}
    main(["--out", str(tmp_path)])
    for name in ("train.jsonl", "valid.jsonl"):
        assert (tmp_path / name).read_bytes() == (TOY_CHAT_DIR / name).read_bytes(), f"{name} is stale"
    first = json.loads((TOY_CHAT_DIR / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"messages", "task", "id"}


def test_shipped_rl_records_are_disjoint_and_reproducible(tmp_path: Path) -> None:
    """toy_rl's records: the reverse/uppercase train set, and the label train set with its held-out
    test split (no prompt in both; every answer right)."""
    rl_dir = TOY_CHAT_DIR.parent / "toy_rl"
    main(["--out", str(tmp_path / "rl"), "--train-records", "512", "--rl-tasks", "reverse", "uppercase"])
    assert (tmp_path / "rl" / "train.jsonl").read_bytes() == (rl_dir / "train.jsonl").read_bytes()
    label_args = ["--train-records", "512", "--test-records", "200", "--rl-tasks", "label"]
    main(["--out", str(tmp_path / "label"), *label_args])
    splits = {}
    for name in ("train.jsonl", "test.jsonl"):
        shipped = rl_dir / "label" / name
        assert (tmp_path / "label" / name).read_bytes() == shipped.read_bytes(), f"label/{name} is stale"
        splits[name] = [json.loads(line) for line in shipped.read_text(encoding="utf-8").splitlines()]
    train, test = splits["train.jsonl"], splits["test.jsonl"]
    assert (len(train), len(test)) == (512, 200)
    assert {r["split"] for r in train} == {"train"} and {r["split"] for r in test} == {"test"}
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    for record in train + test:
        assert record["task"] == "label"
        assert record["answer"] == _expected_answer("label", record["question"])
