"""The RL training batch: scored rollouts packed into rows of real tokens for the trainer.

A micro-batch is ONE row holding several sequences back to back (each a prompt, then its response),
given to the model in thd form: the documents' lengths become `cu_seqlens` (megatron-core's
`PackedSeqParams`), so each sequence attends only to itself, positions restart per sequence, and no
padding is computed (a row is padded only when the pipeline needs a fixed row length, and then the
padding is a document of its own). Position `i` of a sequence predicts its token `i + 1`; the
positions that predict response tokens are read back per sequence (`response_index`) into [n, L]
tensors (L: the longest response of the row), which is what the loss works on.

Micro-batches are cut by a token budget: a mini-batch's sequences are split over the data-parallel
ranks with near-equal token counts (`balanced_shares`), then each rank bins its share into rows of at
most `max_tokens_per_micro_batch` tokens, longest first (`first_fit_decreasing`). The number of
micro-batches may differ between mini-batches and ranks; the loss is normalised over the update's
global token (or sequence) count whatever the packing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nemo_recipes.data.bin_packing import balanced_shares, first_fit_decreasing, round_up, split_to_count


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
    routed_experts: np.ndarray | None = None
    """The engine's routing of the sequence's tokens but the last, [length - 1, MoE layers, top-k]
    (`Completion.routed_experts`), when the trainer replays it (`grpo.routing_replay`)."""

    @property
    def length(self) -> int:
        """Tokens of the sequence: prompt and response."""
        return len(self.prompt_ids) + len(self.response_ids)

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("a rollout sample needs a non-empty prompt")
        if len(self.rollout_logprobs) != len(self.response_ids):
            raise ValueError(
                f"{len(self.response_ids)} response tokens but {len(self.rollout_logprobs)} logprobs"
            )
        if self.routed_experts is not None and len(self.routed_experts) != self.length - 1:
            raise ValueError(
                f"routing of {len(self.routed_experts)} tokens for a sequence of {self.length} "
                f"(the engine routes all but the last)"
            )


@dataclass(frozen=True)
class RLBatch:
    """One packed row of `n` sequences (t tokens in all) for a megatron-core GPT forward pass.

    tokens / labels / position_ids: [1, t] int64; `labels` is each sequence's next token (the pad id
    at a sequence's last position), positions restart at 0 for every sequence. document_lengths: the
    lengths of the row's documents, the sequences then any padding (they sum to t; the model's
    `PackedSeqParams`). response_index: [n, L] int64, the row position whose label is response token
    `j` of sequence `i` (0 past the response); response_mask: [n, L] float32, 1.0 for response tokens
    that count in the loss; rollout_logprobs: [n, L] float32, the engine's logprob of each response
    token (0 elsewhere); advantages: [n] float32; tasks: each sequence's task; old_logprobs /
    ref_logprobs: [n, L] float32, attached after collation (None until then, and on non-last
    pipeline stages).
    """

    tokens: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    document_lengths: list[int]
    response_index: torch.Tensor
    response_mask: torch.Tensor
    rollout_logprobs: torch.Tensor
    advantages: torch.Tensor
    tasks: list[str]
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    routed_experts: torch.Tensor | None = None
    routed_tokens: torch.Tensor | None = None
    unreplayed_logprobs: torch.Tensor | None = None

    @property
    def real_tokens(self) -> int:
        """Tokens of the sequences (the row without its padding)."""
        return sum(self.document_lengths[: len(self.tasks)])

    def per_response(self, row_values: torch.Tensor) -> torch.Tensor:
        """[1, t, ...] values at the row's positions -> [n, L, ...] per response token (differentiable)."""
        return row_values[0][self.response_index]


def collate_rollouts(
    samples: Sequence[RolloutSample], pad_token_id: int, row_length: int | None = None, row_multiple: int = 1
) -> RLBatch:
    """Pack `samples` into one row, in order; padded to `row_length` tokens when given (a fixed row
    length, for pipeline parallelism), else to a multiple of `row_multiple` (sequence parallelism
    splits the row evenly over the tensor-parallel ranks), as a padding document of its own."""
    if not samples:
        raise ValueError("collate_rollouts needs at least one sample")
    lengths = [s.length for s in samples]
    total = sum(lengths)
    if row_length is not None and total > row_length:
        raise ValueError(f"{len(samples)} sequences of {total} tokens do not fit a row of {row_length}")
    if row_length is not None and row_length % row_multiple:
        raise ValueError(f"row_length {row_length} is not a multiple of row_multiple {row_multiple}")
    padding = (row_length or round_up(total, row_multiple)) - total
    tokens = torch.full((1, total + padding), pad_token_id, dtype=torch.int64)
    labels = torch.full_like(tokens, pad_token_id)
    longest = max(len(s.response_ids) for s in samples)
    index = torch.zeros(len(samples), longest, dtype=torch.int64)
    response_mask = torch.zeros(len(samples), longest, dtype=torch.float32)
    rollout_logprobs = torch.zeros(len(samples), longest, dtype=torch.float32)
    start = 0
    for row, sample in enumerate(samples):
        ids = torch.tensor(sample.prompt_ids + sample.response_ids)
        tokens[0, start : start + sample.length] = ids
        labels[0, start : start + sample.length - 1] = ids[1:]
        prompt_len, response_len = len(sample.prompt_ids), len(sample.response_ids)
        # Position prompt_len - 1 + j of the sequence predicts response token j.
        index[row, :response_len] = torch.arange(response_len) + start + prompt_len - 1
        response_mask[row, :response_len] = 1.0 if sample.in_loss else 0.0
        rollout_logprobs[row, :response_len] = torch.tensor(sample.rollout_logprobs, dtype=torch.float32)
        start += sample.length
    documents = lengths + ([padding] if padding else [])
    routed, routed_tokens = _collate_routing(samples, total + padding)
    return RLBatch(
        tokens=tokens,
        labels=labels,
        position_ids=torch.cat([torch.arange(n) for n in documents]).unsqueeze(0),
        document_lengths=documents,
        response_index=index,
        response_mask=response_mask,
        rollout_logprobs=rollout_logprobs,
        advantages=torch.tensor([s.advantage for s in samples], dtype=torch.float32),
        tasks=[s.task for s in samples],
        routed_experts=routed,
        routed_tokens=routed_tokens,
    )


def _collate_routing(
    samples: Sequence[RolloutSample], row_length: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The row's engine routing [t, layers, k] and which positions have it, or (None, None)."""
    have = [s.routed_experts is not None for s in samples]
    if not any(have):
        return None, None
    if not all(have):
        raise ValueError("some samples of a row carry the engine's routing and some do not")
    _, layers, k = samples[0].routed_experts.shape
    routed = torch.arange(k, dtype=torch.int64).expand(row_length, layers, k).clone()
    routed_tokens = torch.zeros(row_length, dtype=torch.bool)
    start = 0
    for sample in samples:
        n = sample.length - 1
        routed[start : start + n] = torch.from_numpy(sample.routed_experts.astype(np.int64))
        routed_tokens[start : start + n] = True
        start += sample.length
    return routed, routed_tokens


def micro_batches(
    samples: Sequence[RolloutSample],
    max_tokens: int,
    pad_token_id: int,
    dp_rank: int,
    dp_size: int,
    fixed_row_length: bool = False,
    same_count: bool = False,
    row_multiple: int = 1,
) -> list[RLBatch]:
    """This data-parallel rank's packed rows of `samples` (one mini-batch): its token-balanced share,
    binned longest first into rows of at most `max_tokens` tokens (each padded to `max_tokens` with
    `fixed_row_length`). `same_count`: every rank gets as many rows as the rank with the most (its
    fullest rows split), which expert parallelism needs (its collectives run once per row on every
    rank of the expert-parallel group, which spans data-parallel ranks). `row_multiple`: every row's
    length is a multiple of it (a fixed length is `max_tokens` rounded up to one), for sequence
    parallelism."""
    lengths = [s.length for s in samples]
    too_long = [i for i, n in enumerate(lengths) if n > max_tokens]
    if too_long:
        i = too_long[0]
        raise ValueError(
            f"sample {i} (task {samples[i].task!r}) has {lengths[i]} tokens, more than the micro-batch "
            f"budget {max_tokens}"
        )
    shares = balanced_shares(lengths, dp_size)
    share = shares[dp_rank]
    bins = first_fit_decreasing([lengths[i] for i in share], max_tokens)
    if same_count:
        most = max(len(first_fit_decreasing([lengths[i] for i in s], max_tokens)) for s in shares)
        try:
            bins = split_to_count(bins, most)
        except ValueError as e:
            raise ValueError(
                f"data-parallel rank {dp_rank} has {len(share)} sequences, too few for the {most} "
                f"micro-batches another rank needs under expert parallelism: raise "
                f"grpo.max_tokens_per_micro_batch or the responses per mini-batch"
            ) from e
    row_length = round_up(max_tokens, row_multiple) if fixed_row_length else None
    return [
        collate_rollouts([samples[share[j]] for j in members], pad_token_id, row_length, row_multiple)
        for members in bins
    ]
