"""Config sections of the RL stage: sampling, the rollout engine, the policy loss, DAPO's options. Torch-free.

`nemo_recipes.config.GRPOConfig` composes them with the data, batch and optimizer settings.
Defaults follow the recipe (DAPO: clip-higher 0.2/0.28, token-level loss, dynamic sampling, soft
overlong penalty, no KL term).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from nemo_recipes.config_loader import StrictModel


class SamplingConfig(StrictModel):
    """How the rollout engine samples responses (the same settings define the trained policy)."""

    num_generations_per_prompt: PositiveInt = 8
    """Responses per prompt: the GRPO group size (at least 2 there); 1 for evaluation."""
    temperature: float = Field(1.0, ge=0.0)
    """The policy is softmax(logits / temperature) in both the engine and the trainer's logprobs
    (GRPO needs it above 0); 0 is greedy decoding (evaluation)."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1)
    """-1 = no top-k."""
    max_response_tokens: PositiveInt = 256
    stop_at_eos: bool = True


class RolloutEngineConfig(StrictModel):
    """The inference engine that generates rollouts, colocated with the trainer."""

    backend: Literal["vllm"] = "vllm"
    max_model_len: PositiveInt | None = None
    """Default: max_prompt_tokens + max_response_tokens."""
    kv_cache_memory_bytes: PositiveInt | None = 64 << 20
    """KV-cache size. Required on CPU (vLLM otherwise asks for most of the RAM); on GPU set it to
    null to size the cache from gpu_memory_utilization."""
    gpu_memory_utilization: float = Field(0.5, gt=0.0, lt=1.0)
    enforce_eager: bool = True
    """CUDA graphs off: faster start, slower decode. Set false for long GPU runs."""
    sleep_during_training: bool = True
    """GPU: free the KV cache and weights while the trainer steps (vLLM sleep mode). No-op on CPU."""


class PolicyLossConfig(StrictModel):
    """The clipped policy-gradient loss (DAPO defaults)."""

    clip_eps_low: float = Field(0.2, ge=0.0, lt=1.0)
    clip_eps_high: float = Field(0.28, ge=0.0)
    """Clip-higher: ratios are clipped to [1 - clip_eps_low, 1 + clip_eps_high]."""
    aggregation: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"] = "token_mean"
    """token_mean: every response token of the global batch weighs the same (DAPO).
    seq_mean_token_mean: mean over tokens within a response, then over responses (GRPO).
    seq_mean_token_sum: sum over tokens within a response, mean over responses."""
    normalize_advantage_std: bool = True
    """Divide group-centred rewards by the group's standard deviation (off: Dr. GRPO)."""
    kl_coef: float = Field(0.0, ge=0.0)
    """Weight of a KL penalty to the reference (initial) model; 0 = no reference model (the paper)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    tis_cap: PositiveFloat | None = 2.0
    """Truncated importance sampling: weight each token by min(p_trainer / p_engine, tis_cap) to
    correct the engine-vs-trainer logprob mismatch; null disables."""


class DynamicSamplingConfig(StrictModel):
    """DAPO dynamic sampling: drop groups whose rewards are all equal, refill by generating more."""

    enabled: bool = True
    max_generation_rounds: PositiveInt = 4
    """Most generation rounds per step (the first included); a step with fewer informative groups
    than asked trains on what it has and logs it."""


class OverlongPenaltyConfig(StrictModel):
    """DAPO soft overlong punishment on responses near max_response_tokens."""

    enabled: bool = True
    buffer_tokens: PositiveInt = 64
    """Penalty ramps linearly from 0 at (max_response_tokens - buffer_tokens) to -penalty_factor."""
    penalty_factor: PositiveFloat = 1.0
