"""Which tokens of a packed row each context-parallel rank holds (nemo_recipes/data/context_parallel.py):
the layout Transformer Engine's thd attention expects, and the way back to the whole row."""

from __future__ import annotations

import torch

from nemo_recipes.data.context_parallel import (
    gather_order,
    padded_lengths,
    shard_index,
    shard_positions,
    shard_row,
    unshard_index,
)


def test_documents_are_padded_to_twice_the_group_and_split_early_and_late_chunk() -> None:
    lengths = [5, 1, 8]
    assert padded_lengths(lengths, 1) == lengths
    assert padded_lengths(lengths, 2) == [8, 4, 8]
    # Rank 0 keeps chunks 0 and 3 of each padded document (chunk = padded / 4), rank 1 chunks 1 and 2.
    assert shard_index(lengths, 2, 0).tolist() == [0, 1, 6, 7, 8, 11, 12, 13, 18, 19]
    assert shard_index(lengths, 2, 1).tolist() == [2, 3, 4, 5, 9, 10, 14, 15, 16, 17]
    assert shard_positions(lengths, 2, 1).tolist() == [[2, 3, 4, 5, 1, 2, 2, 3, 4, 5]]


def test_shards_gathered_in_rank_order_give_the_row_back() -> None:
    lengths = [5, 1, 9, 3, 6]
    row = torch.arange(100, 100 + sum(lengths)).unsqueeze(0)
    for cp in (2, 3, 4):
        shards = [shard_row(row, lengths, cp, r, pad=-1) for r in range(cp)]
        assert len({s.shape[1] for s in shards}) == 1  # every rank holds as many tokens
        gathered = torch.cat(shards, dim=1)[0]
        assert torch.equal(gathered[unshard_index(lengths, cp)], row[0])
        assert (gathered[gather_order(lengths, cp)] == -1).sum().item() == sum(
            padded_lengths(lengths, cp)
        ) - sum(lengths)
    assert shard_row(row, lengths, 1, 0, pad=-1) is row
