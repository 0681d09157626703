"""Which tokens of a packed row each context-parallel rank holds: the layout Transformer Engine and
megatron-core's thd RoPE expect.

Every document of the row is padded at its end to a multiple of 2 x cp tokens and cut into 2 x cp equal
chunks; rank r keeps chunks r and 2 x cp - 1 - r of every document (an early and a late chunk, so causal
attention costs every rank the same), documents in order. The padded row's layout is what
`cu_seqlens_*_padded` describe (`nemo_recipes.model.packed_attention.packed_seq_params`). Padding sits
after a document's last token, so under causal attention it changes nothing for the real tokens; its
positions carry no loss (they are dropped again when a rank's values are gathered, `unshard_index`).
Pure index math over document lengths: the model layer does the communication.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from nemo_recipes.data.bin_packing import round_up


def padded_lengths(lengths: Sequence[int], cp_size: int) -> list[int]:
    """Each document's length rounded up to a multiple of 2 x cp_size (unchanged at cp_size 1)."""
    unit = 2 * cp_size if cp_size > 1 else 1
    return [round_up(int(n), unit) for n in lengths]


def shard_index(lengths: Sequence[int], cp_size: int, cp_rank: int) -> torch.Tensor:
    """[t_local] int64: the positions in the padded row (documents of `padded_lengths`, back to back)
    of the tokens rank `cp_rank` holds, in its order: per document, chunk cp_rank then chunk
    2 x cp_size - 1 - cp_rank."""
    if not 0 <= cp_rank < cp_size:
        raise ValueError(f"context-parallel rank {cp_rank} outside a group of {cp_size}")
    parts, start = [], 0
    for padded in padded_lengths(lengths, cp_size):
        chunk = padded // (2 * cp_size) if cp_size > 1 else padded
        for c in (cp_rank, 2 * cp_size - 1 - cp_rank) if cp_size > 1 else (0,):
            parts.append(torch.arange(start + c * chunk, start + (c + 1) * chunk))
        start += padded
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def gather_order(lengths: Sequence[int], cp_size: int) -> torch.Tensor:
    """[padded t] int64: for each position of the padded row, where it sits in the ranks' shards
    concatenated in rank order (what an all-gather over the context-parallel group returns)."""
    concatenated = torch.cat([shard_index(lengths, cp_size, r) for r in range(cp_size)])
    order = torch.empty_like(concatenated)
    order[concatenated] = torch.arange(len(concatenated))
    return order


def unshard_index(lengths: Sequence[int], cp_size: int) -> torch.Tensor:
    """[t] int64: for each token of the unpadded row, where it sits in the ranks' shards concatenated
    in rank order; indexing the all-gathered values with it gives the row back, padding dropped."""
    return gather_order(lengths, cp_size)[_real_positions(lengths, cp_size)]


def _real_positions(lengths: Sequence[int], cp_size: int) -> torch.Tensor:
    """[t] int64: where each token of the unpadded row sits in the padded row."""
    starts = [0, *itertools.accumulate(padded_lengths(lengths, cp_size))]
    return torch.cat([torch.arange(s, s + int(n)) for s, n in zip(starts, lengths, strict=False)])


def shard_row(
    row: torch.Tensor, lengths: Sequence[int], cp_size: int, cp_rank: int, pad: int
) -> torch.Tensor:
    """[1, t, ...] values of a packed row -> [1, t_local, ...], this rank's shard (each document padded
    with `pad`); the row itself at cp_size 1."""
    if cp_size == 1:
        return row
    if row.shape[1] != sum(lengths):
        raise ValueError(f"a row of {row.shape[1]} tokens for documents of {sum(lengths)}")
    padded = padded_lengths(lengths, cp_size)
    out = row.new_full((row.shape[0], sum(padded), *row.shape[2:]), pad)
    out[:, _real_positions(lengths, cp_size)] = row
    return out[:, shard_index(lengths, cp_size, cp_rank)]


def shard_positions(lengths: Sequence[int], cp_size: int, cp_rank: int) -> torch.Tensor:
    """[1, t_local] int64 position ids of this rank's shard: each padded document counts from 0."""
    padded = padded_lengths(lengths, cp_size)
    positions = torch.cat([torch.arange(n) for n in padded]).unsqueeze(0)
    return positions[:, shard_index(lengths, cp_size, cp_rank)]
