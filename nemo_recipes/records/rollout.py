"""Rollout records: what an engine returns (`Completion`) and what the trainer learns from (`RolloutGroup`).

Torch-free dataclasses, so the engine side (rollout/) and the trainer side (training/) share them
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


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
    routed_experts: np.ndarray | None = None
    """Mixture-of-experts engines asked for their routing (`grpo.routing_replay`): the experts the engine
    routed each token through, [prompt + response - 1 tokens, MoE layers, top-k] integers, in position
    order (the last response token is never fed back, so it has no routing). None otherwise."""

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(f"{len(self.token_ids)} tokens but {len(self.logprobs)} logprobs")
        if self.routed_experts is not None and self.routed_experts.ndim != 3:
            shape = self.routed_experts.shape
            raise ValueError(f"routed_experts must be [tokens, layers, top-k], got {shape}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Completion):
            return NotImplemented
        same_routing = (self.routed_experts is None) == (other.routed_experts is None) and (
            self.routed_experts is None or np.array_equal(self.routed_experts, other.routed_experts)
        )
        return (
            self.token_ids == other.token_ids
            and self.logprobs == other.logprobs
            and self.finish_reason == other.finish_reason
            and same_routing
        )


@dataclass(frozen=True)
class RolloutGroup:
    """The responses to one prompt, with their task rewards (before any length penalty)."""

    position: int
    """Draw position of the prompt in the stage's prompt stream."""
    task: str
    prompt_ids: list[int]
    completions: list[Completion]
    rewards: list[float]
    equivalent: list[bool]
    """Whether each response reaches the task's `equivalent_at` score (its pass rate)."""
    filler: bool = False
    """An uninformative group that fills a slot after `max_generation_rounds`: logged, not trained on
    (zero advantage, outside the loss and its normaliser)."""
    policy_version: int = 0
    """The policy that generated the group: its weights after this many trainer steps of the stage."""

    @property
    def informative(self) -> bool:
        return len(set(self.rewards)) > 1
