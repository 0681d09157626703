"""What an SFT row trains on, read back as text: shared by the chat-template tests."""

from __future__ import annotations

from nemo_recipes.data.sft_dataset import TokenizedChat
from nemo_recipes.records.chat import ChatRecord


def trained_runs(tokenizer, chat: TokenizedChat) -> list[str]:  # type: ignore[no-untyped-def]
    """Decode each maximal run of trained (assistant-masked) tokens."""
    runs: list[list[int]] = []
    previous = False
    for token, trained in zip(chat.input_ids, chat.assistant_mask, strict=True):
        if trained and not previous:
            runs.append([])
        if trained:
            runs[-1].append(token)
        previous = trained
    return [tokenizer.decode(run) for run in runs]


def assistant_answers(record: ChatRecord) -> list[str]:
    """Each assistant turn's content with its ChatML end-of-turn token: what should be trained."""
    return [message.content + "<|im_end|>" for message in record.messages if message.role == "assistant"]
