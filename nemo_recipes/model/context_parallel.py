"""Context parallelism for packed (thd) rows: what a rank gives the model, and the per-token values back.

A packed row (tokens, positions, labels: [1, t], its documents' lengths) goes to the model as this
context-parallel rank's shard (nemo_recipes.data.context_parallel: every document padded to a multiple
of 2 x cp and cut into 2 x cp chunks, rank r keeping chunks r and 2 x cp - 1 - r) with the
`PackedSeqParams` of that layout, as Transformer Engine's attention and megatron-core's thd RoPE take
them (`PackedDotProductAttention` on the local spec takes the same). The model's per-token outputs of
the shard (losses, logprobs, entropies: [1, t_local]) are gathered back into the whole row,
`gather_tokens`, so the losses downstream see every token of every sequence on every rank of the group,
exactly as without context parallelism (sequence aggregations, per-response indexing, metrics).

Every rank of the group then computes the same loss: its gradient reaches each rank's own tokens only
(the gather's backward), megatron's DDP sums the gradients over data x context parallel ranks, and the
loss normaliser is counted once per group (`counted_once`). At a context-parallel size of 1 everything
here is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import all_gather_first_dim

import torch
from megatron.core import parallel_state
from megatron.core.packed_seq_params import PackedSeqParams

from nemo_recipes.data.context_parallel import shard_positions, shard_row, unshard_index
from nemo_recipes.model.packed_attention import packed_seq_params


@dataclass(frozen=True)
class PackedInputs:
    """This rank's share of a packed row: tokens and position ids [1, t_local], and the PackedSeqParams
    of the row's layout."""

    tokens: torch.Tensor
    position_ids: torch.Tensor
    params: PackedSeqParams


def packed_inputs(tokens: torch.Tensor, position_ids: torch.Tensor, lengths: Sequence[int]) -> PackedInputs:
    """The model inputs of a packed row of documents of `lengths` on this context-parallel rank (the
    row itself, and its plain PackedSeqParams, without context parallelism)."""
    cp_size = parallel_state.get_context_parallel_world_size()
    params = packed_seq_params(lengths, tokens.device, cp_size)
    if cp_size == 1:
        return PackedInputs(tokens, position_ids, params)
    rank = parallel_state.get_context_parallel_rank()
    positions = shard_positions(lengths, cp_size, rank).to(position_ids.device)
    return PackedInputs(shard(tokens, lengths), positions, params)


def shard(row: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """[1, t, ...] values of a packed row (labels, tokens) -> [1, t_local, ...], this context-parallel
    rank's tokens (0 at the padding); the row itself without context parallelism."""
    cp_size = parallel_state.get_context_parallel_world_size()
    if cp_size == 1:
        return row
    return shard_row(row, lengths, cp_size, parallel_state.get_context_parallel_rank(), pad=0)


def gather_tokens(local: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """[1, t_local, ...] per-token values of this rank's shard -> [1, t, ...] of the whole row, padding
    dropped, on every rank of the context-parallel group; differentiable (each rank's gradient flows to
    its own tokens). The values themselves without context parallelism."""
    cp_size = parallel_state.get_context_parallel_world_size()
    if cp_size == 1:
        return local
    gathered = all_gather_first_dim(local[0], parallel_state.get_context_parallel_group(), reduce_grad=False)
    return gathered[unshard_index(lengths, cp_size).to(local.device)].unsqueeze(0)


def counted_once(normaliser: torch.Tensor) -> torch.Tensor:
    """A loss normaliser of a row (its token or sequence count), kept on the first rank of the
    context-parallel group and 0 on the others: megatron-core sums the normalisers over data x context
    parallel ranks, and every rank of the group computes the loss of the same whole row."""
    if parallel_state.get_context_parallel_rank() == 0:
        return normaliser
    return torch.zeros_like(normaliser)
