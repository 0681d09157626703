"""Chat tokenisation (both mask paths), packing, collation, and that packing is invisible to attention."""

from __future__ import annotations

import random

import pytest
import torch

from nemo_recipes.data.bin_packing import first_fit_rows
from nemo_recipes.data.sft_dataset import (
    ChatTemplateError,
    TokenizedChat,
    collate,
    pack_sequences,
    tokenize_chat,
    unpacked_rows,
)
from nemo_recipes.records.chat import ChatRecord
from tests.data.chat_runs import assistant_answers, trained_runs

PAD = 0
MULTI_TURN = ChatRecord.model_validate(
    {
        "messages": [
            {"role": "system", "content": "你是一个乐于助人的助手。"},
            {"role": "user", "content": "label: 苹果 🐶"},
            {"role": "assistant", "content": "fruit animal"},
            {"role": "user", "content": "reverse: a b c\n\nplease"},
            {"role": "assistant", "content": "c b a 😀\nok "},
        ],
        "id": "multi",
    }
)


@pytest.mark.parametrize("tokenizer_name", ["shipped_tokenizer", "plain_template_tokenizer"])
def test_mask_covers_exactly_assistant_content_and_im_end(request, tokenizer_name: str) -> None:
    tokenizer = request.getfixturevalue(tokenizer_name)
    chat = tokenize_chat(tokenizer, MULTI_TURN)
    assert trained_runs(tokenizer, chat) == assistant_answers(MULTI_TURN)
    assert tokenizer.decode(chat.input_ids) == tokenizer.apply_chat_template(
        [m.model_dump() for m in MULTI_TURN.messages], tokenize=False
    )
    assert chat.record_id == "multi"


def test_both_mask_paths_agree_on_the_toy_data(
    shipped_tokenizer, plain_template_tokenizer, toy_train_records: list[ChatRecord]
) -> None:
    records = toy_train_records[:300]
    with_markers = [tokenize_chat(shipped_tokenizer, record) for record in records]
    by_prefixes = [tokenize_chat(plain_template_tokenizer, record) for record in records]
    assert with_markers == by_prefixes
    for record, chat in zip(records[:100], with_markers, strict=False):
        assert trained_runs(shipped_tokenizer, chat) == assistant_answers(record)


def test_a_dict_record_is_validated_and_accepted(shipped_tokenizer) -> None:
    chat = tokenize_chat(shipped_tokenizer, {"messages": [{"role": "assistant", "content": "hi"}]})
    assert trained_runs(shipped_tokenizer, chat) == ["hi<|im_end|>"]
    with pytest.raises(ValueError, match="assistant"):
        tokenize_chat(shipped_tokenizer, {"messages": [{"role": "user", "content": "hi"}]})


def test_a_template_that_is_not_prefix_stable_is_masked_on_the_full_rendering(
    plain_template_tokenizer,
) -> None:
    # Like Qwen3's template: the final assistant turn renders differently from earlier ones. Each turn's
    # span is found on the full rendering; the final one starts where the generation prompt ends, so the
    # '<think></think>' this template puts after its prompt is trained on (the model has to generate it).
    unstable = (
        "{%- for message in messages -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['role'] == 'assistant' and loop.last -%}{{- '<think></think>' -}}{%- endif -%}"
        "{{- message['content'] + '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )
    tokenizer = plain_template_tokenizer
    original = tokenizer.chat_template
    tokenizer.chat_template = unstable
    try:
        chat = tokenize_chat(tokenizer, MULTI_TURN)
        assert trained_runs(tokenizer, chat) == [
            "fruit animal<|im_end|>",
            "<think></think>c b a 😀\nok <|im_end|>",
        ]
        assert tokenizer.decode(chat.input_ids) == tokenizer.apply_chat_template(
            [m.model_dump() for m in MULTI_TURN.messages], tokenize=False
        )
    finally:
        tokenizer.chat_template = original


def test_a_tokenizer_without_template_is_refused(plain_template_tokenizer) -> None:
    tokenizer = plain_template_tokenizer
    original = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        with pytest.raises(ChatTemplateError, match="no single string chat template"):
            tokenize_chat(tokenizer, MULTI_TURN)
    finally:
        tokenizer.chat_template = original


def _chat(input_ids: list[int], trained: list[int], record_id: str | None = None) -> TokenizedChat:
    return TokenizedChat(
        input_ids=input_ids, assistant_mask=[bool(flag) for flag in trained], record_id=record_id
    )


DOC_A = _chat([10, 11, 12, 13], [0, 0, 1, 1], "a")
DOC_B = _chat([20, 21, 22], [0, 1, 1], "b")
DOC_C = _chat([30, 31, 32, 33, 34, 35], [0, 0, 0, 1, 1, 1], "c")


def test_packing_by_hand() -> None:
    rows = pack_sequences([DOC_A, DOC_B, DOC_C], seq_length=8, pad_token_id=PAD)
    # A (4) and B (3) share row 0; C (6) does not fit there and opens row 1.
    assert [row.document_indices for row in rows] == [[0, 1], [2]]
    first, second = rows
    assert first.tokens == [10, 11, 12, 13, 20, 21, 22, PAD]
    assert first.labels == [11, 12, 13, PAD, 21, 22, PAD, PAD]
    assert first.loss_mask == [0, 1, 1, 0, 1, 1, 0, 0]
    assert first.position_ids == [0, 1, 2, 3, 0, 1, 2, 0]
    assert first.document_lengths == [4, 3] and first.padding_length == 1
    assert second.tokens == [30, 31, 32, 33, 34, 35, PAD, PAD]
    assert second.labels == [31, 32, 33, 34, 35, PAD, PAD, PAD]
    assert second.loss_mask == [0, 0, 1, 1, 1, 0, 0, 0]
    assert second.position_ids == [0, 1, 2, 3, 4, 5, 0, 1]


def test_first_fit_fills_earlier_rows_first() -> None:
    # 5 and 4 open rows 0 and 1; 3 fits row 0 (5 + 3); 1 and 3 fill row 1 (4 + 1 + 3); 2 opens row 2.
    assert first_fit_rows([5, 4, 3, 1, 3, 2], capacity=8) == [[0, 2], [1, 3, 4], [5]]


def _naive_first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    members: list[list[int]] = []
    free: list[int] = []
    for index, length in enumerate(lengths):
        row = next((r for r, room in enumerate(free) if room >= length), None)
        if row is None:
            members.append([])
            free.append(capacity)
            row = len(members) - 1
        members[row].append(index)
        free[row] -= length
    return members


def test_first_fit_matches_the_naive_scan() -> None:
    rng = random.Random(0)
    for _ in range(200):
        capacity = rng.randint(1, 40)
        lengths = [rng.randint(1, capacity) for _ in range(rng.randint(0, 50))]
        assert first_fit_rows(lengths, capacity) == _naive_first_fit(lengths, capacity)


@pytest.fixture(scope="module")
def toy_examples(shipped_tokenizer, toy_train_records: list[ChatRecord]) -> list[TokenizedChat]:
    return [tokenize_chat(shipped_tokenizer, record) for record in toy_train_records[:200]]


def test_packing_keeps_every_document_once_and_changes_nothing_per_document(
    toy_examples: list[TokenizedChat],
) -> None:
    seq_length = 96
    packed = pack_sequences(toy_examples, seq_length, pad_token_id=PAD)
    unpacked = unpacked_rows(toy_examples, seq_length, pad_token_id=PAD)
    assert len(packed) < len(unpacked) == len(toy_examples)
    assert sorted(i for row in packed for i in row.document_indices) == list(range(len(toy_examples)))
    assert all(len(getattr(row, name)) == seq_length for row in packed for name in ("tokens", "labels"))
    for row in packed:
        start = 0
        for index, length in zip(row.document_indices, row.document_lengths, strict=True):
            reference = unpacked[index]
            assert length == len(toy_examples[index].input_ids)
            for name in ("tokens", "labels", "loss_mask", "position_ids"):
                assert getattr(row, name)[start : start + length] == getattr(reference, name)[:length]
            assert row.position_ids[start] == 0
            start += length
        assert row.loss_mask[start:] == [0] * row.padding_length
    loss_tokens = sum(sum(chat.assistant_mask[1:]) for chat in toy_examples)
    assert (
        sum(sum(row.loss_mask) for row in packed)
        == sum(sum(row.loss_mask) for row in unpacked)
        == loss_tokens
    )


def test_packing_is_deterministic(toy_examples: list[TokenizedChat]) -> None:
    assert pack_sequences(toy_examples, 128) == pack_sequences(list(toy_examples), 128)


def test_a_conversation_longer_than_the_row_is_named_unless_truncated() -> None:
    with pytest.raises(ValueError, match=r"example 2 \(record 'c'\) has 6 tokens.*seq_length=5"):
        pack_sequences([DOC_A, DOC_B, DOC_C], seq_length=5)
    with pytest.raises(ValueError, match=r"record 'c'"):
        unpacked_rows([DOC_C], seq_length=5)
    (row,) = unpacked_rows([DOC_C], seq_length=5, truncate=True)
    assert row.tokens == [30, 31, 32, 33, 34]
    assert row.labels == [31, 32, 33, 34, PAD]
    assert row.loss_mask == [0, 0, 1, 1, 0]
    assert [row.document_lengths for row in pack_sequences([DOC_A, DOC_C], 5, truncate=True)] == [[4], [5]]


def test_a_row_length_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="seq_length"):
        pack_sequences([DOC_A], seq_length=1)


def test_collate_joins_the_rows_into_one_packed_row_with_its_documents() -> None:
    rows = pack_sequences([DOC_A, DOC_B, DOC_C], seq_length=8, pad_token_id=PAD)
    batch = collate(rows)
    shapes = {t.shape for t in (batch.tokens, batch.labels, batch.loss_mask, batch.position_ids)}
    assert shapes == {(1, 16)}
    assert (batch.tokens.dtype, batch.labels.dtype, batch.position_ids.dtype) == (torch.int64,) * 3
    assert batch.loss_mask.dtype == torch.float32
    # Row 0 = A (4) then B (3) then 1 padding; row 1 = C (6) then 2 padding: each a document.
    assert batch.document_lengths == [4, 3, 1, 6, 2]
    assert batch.tokens[0].tolist() == rows[0].tokens + rows[1].tokens
    assert batch.position_ids[0].tolist() == rows[0].position_ids + rows[1].position_ids
    assert sum(batch.document_lengths) == batch.tokens.shape[1]


def test_collate_refuses_rows_of_different_lengths() -> None:
    rows = [*unpacked_rows([DOC_A], 8), *unpacked_rows([DOC_B], 6)]
    with pytest.raises(ValueError, match="row 1 has 6 tokens"):
        collate(rows)
