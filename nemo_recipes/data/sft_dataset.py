"""The SFT data path after the record reader: tokenise chats, pack them into rows, collate to tensors.

* :func:`tokenize_chat` renders a :class:`~nemo_recipes.records.chat.ChatRecord` with the tokenizer's chat
  template (as RL prompts are rendered, :mod:`nemo_recipes.data.chat_render`) and marks the
  assistant-generated tokens (content plus the closing end-of-turn token).
* :func:`pack_sequences` puts whole conversations into rows of exactly ``seq_length`` tokens;
  :func:`unpacked_rows` puts one conversation per row (the reference packing must match).
* :func:`collate` stacks rows into an :class:`SFTBatch` of tensors with a block-diagonal causal mask.

Within a row, position ``j`` of a document predicts its token ``j + 1`` (``labels``) and is trained on
(``loss_mask`` 1) only when that token is assistant-generated; a document's last position and all
padding carry no loss, so nothing is ever predicted across a document boundary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nemo_recipes.data.bin_packing import first_fit_rows
from nemo_recipes.data.chat_render import CHAT_TEMPLATE_KWARGS, render_chat
from nemo_recipes.records.chat import ChatRecord

_GENERATION_TAG = re.compile(r"{%-?\s*generation\s*-?%}")


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot give a reliable assistant-token mask for a record."""


@dataclass(frozen=True)
class TokenizedChat:
    """One rendered, tokenised conversation; ``assistant_mask[i]`` is True for trained tokens."""

    input_ids: list[int]
    assistant_mask: list[bool]
    record_id: str | None = None

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.assistant_mask):
            raise ValueError(
                f"input_ids ({len(self.input_ids)}) and assistant_mask ({len(self.assistant_mask)}) "
                "must have the same length"
            )


@dataclass(frozen=True)
class PackedRow:
    """One training row of exactly ``seq_length`` tokens holding one or more whole documents.

    ``tokens``/``labels``/``loss_mask``/``position_ids`` all have length ``seq_length``; documents
    sit back to back from position 0 in ``document_indices`` order (indices into the examples given
    to the packer), padding fills the rest. ``position_ids`` restart at 0 for each document and for
    the padding run.
    """

    tokens: list[int]
    labels: list[int]
    loss_mask: list[int]
    position_ids: list[int]
    document_lengths: list[int]
    document_indices: list[int]

    @property
    def padding_length(self) -> int:
        """Number of padding positions at the end of the row."""
        return len(self.tokens) - sum(self.document_lengths)


@dataclass(frozen=True)
class SFTBatch:
    """A micro-batch of ``b`` rows of ``s`` tokens, given to megatron-core's GPT as ONE packed row of
    ``b x s`` tokens in thd form (no attention mask: each document attends only to itself).

    tokens: [1, b*s] int64; labels: [1, b*s] int64 (next token; pad id where there is none);
    loss_mask: [1, b*s] float32 (1.0 where the label is an assistant token of the same document);
    position_ids: [1, b*s] int64 (restart at 0 per document); document_lengths: the lengths of the
    documents in order, each row's padding run a document of its own (they sum to b*s; the model's
    ``PackedSeqParams``).
    """

    tokens: torch.Tensor
    labels: torch.Tensor
    loss_mask: torch.Tensor
    position_ids: torch.Tensor
    document_lengths: list[int]


def tokenize_chat(tokenizer: Any, record: ChatRecord | Mapping[str, Any]) -> TokenizedChat:
    """Render ``record`` with ``tokenizer``'s chat template and mark the assistant tokens.

    Rendered through :mod:`nemo_recipes.data.chat_render` (the template variables RL prompts use).
    A template with ``{% generation %}`` markers gives the mask directly
    (``return_assistant_tokens_mask``). Otherwise (real Qwen/Llama templates) each assistant turn's
    span is found on the full rendering, so the template need not be prefix-stable (Qwen3 drops the
    think block of earlier turns): see :func:`_assistant_spans`. Either way a token is marked when it
    overlaps an assistant span. Raises :class:`ChatTemplateError` when nothing is marked.
    """
    if not isinstance(record, ChatRecord):
        record = ChatRecord.model_validate(record)
    template = tokenizer.chat_template
    if not isinstance(template, str):
        raise ChatTemplateError(
            f"tokenizer has no single string chat template (got {type(template).__name__})"
        )
    messages = [message.model_dump() for message in record.messages]
    if _GENERATION_TAG.search(template):
        encoded = tokenizer.apply_chat_template(
            messages,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            **CHAT_TEMPLATE_KWARGS,
        )
        input_ids = list(encoded["input_ids"])
        assistant_mask = [bool(flag) for flag in encoded["assistant_masks"]]
    else:
        full_text = render_chat(tokenizer, messages)
        spans = _assistant_spans(tokenizer, messages, full_text, record.id)
        encoding = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
        input_ids = list(encoding["input_ids"])
        assistant_mask = [
            any(token_start < span_end and token_end > span_start for span_start, span_end in spans)
            for token_start, token_end in encoding["offset_mapping"]
        ]
    if not any(assistant_mask):
        raise ChatTemplateError(f"record {record.id!r}: the chat template marked no assistant tokens")
    return TokenizedChat(input_ids=input_ids, assistant_mask=assistant_mask, record_id=record.id)


def _assistant_spans(
    tokenizer: Any, messages: list[dict[str, str]], full_text: str, record_id: str | None
) -> list[tuple[int, int]]:
    """Character spans of ``full_text`` the model generates, one per assistant message.

    Each assistant message's content is located in the full rendering by rendering the conversation
    once more with every assistant content replaced by a unique marker; putting the contents back
    must give the full rendering exactly (else the template rewrites the content and its tokens
    cannot be located: :class:`ChatTemplateError`). A span then runs

    * from where the generation prompt of ``messages[:i]`` ends, when that prompt is a prefix of the
      full rendering and ends at or before the content (text the template puts between the prompt
      and the content, such as a think block after a thinking-mode prompt, is generated by the
      model); otherwise (an earlier turn rendered as history) from the content itself;
    * through the text the template closes the turn with (``<|im_end|>``): what follows the content
      when ``messages[:i + 1]`` is rendered and also follows it in the full rendering, without
      trailing whitespace (the newline after the end-of-turn token is not trained on).
    """
    assistant = [index for index, message in enumerate(messages) if message["role"] == "assistant"]
    markers = _markers(len(assistant), full_text)
    marked = [dict(message) for message in messages]
    for index, marker in zip(assistant, markers, strict=True):
        marked[index]["content"] = marker
    marked_text = render_chat(tokenizer, marked)

    contents: list[tuple[int, int]] = []
    pieces: list[str] = []
    cursor = 0
    for index, marker in zip(assistant, markers, strict=True):
        at = marked_text.find(marker, cursor)
        if at < 0 or marked_text.count(marker) != 1:
            raise ChatTemplateError(
                f"record {record_id!r}: the chat template does not render assistant message {index} "
                "once, in order; its tokens cannot be located"
            )
        pieces.append(marked_text[cursor:at])
        start = sum(map(len, pieces))
        pieces.append(messages[index]["content"])
        contents.append((start, start + len(messages[index]["content"])))
        cursor = at + len(marker)
    pieces.append(marked_text[cursor:])
    rebuilt = "".join(pieces)
    if rebuilt != full_text:
        raise ChatTemplateError(
            f"record {record_id!r}: the chat template does not render the assistant contents verbatim "
            f"(first difference at character {_divergence(rebuilt, full_text)} of the rendering: it "
            "strips or rewrites them); their tokens cannot be located"
        )

    spans = []
    for number, (index, (content_start, content_end)) in enumerate(zip(assistant, contents, strict=True)):
        start = content_start
        if index > 0:
            prompt = render_chat(tokenizer, messages[:index], add_generation_prompt=True)
            if len(prompt) <= content_start and full_text.startswith(prompt):
                start = len(prompt)
        through = render_chat(tokenizer, marked[: index + 1])
        closing = through[through.index(markers[number]) + len(markers[number]) :]
        closing = _common_prefix(closing, full_text[content_end:]).rstrip()
        spans.append((start, content_end + len(closing)))
    return spans


def _markers(count: int, text: str) -> list[str]:
    """``count`` distinct marker strings, none of which occurs in ``text`` (nor in one another)."""
    salt = 0
    while True:
        markers = [f"\ue000redone-assistant-{salt}-{number}\ue001" for number in range(count)]
        if not any(marker in text for marker in markers):
            return markers
        salt += 1


def _common_prefix(a: str, b: str) -> str:
    return a[: _divergence(a, b)]


def _divergence(prefix: str, text: str) -> int:
    return next(
        (position for position, (a, b) in enumerate(zip(prefix, text, strict=False)) if a != b),
        min(len(prefix), len(text)),
    )


def pack_sequences(
    examples: Sequence[TokenizedChat], seq_length: int, *, pad_token_id: int = 0, truncate: bool = False
) -> list[PackedRow]:
    """Pack whole conversations into rows of exactly ``seq_length`` tokens.

    Greedy first-fit in input order: each example goes into the first row (in creation order) with
    room for it, else starts a new row; documents keep input order within a row. Deterministic, and
    no conversation is split across rows. A conversation longer than ``seq_length`` raises
    ``ValueError`` naming it, unless ``truncate=True`` keeps its first ``seq_length`` tokens.
    ``pad_token_id`` fills padding and unpredicted labels; any valid id works, since those positions
    are never trained on and no document attends to them (0 is the shipped tokenizer's pad id).
    """
    _check_seq_length(seq_length)
    lengths = [
        _document_length(example, index, seq_length, truncate) for index, example in enumerate(examples)
    ]
    row_members = first_fit_rows(lengths, seq_length)
    return [_assemble_row(examples, members, seq_length, pad_token_id) for members in row_members]


def unpacked_rows(
    examples: Sequence[TokenizedChat], seq_length: int, *, pad_token_id: int = 0, truncate: bool = False
) -> list[PackedRow]:
    """One conversation per row, right-padded to ``seq_length``; same fields and rules as packing."""
    _check_seq_length(seq_length)
    for index, example in enumerate(examples):
        _document_length(example, index, seq_length, truncate)
    return [_assemble_row(examples, [index], seq_length, pad_token_id) for index in range(len(examples))]


def _check_seq_length(seq_length: int) -> None:
    if seq_length < 2:
        raise ValueError(f"seq_length must be >= 2, got {seq_length}")


def _document_length(example: TokenizedChat, index: int, seq_length: int, truncate: bool) -> int:
    length = len(example.input_ids)
    if length == 0:
        raise ValueError(f"example {index} (record {example.record_id!r}) has no tokens")
    if length > seq_length and not truncate:
        raise ValueError(
            f"example {index} (record {example.record_id!r}) has {length} tokens, more than "
            f"seq_length={seq_length}; raise seq_length or pass truncate=True"
        )
    return min(length, seq_length)


def _assemble_row(
    examples: Sequence[TokenizedChat], members: list[int], seq_length: int, pad_token_id: int
) -> PackedRow:
    tokens: list[int] = []
    labels: list[int] = []
    loss_mask: list[int] = []
    position_ids: list[int] = []
    document_lengths: list[int] = []
    for index in members:
        example = examples[index]
        length = min(len(example.input_ids), seq_length)
        document = example.input_ids[:length]
        tokens += document
        # The document's last position has no next token of its own: it predicts nothing.
        labels += [*document[1:], pad_token_id]
        loss_mask += [int(flag) for flag in example.assistant_mask[1:length]] + [0]
        position_ids += list(range(length))
        document_lengths.append(length)
    padding_length = seq_length - len(tokens)
    if padding_length < 0:
        raise AssertionError(f"row overflows seq_length={seq_length} by {-padding_length} tokens")
    tokens += [pad_token_id] * padding_length
    labels += [pad_token_id] * padding_length
    loss_mask += [0] * padding_length
    position_ids += list(range(padding_length))
    return PackedRow(
        tokens=tokens,
        labels=labels,
        loss_mask=loss_mask,
        position_ids=position_ids,
        document_lengths=document_lengths,
        document_indices=list(members),
    )


def collate(rows: Sequence[PackedRow]) -> SFTBatch:
    """Rows of equal length, back to back as one packed row (shapes in :class:`SFTBatch`)."""
    if not rows:
        raise ValueError("collate needs at least one row")
    seq_length = len(rows[0].tokens)
    for number, row in enumerate(rows):
        if len(row.tokens) != seq_length:
            raise ValueError(f"row {number} has {len(row.tokens)} tokens, row 0 has {seq_length}")

    def joined(field: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor([value for row in rows for value in getattr(row, field)], dtype=dtype).unsqueeze(
            0
        )

    return SFTBatch(
        tokens=joined("tokens", torch.int64),
        labels=joined("labels", torch.int64),
        loss_mask=joined("loss_mask", torch.float32),
        position_ids=joined("position_ids", torch.int64),
        document_lengths=[n for row in rows for n in [*row.document_lengths, row.padding_length] if n],
    )
