"""Bin packing of sequences by token count: packed rows for SFT, token-budget micro-batches for RL,
and data-parallel shares balanced by tokens. Pure Python on lengths; deterministic."""

from __future__ import annotations

from collections.abc import Sequence


def first_fit_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Greedy first-fit bin packing in input order: the item indices held by each row.

    A max-tree over the rows' free space finds the leftmost row with room in O(log n), so packing
    millions of conversations stays fast. Rows not yet opened have full capacity and lie to the right
    of every opened row, so the leftmost fit opens a new row exactly when no open row has room.
    """
    size = 1
    while size < len(lengths):
        size *= 2
    free = [capacity] * (2 * size)  # free[node] = largest free space among the rows below node
    row_members: list[list[int]] = []
    for index, length in enumerate(lengths):
        if not 0 < length <= capacity:
            raise ValueError(f"item {index} has length {length}, outside 1..{capacity}")
        node = 1
        while node < size:
            node = 2 * node if free[2 * node] >= length else 2 * node + 1
        row = node - size
        if row == len(row_members):
            row_members.append([])
        row_members[row].append(index)
        free[node] -= length
        node //= 2
        while node:
            free[node] = max(free[2 * node], free[2 * node + 1])
            node //= 2
    return row_members


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit over the items longest first (ties in input order): at most 11/9 x the optimal number
    of bins plus one. Each bin lists its items in input order."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins = first_fit_rows([lengths[i] for i in order], capacity)
    return [sorted(order[j] for j in members) for members in bins]


def balanced_shares(lengths: Sequence[int], parts: int) -> list[list[int]]:
    """`parts` shares of the items with near-equal token sums: longest first, each to the share with
    the fewest tokens so far (then the fewest items, then the lowest index). Each share lists its
    items in input order; with at least `parts` items, none is empty."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    loads = [(0, 0, part) for part in range(parts)]
    shares: list[list[int]] = [[] for _ in range(parts)]
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        tokens, count, part = min(loads)
        loads[part] = (tokens + lengths[index], count + 1, part)
        shares[part].append(index)
    return [sorted(share) for share in shares]


def split_to_count(bins: list[list[int]], count: int) -> list[list[int]]:
    """`bins` split until there are `count` of them: the bin with the most items (the first of equals)
    is halved, its first half kept in place and the rest inserted after it. Raises when there are
    fewer items than `count` (no split is left)."""
    bins = [list(b) for b in bins]
    while len(bins) < count:
        widest = max(range(len(bins)), key=lambda i: (len(bins[i]), -i))
        members = bins[widest]
        if len(members) < 2:
            raise ValueError(f"{sum(map(len, bins))} items cannot fill {count} bins")
        half = len(members) // 2
        bins[widest : widest + 1] = [members[:half], members[half:]]
    return bins


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is at least `n` (a row or document padded to it)."""
    return -(-n // multiple) * multiple
