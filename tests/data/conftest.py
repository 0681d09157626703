"""Fixtures for the data tests: the shipped tokenizer (with and without generation markers) and toy data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from nemo_recipes.records.chat import ChatRecord, read_chat_records

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TOKENIZER_DIR = REPO / "nemo_recipes" / "assets" / "tokenizer" / "tiny"
TOY_CHAT_DIR = REPO / "nemo_recipes" / "assets" / "data" / "toy_chat"


@pytest.fixture(scope="session")
def shipped_tokenizer():
    """The shipped tiny tokenizer; its template marks assistant content with {% generation %}."""
    return AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER_DIR)


@pytest.fixture(scope="session")
def plain_template_tokenizer():
    """The same tokenizer with the generation markers removed, as in real Qwen/Llama templates."""
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER_DIR)
    plain = re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", tokenizer.chat_template)
    assert "generation %}" not in plain and "generation -%}" not in plain
    tokenizer.chat_template = plain
    return tokenizer


@pytest.fixture(scope="session")
def toy_train_records() -> list[ChatRecord]:
    return read_chat_records(TOY_CHAT_DIR / "train.jsonl", on_error="raise").records
