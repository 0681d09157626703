"""Filler groups (uninformative groups that fill a step after max_generation_rounds) are not trained
on: zero advantage, and outside the loss and its normaliser, whatever their length penalties."""

from __future__ import annotations

import pytest

from nemo_recipes.algorithms.grpo import policy_loss
from nemo_recipes.config.rl import GRPOConfig
from nemo_recipes.data.rl_batch import collate_rollouts
from nemo_recipes.records.rollout import Completion, RolloutGroup
from nemo_recipes.training.policy_step import rollout_samples


def group(position: int, rewards: list[float], lengths: list[int], filler: bool = False) -> RolloutGroup:
    completions = [Completion([5] * n, [-0.5] * n, "length" if n >= 16 else "stop") for n in lengths]
    return RolloutGroup(position, "t", [1, 2], completions, rewards, [r == 1.0 for r in rewards], filler)


def grpo() -> GRPOConfig:
    return GRPOConfig.model_validate(
        {"generation": {"max_response_tokens": 16}, "overlong": {"buffer_tokens": 8, "penalty_factor": 1.0}}
    )


def test_a_filler_groups_length_penalty_gives_it_no_advantage() -> None:
    # Equal task rewards; one response is in the overlong buffer: its penalty alone would make a
    # full-size advantage after std normalisation.
    lengths = [4, 4, 4, 9]
    informative = group(0, [1.0, 0.0, 0.0, 1.0], [4, 4, 4, 4])
    unfiltered = rollout_samples([informative, group(1, [0.0] * 4, lengths)], grpo())
    assert max(abs(s.advantage) for s in unfiltered[4:]) > 1.0  # the fault this guards against
    samples = rollout_samples([informative, group(1, [0.0] * 4, lengths, filler=True)], grpo())
    assert [s.advantage for s in samples[4:]] == [0.0] * 4 and not any(s.in_loss for s in samples[4:])
    assert [s.advantage for s in samples[:4]] == [s.advantage for s in unfiltered[:4]]
    assert all(s.in_loss for s in samples[:4])


def test_filler_rows_leave_the_loss_and_its_normaliser_unchanged() -> None:
    informative = group(0, [1.0, 0.0, 0.0, 1.0], [3, 4, 5, 6])
    filler = group(1, [0.0] * 4, [4, 4, 4, 9], filler=True)
    cfg = grpo()

    def loss(groups: list[RolloutGroup]) -> tuple[float, float]:
        batch = collate_rollouts(rollout_samples(groups, cfg), pad_token_id=0)
        logprobs = (1.1 * batch.rollout_logprobs).requires_grad_()  # a moved policy, per token
        loss_sum, normaliser, _ = policy_loss(
            logprobs,
            batch.rollout_logprobs,
            batch.advantages,
            batch.response_mask,
            cfg.loss,
            batch.rollout_logprobs,
        )
        return float(loss_sum), float(normaliser)

    alone = loss([informative])
    with_filler = loss([informative, filler])
    assert with_filler[1] == alone[1] == 3 + 4 + 5 + 6  # token-mean: the informative group's tokens
    assert with_filler[0] == pytest.approx(alone[0], abs=1e-6)
