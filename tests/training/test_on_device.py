"""Batches built on the host reach the model's device (`training.step.on_device`): every tensor field
moves, plain fields stay, and a batch already there is passed through untouched (CPU runs copy
nothing). Checked against the `meta` device, the one non-CPU device this machine has; the CUDA path
itself is not run here."""

from __future__ import annotations

import torch

from nemo_recipes.data.rl_batch import RolloutSample, collate_rollouts
from nemo_recipes.training.step import on_device


def _batch():
    samples = [
        RolloutSample([1, 2, 3], [4, 5], [-0.1, -0.2], 1.0, "t", True, None),
        RolloutSample([6], [7, 8, 9], [-0.3, -0.4, -0.5], -1.0, "u", True, None),
    ]
    return collate_rollouts(samples, pad_token_id=0)


def test_every_tensor_moves_and_the_rest_stays() -> None:
    batch = _batch()
    moved = on_device(batch, torch.device("meta"))
    tensors = [name for name, value in vars(batch).items() if isinstance(value, torch.Tensor)]
    assert {"tokens", "labels", "position_ids", "response_index", "response_mask"} <= set(tensors)
    assert all(getattr(moved, name).device.type == "meta" for name in tensors)
    assert all(getattr(moved, name).shape == getattr(batch, name).shape for name in tensors)
    assert moved.document_lengths == batch.document_lengths and moved.tasks == batch.tasks
    assert moved.old_logprobs is None  # unset fields stay unset
    assert batch.tokens.device.type == "cpu"  # the host batch is not changed


def test_a_batch_already_on_the_device_is_passed_through() -> None:
    batch = _batch()
    assert on_device(batch, torch.device("cpu")) is batch
    assert on_device(batch.tokens, torch.device("cpu")) is batch.tokens  # a bare tensor batch too
    assert on_device(batch.tokens, torch.device("meta")).device.type == "meta"
