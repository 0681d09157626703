"""The local byte-level BPE tokenizer: lossless on zh/en/emoji text, ChatML template, reproducible build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from nemo_recipes.tokenizer.build import build_tokenizer, main

REPO = Path(__file__).resolve().parents[1]
SHIPPED_DIR = REPO / "nemo_recipes" / "assets" / "tokenizer" / "tiny"
TOY_CHAT_DIR = REPO / "nemo_recipes" / "assets" / "data" / "toy_chat"
TEXTS = [
    "Hello, world! The quick brown fox.",
    "小红书上的笔记很有意思，我们一起看看吧。",
    "emoji 😀👍🏽🇨🇳 👨‍👩‍👧 and ZWJ",
    "mixed: 苹果 apple 🍎 123456 \n\n\ttabs  and   spaces ",
    "naïve café — “quotes” ½ ∑ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(SHIPPED_DIR)


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert all(0 <= token < len(tokenizer) for token in ids)


def test_special_tokens(tokenizer) -> None:
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        assert tokenizer.encode(token, add_special_tokens=False) == [tokenizer.convert_tokens_to_ids(token)]
    assert tokenizer.encode("x", add_special_tokens=True) == tokenizer.encode("x", add_special_tokens=False)
    assert tokenizer.decode(tokenizer.encode("<|im_start|>hi<|im_end|>"), skip_special_tokens=True) == "hi"


def test_chatml_template(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "hi 😀"},
    ]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n"
        "<|im_start|>assistant\nhi 😀<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n")
    encoded = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(trained) == "hi 😀<|im_end|>"


def test_config_is_portable() -> None:
    config = json.loads((SHIPPED_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "{% generation %}" in config["chat_template"].replace("{%- generation -%}", "{% generation %}")
    assert sorted(path.name for path in SHIPPED_DIR.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]


def test_shipped_tokenizer_is_what_the_command_builds(tmp_path: Path) -> None:
    main(["--out", str(tmp_path / "tok")])
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "tok" / name).read_bytes() == (SHIPPED_DIR / name).read_bytes(), f"{name} is stale"


def test_build_is_deterministic_and_bounded(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS * 20) + "\n", encoding="utf-8")
    files = [corpus, TOY_CHAT_DIR / "valid.jsonl"]
    first = build_tokenizer(files, tmp_path / "a", vocab_size=300)
    second = build_tokenizer(files, tmp_path / "b", vocab_size=300)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    built = AutoTokenizer.from_pretrained(first)
    assert len(built) == 300
    for text in TEXTS:
        assert built.decode(built.encode(text, add_special_tokens=False)) == text


def test_build_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer([TOY_CHAT_DIR / "valid.jsonl"], tmp_path / "x", vocab_size=100)
    bad = tmp_path / "corpus.csv"
    bad.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.jsonl .* or \.txt"):
        build_tokenizer([bad], tmp_path / "y")
