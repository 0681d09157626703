"""Qwen3's real chat template: answer-only SFT masks (single- and multi-turn), and RL prompts that agree.

The asset `tiny-qwen3-template` is the shipped tiny tokenizer plus Qwen3's `<think>`/`</think>` added
tokens, with Qwen3's chat template copied verbatim (its README says from where). The recipe trains a
non-thinking specialist: an RL prompt ends with Qwen3's empty think block, and SFT trains exactly what
the model generates after it, the answer and `<|im_end|>` (docs/data-format.md, "What is trained on").
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from nemo_recipes.data.rl_prompts import prompt_token_ids
from nemo_recipes.data.sft_dataset import ChatTemplateError, tokenize_chat
from nemo_recipes.records.chat import ChatRecord
from nemo_recipes.tasks import TaskRecord, load_task_table
from tests.data.chat_runs import assistant_answers, trained_runs
from tests.data.conftest import REPO, SHIPPED_TOKENIZER_DIR

QWEN3_TOKENIZER_DIR = REPO / "nemo_recipes" / "assets" / "tokenizer" / "tiny-qwen3-template"
THINK_TOKENS = ("<think>", "</think>")
EMPTY_THINK_BLOCK = "<think>\n\n</think>\n\n"

MULTI_TURN = ChatRecord.model_validate(
    {
        "messages": [
            {"role": "system", "content": "你是一个乐于助人的助手。"},
            {"role": "user", "content": "label: 苹果 🐶"},
            {"role": "assistant", "content": "fruit animal"},
            {"role": "user", "content": "reverse: a b c\n\nplease"},
            {"role": "assistant", "content": "c b a 😀\nok "},
            {"role": "user", "content": "uppercase: done"},
            {"role": "assistant", "content": "DONE"},
        ],
        "id": "multi",
    }
)


@pytest.fixture(scope="module")
def qwen3_tokenizer():
    return AutoTokenizer.from_pretrained(QWEN3_TOKENIZER_DIR)


@pytest.fixture(scope="module")
def table():
    return load_task_table("sns_demo")


def _think_ids(tokenizer) -> set[int]:
    return {tokenizer.convert_tokens_to_ids(token) for token in THINK_TOKENS}


def test_the_asset_is_the_tiny_tokenizer_with_qwen3s_template_and_think_tokens(qwen3_tokenizer) -> None:
    template = qwen3_tokenizer.chat_template
    for qwen3_feature in (
        "enable_thinking",
        "reasoning_content",
        "ns.last_query_index",
        "<think>\\n\\n</think>",
    ):
        assert qwen3_feature in template, qwen3_feature
    assert "generation %}" not in template  # no markers: the masks come from the full rendering
    for token in ("<|im_start|>", "<|im_end|>", *THINK_TOKENS):
        (token_id,) = qwen3_tokenizer.encode(token, add_special_tokens=False)
        assert qwen3_tokenizer.convert_ids_to_tokens(token_id) == token
    tiny = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER_DIR)
    assert len(qwen3_tokenizer) == len(tiny) + 2
    assert sorted(_think_ids(qwen3_tokenizer)) == [len(tiny), len(tiny) + 1]
    text = "label: 苹果 🐶\nc b a 😀 ok"
    assert qwen3_tokenizer.encode(text) == tiny.encode(text)
    config = json.loads((REPO / "nemo_recipes/assets/models/tiny-qwen3/config.json").read_text())
    assert len(qwen3_tokenizer) <= config["vocab_size"]  # the tiny model embeds every id


def test_single_turn_trains_the_answer_and_im_end_not_the_think_block(qwen3_tokenizer) -> None:
    record = ChatRecord.model_validate(
        {"messages": [{"role": "user", "content": "label: 苹果"}, {"role": "assistant", "content": "fruit"}]}
    )
    chat = tokenize_chat(qwen3_tokenizer, record)
    text = qwen3_tokenizer.decode(chat.input_ids)
    assert text.endswith("<|im_start|>assistant\n" + EMPTY_THINK_BLOCK + "fruit<|im_end|>\n")
    assert trained_runs(qwen3_tokenizer, chat) == ["fruit<|im_end|>"]
    think = [
        (t, m)
        for t, m in zip(chat.input_ids, chat.assistant_mask, strict=True)
        if t in _think_ids(qwen3_tokenizer)
    ]
    assert len(think) == 2 and not any(m for _, m in think)


def test_multi_turn_trains_every_answer_although_the_template_is_not_prefix_stable(qwen3_tokenizer) -> None:
    messages = [m.model_dump() for m in MULTI_TURN.messages]
    full = qwen3_tokenizer.apply_chat_template(messages, tokenize=False, enable_thinking=False)
    first_turn = qwen3_tokenizer.apply_chat_template(messages[:3], tokenize=False, enable_thinking=False)
    assert not full.startswith(first_turn)  # Qwen3 drops the think block of turns before the last query

    chat = tokenize_chat(qwen3_tokenizer, MULTI_TURN)
    assert qwen3_tokenizer.decode(chat.input_ids) == full
    assert full.count(EMPTY_THINK_BLOCK) == 1
    assert trained_runs(qwen3_tokenizer, chat) == assistant_answers(MULTI_TURN)
    trained = {t for t, m in zip(chat.input_ids, chat.assistant_mask, strict=True) if m}
    assert not trained & _think_ids(qwen3_tokenizer)
    assert chat.record_id == "multi"


def _rl_prompt_and_sft_row(tokenizer, table, record: TaskRecord) -> tuple[list[int], list[int], list[int]]:
    """The RL prompt ids, the SFT row's ids up to the end of the answer, and the answer's trained ids."""
    prompt = prompt_token_ids(record, table, tokenizer)
    chat = tokenize_chat(tokenizer, record.to_chat(table.spec(record.task).prompt_template))
    last_trained = max(i for i, trained in enumerate(chat.assistant_mask) if trained)
    first_of_answer = last_trained
    while first_of_answer > 0 and chat.assistant_mask[first_of_answer - 1]:
        first_of_answer -= 1
    return prompt, chat.input_ids[: last_trained + 1], chat.input_ids[first_of_answer : last_trained + 1]


def _show(tokenizer, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


@pytest.mark.parametrize(
    "record",
    [
        TaskRecord(
            id="zh2en-1",
            task="sns_translation_zh2en",
            language="zh-en",
            split="train",
            question="苹果",
            answer="apple",
        ),
        TaskRecord(
            id="chat-1",
            task="sns_taxonomy",
            language="en",
            split="train",
            messages=MULTI_TURN.messages[1:5],
        ),
    ],
    ids=["question-answer", "multi-turn"],
)
def test_the_rl_prompt_then_the_sft_target_is_the_sft_row(qwen3_tokenizer, table, record: TaskRecord) -> None:
    prompt, row, answer = _rl_prompt_and_sft_row(qwen3_tokenizer, table, record)
    assert qwen3_tokenizer.decode(answer) == record.answer_text + "<|im_end|>"
    assert qwen3_tokenizer.decode(prompt).endswith("<|im_start|>assistant\n" + EMPTY_THINK_BLOCK)
    assert prompt + answer == row, (
        f"RL prompt tokens {_show(qwen3_tokenizer, prompt)}\n"
        f"+ SFT-trained tokens {_show(qwen3_tokenizer, answer)}\n"
        f"!= SFT row tokens {_show(qwen3_tokenizer, row)}"
    )


def test_the_tiny_template_renders_rl_prompts_as_before(shipped_tokenizer, table) -> None:
    """enable_thinking is not a variable of the tiny template: its prompts end at `assistant\\n`."""
    record = TaskRecord(id="t", task="sns_taxonomy", language="en", split="train", question="q", answer="a")
    prompt, row, answer = _rl_prompt_and_sft_row(shipped_tokenizer, table, record)
    assert (
        prompt
        == shipped_tokenizer.apply_chat_template(
            [{"role": "user", "content": "q"}], add_generation_prompt=True, return_dict=True
        )["input_ids"]
    )
    assert shipped_tokenizer.decode(prompt) == "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    assert prompt + answer == row


def test_a_template_that_rewrites_an_answer_is_refused_naming_the_record(qwen3_tokenizer) -> None:
    # Qwen3 strips leading newlines of the final answer: its tokens cannot be located exactly.
    record = ChatRecord.model_validate(
        {
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\nanswer"}],
            "id": "leading-newline",
        }
    )
    with pytest.raises(ChatTemplateError, match=r"record 'leading-newline'.*verbatim"):
        tokenize_chat(qwen3_tokenizer, record)
