"""The one way a conversation is rendered with the tokenizer's chat template (torch-free).

SFT targets (:func:`nemo_recipes.data.sft_dataset.tokenize_chat`) and generation prompts for GRPO,
evaluation, the stage-2 rehearsal and ``redone config --prompt-tokens``
(:func:`nemo_recipes.data.rl_prompts.prompt_token_ids`) both render through here, with the same
template variables, so the tokens SFT trains on are the tokens the model generates after an RL prompt.
See docs/data-format.md, "What is trained on".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

CHAT_TEMPLATE_KWARGS: Mapping[str, Any] = MappingProxyType({"enable_thinking": False})
"""Template variables of every rendering: the recipe trains a non-thinking specialist.

Qwen3's template reads ``enable_thinking``: ``False`` makes its generation prompt end with an empty
``<think>\\n\\n</think>\\n\\n`` block, so the model answers directly, and that block is prompt, never
a training target. A template that does not read the variable renders exactly as without it."""


def render_chat(
    tokenizer: Any, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = False
) -> str:
    """The conversation as text, rendered with :data:`CHAT_TEMPLATE_KWARGS`."""
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt, **CHAT_TEMPLATE_KWARGS
    )


def generation_prompt_ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The token ids a model is asked to continue: ``messages`` and the template's generation prompt."""
    encoded = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=True, return_dict=True, **CHAT_TEMPLATE_KWARGS
    )
    return list(encoded["input_ids"])
