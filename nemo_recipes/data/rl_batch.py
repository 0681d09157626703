"""The RL training batch: scored rollouts collated into right-padded rows for the trainer.

One row per response: its prompt, then its response tokens, then padding. Position `i` predicts
token `i + 1` (`labels`); it counts in the loss (`response_mask` 1) exactly when that token is a
response token, so the prompt is context only and the last prompt position predicts the first
response token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RolloutSample:
    """One scored response, ready to train on."""

    prompt_ids: list[int]
    response_ids: list[int]
    rollout_logprobs: list[float]
    """The engine's logprob of each response token (`Completion.logprobs`)."""
    advantage: float
    task: str
    in_loss: bool = True
    """False for a filler group's response: in the batch, outside the loss (its response_mask is 0)."""

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("a rollout sample needs a non-empty prompt")
        if len(self.rollout_logprobs) != len(self.response_ids):
            raise ValueError(
                f"{len(self.response_ids)} response tokens but {len(self.rollout_logprobs)} logprobs"
            )


@dataclass(frozen=True)
class RLBatch:
    """`b` rows of `s` tokens for a megatron-core GPT forward pass.

    tokens: [b, s] int64, right-padded with the pad id; labels: [b, s] int64, `tokens` shifted left
    by one (pad id where there is no next token); position_ids: [b, s] int64, 0..s-1;
    response_mask: [b, s] float32, 1.0 where `labels` is a response token; rollout_logprobs: [b, s]
    float32, the engine's logprob of `labels` where `response_mask` is 1, else 0; advantages: [b]
    float32; tasks: the task name of each row; old_logprobs / ref_logprobs: [b, s] float32, the
    trainer's logprobs of `labels` under the weights that generated the rollouts / under the
    reference model, attached after collation (None until then, and on non-last pipeline stages).

    No attention mask: each row is one sequence with padding only at its end, so the causal mask
    megatron-core builds itself (attention_mask=None) is exact, and no [b, 1, s, s] tensor is made
    (it would also push Transformer Engine off its fused kernels). Logits at padding positions are
    garbage and masked out by `response_mask`.
    """

    tokens: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    rollout_logprobs: torch.Tensor
    advantages: torch.Tensor
    tasks: list[str]
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None

    @property
    def attention_mask(self) -> None:
        """What megatron-core's GPTModel takes for these rows: None (its own causal mask)."""
        return None


def collate_rollouts(samples: Sequence[RolloutSample], seq_length: int, pad_token_id: int) -> RLBatch:
    """Stack samples into an `RLBatch` of rows of exactly `seq_length` tokens.

    A sample longer than `seq_length` (prompt + response) is an error: truncating would train on a
    response the engine did not end there.
    """
    if not samples:
        raise ValueError("collate_rollouts needs at least one sample")
    b = len(samples)
    tokens = torch.full((b, seq_length), pad_token_id, dtype=torch.int64)
    response_mask = torch.zeros(b, seq_length, dtype=torch.float32)
    rollout_logprobs = torch.zeros(b, seq_length, dtype=torch.float32)
    for row, sample in enumerate(samples):
        prompt_len, response_len = len(sample.prompt_ids), len(sample.response_ids)
        if prompt_len + response_len > seq_length:
            raise ValueError(
                f"sample {row} (task {sample.task!r}) has {prompt_len} prompt + {response_len} response "
                f"tokens, more than seq_length={seq_length}"
            )
        tokens[row, : prompt_len + response_len] = torch.tensor(sample.prompt_ids + sample.response_ids)
        # Position prompt_len - 1 + j predicts response token j.
        span = slice(prompt_len - 1, prompt_len - 1 + response_len)
        response_mask[row, span] = 1.0 if sample.in_loss else 0.0
        rollout_logprobs[row, span] = torch.tensor(sample.rollout_logprobs, dtype=torch.float32)
    labels = torch.full_like(tokens, pad_token_id)
    labels[:, :-1] = tokens[:, 1:]
    return RLBatch(
        tokens=tokens,
        labels=labels,
        position_ids=torch.arange(seq_length, dtype=torch.int64).expand(b, -1).contiguous(),
        response_mask=response_mask,
        rollout_logprobs=rollout_logprobs,
        advantages=torch.tensor([s.advantage for s in samples], dtype=torch.float32),
        tasks=[s.task for s in samples],
    )
