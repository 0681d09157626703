"""The RL stage's config (stages 1 and 3): prompts, batch, the objective, DAPO's options. Torch-free.

Defaults follow the recipe (DAPO: clip-higher 0.2/0.28, token-level loss, dynamic sampling, soft
overlong penalty, no KL term). Rollouts are generated as `grpo.generation` says, by the run's `engine`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from nemo_recipes.config.generation import GenerationConfig
from nemo_recipes.config.loader import StrictModel
from nemo_recipes.config.training import CheckpointConfig, OptimizerConfig


class PolicyLossConfig(StrictModel):
    """The clipped policy-gradient loss (DAPO defaults)."""

    clip_eps_low: float = Field(0.2, ge=0.0, lt=1.0)
    """Lower clip: ratios below 1 - clip_eps_low are clipped (for negative advantages)."""
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
    """Estimator of the per-token KL to the reference (Schulman's k1/k2/k3; k3 is unbiased and >= 0)."""
    tis_cap: PositiveFloat | None = 2.0
    """Truncated importance sampling: weight each token by min(p_trainer / p_engine, tis_cap) to
    correct the engine-vs-trainer logprob mismatch; null disables."""


class DynamicSamplingConfig(StrictModel):
    """DAPO dynamic sampling: drop groups whose rewards are all equal, refill by generating more."""

    enabled: bool = True
    """Off: train on every group drawn, informative or not."""
    max_generation_rounds: PositiveInt = 4
    """Most generation rounds per step (the first included); a step with fewer informative groups
    than asked trains on what it has and logs it."""


class OverlongPenaltyConfig(StrictModel):
    """DAPO soft overlong punishment on responses near max_response_tokens."""

    enabled: bool = True
    """Off: no length penalty."""
    buffer_tokens: PositiveInt = 64
    """Penalty ramps linearly from 0 at (max_response_tokens - buffer_tokens) to -penalty_factor."""
    penalty_factor: PositiveFloat = 1.0
    """The penalty at and beyond max_response_tokens (subtracted from the task reward)."""


class RLOptimizerConfig(OptimizerConfig):
    """RL defaults (the recipe): constant learning rate after a 10-step warm-up."""

    lr_schedule: Literal["cosine", "constant", "linear"] = "constant"
    """Learning-rate schedule after the warm-up (the recipe: constant)."""
    warmup_steps: int | None = Field(10, ge=0)
    """Linear warm-up length in RL steps (the recipe: 10), each of mini_batches_per_step updates."""


class RLCheckpointConfig(CheckpointConfig):
    """RL checkpoints: more often than SFT's (an RL step is long)."""

    save_interval_steps: PositiveInt = 20
    """Save every this many RL steps (and at the last step, and on a stop signal)."""


class GRPOConfig(StrictModel):
    """The RL stage (stages 1 and 3 of the recipe): prompts, batch, the objective, generation."""

    train_data: list[str] = Field(default_factory=lambda: ["sns_demo/train.jsonl", "general/train.jsonl"])
    """JSONL task records of the run's task table; shipped names resolve under assets/data."""
    on_bad_record: Literal["raise", "skip"] = "raise"
    """A malformed record stops the run naming file:line (raise), or is counted and left out (skip)."""
    task_weights: dict[str, PositiveFloat] = Field(default_factory=dict)
    """Sampling weight per task name (balanced across tasks); unlisted tasks take the table's weight."""
    prompts_per_step: PositiveInt = 8
    """Prompt groups per optimizer step, over all data-parallel ranks (after dynamic sampling)."""
    mini_batches_per_step: PositiveInt = 1
    """Optimizer updates per rollout batch: the groups are split into this many mini-batches."""
    max_tokens_per_micro_batch: PositiveInt | None = None
    """Tokens per forward/backward micro-batch: responses (with their prompts) packed into one row of
    at most this many real tokens (null: max_prompt_tokens + max_response_tokens, one longest sequence)."""
    train_steps: PositiveInt = 100
    """RL steps (each: generate, score, then mini_batches_per_step optimizer updates)."""
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    """Rollouts: prompt and response budgets, group size, sampling (the policy's temperature)."""
    loss: PolicyLossConfig = Field(default_factory=PolicyLossConfig)
    """The clipped policy-gradient objective."""
    dynamic_sampling: DynamicSamplingConfig = Field(default_factory=DynamicSamplingConfig)
    """DAPO dynamic sampling: keep only groups whose rewards differ."""
    overlong: OverlongPenaltyConfig = Field(default_factory=OverlongPenaltyConfig)
    """DAPO soft overlong penalty."""
    optimizer: RLOptimizerConfig = Field(default_factory=RLOptimizerConfig)
    """AdamW and the learning-rate schedule, counted in RL steps (each mini_batches_per_step updates)."""
    checkpoint: RLCheckpointConfig = Field(default_factory=RLCheckpointConfig)
    """When to save, how many to keep, whether to resume."""
    placement: Literal["colocated", "separate"] = "colocated"
    """colocated: each data-parallel replica's first rank hosts an engine, and generation and training
    take turns. separate: `rollout_engines` engines run in a rollout process of their own (started by
    the trainer on its machine, or by the Slurm job on nodes of their own) and generate ahead of the
    trainer, within `max_off_policy_steps` (docs/grpo.md, "Asynchronous GRPO")."""
    max_off_policy_steps: int = Field(0, ge=0)
    """separate placement: step n trains on rollouts of the policy after step n - max_off_policy_steps,
    generated while the trainer trains the steps in between (0: synchronous, colocated's trajectory)."""
    rollout_engines: PositiveInt = 1
    """separate placement: vLLM engines sharing each generation round (one device each on a GPU)."""
    rollout_port: int | None = Field(None, gt=0, lt=65536)
    """separate placement: the port on the first trainer rank's host where the rollout process connects
    (weights one way, rollouts the other); null: a free port, and the trainer starts the rollout process
    on its own machine (set it when a Slurm job starts the engines on nodes of their own)."""
    routing_replay: bool | None = None
    """Mixture-of-experts policies: the trainer routes every token through the experts the engine
    routed it to (old logprobs, reference and updates); null = on for an MoE model, off for a dense one
    (true there is an error). Costs one more forward pass per step (the unreplayed gap it logs)."""

    @property
    def seq_length(self) -> int:
        """Tokens per trained row: the longest prompt plus the longest response."""
        return self.generation.max_sequence_tokens

    @property
    def token_budget(self) -> int:
        """Tokens per packed micro-batch row (`max_tokens_per_micro_batch`, or one longest sequence)."""
        return self.max_tokens_per_micro_batch or self.seq_length

    @property
    def responses_per_step(self) -> int:
        """Responses trained on per RL step, over all data-parallel ranks."""
        return self.prompts_per_step * self.generation.num_generations_per_prompt

    @model_validator(mode="after")
    def _batch_shapes(self) -> GRPOConfig:
        gen = self.generation
        if gen.num_generations_per_prompt < 2:
            raise ValueError("generation.num_generations_per_prompt must be at least 2 (a group to compare)")
        if gen.temperature <= 0:
            raise ValueError(
                "generation.temperature must be above 0 (the policy is softmax(logits / temperature))"
            )
        if self.prompts_per_step % self.mini_batches_per_step:
            raise ValueError(
                f"prompts_per_step {self.prompts_per_step} is not a multiple of mini_batches_per_step "
                f"{self.mini_batches_per_step}"
            )
        if self.token_budget < self.seq_length:
            raise ValueError(
                f"max_tokens_per_micro_batch {self.token_budget} must hold the longest sequence: "
                f"generation.max_prompt_tokens + max_response_tokens = {self.seq_length}"
            )
        if self.placement == "colocated":
            separate_only = {
                "max_off_policy_steps": self.max_off_policy_steps != 0,
                "rollout_engines": self.rollout_engines != 1,
                "rollout_port": self.rollout_port is not None,
            }
            if set_keys := [k for k, is_set in separate_only.items() if is_set]:
                raise ValueError(
                    f"{', '.join(set_keys)} need placement: separate (colocated engines take turns with "
                    "the trainer, one per data-parallel replica)"
                )
        if self.overlong.enabled and self.overlong.buffer_tokens >= gen.max_response_tokens:
            raise ValueError(
                f"overlong.buffer_tokens {self.overlong.buffer_tokens} must be below "
                f"generation.max_response_tokens {gen.max_response_tokens}"
            )
        return self
