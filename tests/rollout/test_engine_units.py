"""Pure pieces of the rollout engine: refit chunking, the Completion record."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load as load_safetensors

from nemo_recipes.records.rollout import Completion
from nemo_recipes.rollout.vllm_engine import safetensors_chunks


def test_refit_chunks_round_trip_and_respect_the_size() -> None:
    embed = torch.arange(12.0).reshape(3, 4)
    weights = [("embed", embed), ("lm_head", embed), ("norm", torch.ones(4)), ("big", torch.zeros(40))]
    chunks = [load_safetensors(blob) for blob in safetensors_chunks(weights, max_bytes=64)]
    # 48 + 48 bytes exceed 64: {embed}, {lm_head, norm}, and the 160-byte tensor alone
    assert [set(chunk) for chunk in chunks] == [{"embed"}, {"lm_head", "norm"}, {"big"}]
    loaded = {name: t for chunk in chunks for name, t in chunk.items()}
    for name, tensor in weights:
        assert torch.equal(loaded[name], tensor)


def test_completion_needs_one_logprob_per_token() -> None:
    Completion(token_ids=[1, 2], logprobs=[-0.1, -0.2], finish_reason="length")
    with pytest.raises(ValueError, match="2 tokens but 1 logprobs"):
        Completion(token_ids=[1, 2], logprobs=[-0.1], finish_reason="stop")
