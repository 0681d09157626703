"""Packed RL rows on hand-made examples: token layout, next-token labels per sequence, the positions of
the response tokens, masks, aligned logprobs; token-budget micro-batches."""

from __future__ import annotations

import pytest
import torch

from nemo_recipes.data.rl_batch import RolloutSample, collate_rollouts, micro_batches

PAD = 0


def samples() -> list[RolloutSample]:
    return [
        RolloutSample([11, 12, 13], [21, 22], [-0.5, -1.5], advantage=1.0, task="a"),
        RolloutSample([31], [41, 42, 43, 44], [-0.1, -0.2, -0.3, -0.4], advantage=-0.5, task="b"),
    ]


def test_collate_packs_sequences_back_to_back() -> None:
    batch = collate_rollouts(samples(), pad_token_id=PAD)
    assert batch.tokens.tolist() == [[11, 12, 13, 21, 22, 31, 41, 42, 43, 44]]
    # Each sequence's next token; its last position predicts nothing (the pad id).
    assert batch.labels.tolist() == [[12, 13, 21, 22, 0, 41, 42, 43, 44, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]]
    assert batch.document_lengths == [5, 5] and batch.real_tokens == 10
    # The last prompt position predicts the first response token: rows 2, 3 for a; 5..8 for b.
    assert batch.response_index.tolist() == [[2, 3, 0, 0], [5, 6, 7, 8]]
    assert batch.response_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch.labels[0][batch.response_index].tolist()[1] == [41, 42, 43, 44]
    expected = torch.tensor([[-0.5, -1.5, 0, 0], [-0.1, -0.2, -0.3, -0.4]])
    assert torch.equal(batch.rollout_logprobs, expected)
    assert batch.advantages.tolist() == [1.0, -0.5] and batch.tasks == ["a", "b"]
    values = torch.arange(10.0).reshape(1, 10, 1).requires_grad_()
    picked = batch.per_response(values)
    assert picked.shape == (2, 4, 1) and picked[1, :, 0].tolist() == [5, 6, 7, 8]
    picked.sum().backward()  # differentiable
    assert values.grad is not None


def test_a_fixed_row_length_pads_with_a_document_of_its_own() -> None:
    batch = collate_rollouts(samples(), pad_token_id=PAD, row_length=13)
    assert batch.tokens.shape == (1, 13) and batch.document_lengths == [5, 5, 3]
    assert batch.real_tokens == 10 and batch.position_ids.tolist()[0][-3:] == [0, 1, 2]
    with pytest.raises(ValueError, match="do not fit a row of 9"):
        collate_rollouts(samples(), pad_token_id=PAD, row_length=9)


def test_sequence_parallel_rows_are_padded_to_a_multiple() -> None:
    batch = collate_rollouts(samples(), pad_token_id=PAD, row_multiple=4)  # 10 tokens -> 12
    assert batch.tokens.shape == (1, 12) and batch.document_lengths == [5, 5, 2]
    assert batch.tokens.tolist()[0][-2:] == [PAD, PAD] and batch.real_tokens == 10
    assert batch.response_mask.sum() == 6  # the padding is in no loss
    assert collate_rollouts(samples(), pad_token_id=PAD, row_multiple=5).document_lengths == [5, 5]
    with pytest.raises(ValueError, match="row_length 13 is not a multiple of row_multiple 2"):
        collate_rollouts(samples(), pad_token_id=PAD, row_length=13, row_multiple=2)
    many = [RolloutSample([1] * 3, [2] * n, [-0.1] * n, advantage=0.0, task=str(n)) for n in (4, 6, 10)]
    rows = micro_batches(many, 15, PAD, 0, 1, row_multiple=4)  # one row each: 7, 9, 13 tokens
    assert sorted(b.tokens.shape[1] for b in rows) == [8, 12, 16]
    fixed = micro_batches(many, 15, PAD, 0, 1, fixed_row_length=True, row_multiple=4)
    assert {b.tokens.shape[1] for b in fixed} == {16}  # the budget 15 rounded up


def test_micro_batches_bin_by_tokens_and_balance_ranks() -> None:
    many = [
        RolloutSample([1] * p, [2] * r, [-0.1] * r, advantage=0.0, task=str(i))
        for i, (p, r) in enumerate([(10, 40), (3, 2), (4, 1), (20, 30), (2, 2), (5, 5)])
    ]
    lengths = [s.length for s in many]  # 50, 5, 5, 50, 4, 10
    rows = micro_batches(many, 64, PAD, dp_rank=0, dp_size=1)
    assert sorted(t for b in rows for t in b.tasks) == sorted(s.task for s in many)
    assert all(b.tokens.shape[1] <= 64 for b in rows) and len(rows) == 2  # 124 tokens in two rows
    shares = [micro_batches(many, 64, PAD, rank, 2) for rank in (0, 1)]
    tokens = [sum(b.real_tokens for b in share) for share in shares]
    assert sorted(tokens) == [60, 64] and sum(tokens) == sum(lengths)  # 50+10+4 | 50+5+5
    fixed = micro_batches(many, 64, PAD, 0, 1, fixed_row_length=True)
    assert {b.tokens.shape[1] for b in fixed} == {64}


def test_too_long_and_malformed_samples_are_errors() -> None:
    with pytest.raises(ValueError, match="has 5 tokens, more than the micro-batch budget 4"):
        micro_batches(samples(), 4, PAD, 0, 1)
    with pytest.raises(ValueError, match="2 response tokens but 1 logprobs"):
        RolloutSample([1], [2, 3], [-0.1], advantage=0.0, task="a")
    with pytest.raises(ValueError, match="non-empty prompt"):
        RolloutSample([], [2], [-0.1], advantage=0.0, task="a")
    with pytest.raises(ValueError, match="at least one sample"):
        collate_rollouts([], pad_token_id=PAD)
