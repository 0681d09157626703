"""What a rollout engine is to the RL stage: typed completions and a small protocol.

A second backend (SGLang, an HTTP server) is one new module implementing `RolloutEngine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from nemo_recipes.rl_config import SamplingConfig


@dataclass(frozen=True)
class Completion:
    """One sampled response to a prompt.

    `logprobs[i]` is the engine's log-probability of `token_ids[i]` under the distribution it sampled
    from: softmax(logits / temperature), renormalised over the top-k / top-p set when those are on.
    The trainer's policy is softmax(logits / temperature) over the whole vocabulary, so the two agree
    exactly (up to numerics) only with top_p = 1 and top_k = -1.
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: Literal["stop", "length"]
    """stop: ended by an end-of-sequence token (included in token_ids); length: max_response_tokens."""

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(f"{len(self.token_ids)} tokens but {len(self.logprobs)} logprobs")


class RolloutEngine(Protocol):
    """An inference engine colocated with the trainer, refit with the trainer's weights each step."""

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        """`sampling.num_generations_per_prompt` completions per prompt, in prompt order.

        `seeds[i]` seeds prompt i's sampling: a prompt's completions depend only on the prompt, the
        sampling settings, its seed and the weights (not on the other prompts in the call).
        """
        ...

    def refit(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights with these HF-named full tensors (consumes the whole iterable)."""
        ...

    def sleep(self) -> None:
        """Free accelerator memory (weights, KV cache) while the trainer steps."""
        ...

    def wake_up(self) -> None:
        """Undo `sleep` before the next refit / generation."""
        ...

    def shutdown(self) -> None:
        """Stop the engine and release everything it holds."""
        ...
