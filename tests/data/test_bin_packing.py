"""Token-budget bins and token-balanced data-parallel shares."""

from __future__ import annotations

import random

import pytest

from nemo_recipes.data.bin_packing import balanced_shares, first_fit_decreasing, first_fit_rows


def test_first_fit_decreasing_places_the_long_items_first() -> None:
    lengths = [3, 3, 3, 7, 7, 7]
    assert len(first_fit_rows(lengths, capacity=10)) == 4  # in input order the 3s share a bin
    assert first_fit_decreasing(lengths, capacity=10) == [[0, 3], [1, 4], [2, 5]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bins_hold_every_item_once_within_capacity(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.choice([3, 5, 8, 40, 120, 300]) for _ in range(200)]
    bins = first_fit_decreasing(lengths, capacity=512)
    assert sorted(i for b in bins for i in b) == list(range(200))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    assert all(b == sorted(b) for b in bins)
    assert len(bins) <= -(-sum(lengths) // 512) * 11 // 9 + 1  # FFD's bound over the volume bound


def test_balanced_shares_even_out_tokens_not_counts() -> None:
    lengths = [100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    shares = balanced_shares(lengths, 2)
    assert shares == [[0], list(range(1, 11))]
    sums = [sum(lengths[i] for i in s) for s in shares]
    assert sums == [100, 100]
    assert balanced_shares([5, 5, 5], 3) == [[0], [1], [2]]
    with pytest.raises(ValueError, match="parts must be >= 1"):
        balanced_shares([1], 0)
