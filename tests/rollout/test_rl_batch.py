"""collate_rollouts on a hand-made example: token layout, next-token labels, masks, aligned logprobs."""

from __future__ import annotations

import pytest
import torch

from nemo_recipes.data.rl_batch import RolloutSample, collate_rollouts

PAD = 0


def samples() -> list[RolloutSample]:
    return [
        RolloutSample([11, 12, 13], [21, 22], [-0.5, -1.5], advantage=1.0, task="a"),
        RolloutSample([31], [41, 42, 43, 44], [-0.1, -0.2, -0.3, -0.4], advantage=-0.5, task="b"),
    ]


def test_collate_lays_out_rows_labels_and_masks() -> None:
    batch = collate_rollouts(samples(), seq_length=6, pad_token_id=PAD)
    assert batch.tokens.tolist() == [[11, 12, 13, 21, 22, 0], [31, 41, 42, 43, 44, 0]]
    assert batch.labels.tolist() == [[12, 13, 21, 22, 0, 0], [41, 42, 43, 44, 0, 0]]
    # 1 where the label is a response token: the last prompt position predicts the first response token
    assert batch.response_mask.tolist() == [[0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]]
    expected = torch.tensor([[0, 0, -0.5, -1.5, 0, 0], [-0.1, -0.2, -0.3, -0.4, 0, 0]])
    assert torch.equal(batch.rollout_logprobs, expected)
    assert batch.position_ids.tolist() == [list(range(6))] * 2
    assert batch.advantages.tolist() == [1.0, -0.5]
    assert batch.tasks == ["a", "b"]
    assert batch.attention_mask is None  # megatron-core's own causal mask is exact for these rows
    assert (batch.tokens.dtype, batch.labels.dtype, batch.response_mask.dtype) == (
        torch.int64,
        torch.int64,
        torch.float32,
    )


def test_a_row_may_fill_seq_length_exactly() -> None:
    batch = collate_rollouts(samples()[1:], seq_length=5, pad_token_id=PAD)
    assert batch.labels.tolist() == [[41, 42, 43, 44, 0]]
    assert batch.response_mask.tolist() == [[1, 1, 1, 1, 0]]


def test_too_long_and_malformed_samples_are_errors() -> None:
    with pytest.raises(ValueError, match="more than seq_length=4"):
        collate_rollouts(samples(), seq_length=4, pad_token_id=PAD)
    with pytest.raises(ValueError, match="2 response tokens but 1 logprobs"):
        RolloutSample([1], [2, 3], [-0.1], advantage=0.0, task="a")
    with pytest.raises(ValueError, match="non-empty prompt"):
        RolloutSample([], [2], [-0.1], advantage=0.0, task="a")
    with pytest.raises(ValueError, match="at least one sample"):
        collate_rollouts([], seq_length=4, pad_token_id=PAD)
