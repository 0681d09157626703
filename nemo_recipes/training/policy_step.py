"""The trainer side of one RL step: groups -> advantages -> micro-batches -> old logprobs -> updates.

Every rank holds the same groups; each data-parallel rank trains on a contiguous share of every
mini-batch. Old logprobs (the trainer's, under the weights that generated the rollouts) are computed
for the whole step before the first update, so later mini-batches see a true importance ratio.

Mixture-of-experts policies with routing replay (`grpo.routing_replay`): the old-logprob pass, the
reference pass and every update route each token through the experts the engine chose
(nemo_recipes.training.moe_routing); one more forward pass under the trainer's own routing measures
what replay removes (`logprob_mismatch_abs_unreplayed`, `routing_agreement`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
from megatron.core import parallel_state

from nemo_recipes.algorithms.grpo import group_advantages, overlong_penalty, policy_loss
from nemo_recipes.config.rl import GRPOConfig, PolicyLossConfig
from nemo_recipes.data.rl_batch import RLBatch, RolloutSample, micro_batches
from nemo_recipes.model.context_parallel import counted_once
from nemo_recipes.records.rollout import RolloutGroup
from nemo_recipes.training.logprobs import (
    compute_logprobs,
    packed_logits,
    response_entropy,
    response_logprobs,
    row_length,
    sequence_parallel_multiple,
)
from nemo_recipes.training.moe_routing import RoutingStats, aux_loss_metrics, model_moe_shape
from nemo_recipes.training.step import StepResult, run_step

LOSS_METRICS = (
    "loss",
    "policy_loss",
    "clip_fraction_low",
    "clip_fraction_high",
    "ratio_mean",
    "kl_ref",
    "mismatch_kl",
    "logprob_mismatch_abs",
    "logprob_mismatch_abs_unreplayed",
    "tis_weight_mean",
    "tis_clipped_fraction",
    "entropy",
)
"""Reduced every step; a metric the configuration does not produce has a zero count and is not logged."""


def shaped_rewards(group: RolloutGroup, grpo: GRPOConfig) -> torch.Tensor:
    """Task rewards plus the soft overlong penalty, [n]."""
    lengths = torch.tensor([len(c.token_ids) for c in group.completions])
    penalty = overlong_penalty(lengths, grpo.generation.max_response_tokens, grpo.overlong)
    return torch.tensor(group.rewards, dtype=torch.float32) + penalty


def rollout_samples(
    groups: Sequence[RolloutGroup], grpo: GRPOConfig, replay: bool = False
) -> list[RolloutSample]:
    """One sample per response, with its group-normalised advantage, in group order; a filler group's
    responses have advantage 0 and stay out of the loss. `replay`: each carries the engine's routing,
    which every completion must have."""
    rewards = torch.stack([shaped_rewards(g, grpo) for g in groups])
    advantages = group_advantages(rewards, grpo.loss.normalize_advantage_std)
    if replay and any(c.routed_experts is None for g in groups for c in g.completions):
        raise ValueError("grpo.routing_replay is on, but the engine returned completions without routing")
    return [
        RolloutSample(
            prompt_ids=g.prompt_ids,
            response_ids=c.token_ids,
            rollout_logprobs=c.logprobs,
            advantage=0.0 if g.filler else float(advantages[i, j]),
            task=g.task,
            in_loss=not g.filler,
            routed_experts=c.routed_experts if replay else None,
        )
        for i, g in enumerate(groups)
        for j, c in enumerate(g.completions)
    ]


def mini_batches(
    samples: list[RolloutSample],
    grpo: GRPOConfig,
    pad_token_id: int,
    dp_rank: int,
    dp_size: int,
    row_multiple: int = 1,
) -> list[list[RLBatch]]:
    """This rank's packed micro-batches of each mini-batch (the mini-batches split the groups in order;
    rows of at most `grpo.token_budget` tokens, all of that length under pipeline parallelism; under
    expert parallelism too, and as many on every data-parallel rank: megatron-core's all-gather token
    dispatcher, the CPU one, gathers equal row lengths over the expert-parallel group). Every row's
    length is a multiple of `row_multiple` (`sequence_parallel_multiple`)."""
    per_mini = len(samples) // grpo.mini_batches_per_step
    expert_parallel = parallel_state.get_expert_model_parallel_world_size() > 1
    fixed = parallel_state.get_pipeline_model_parallel_world_size() > 1 or expert_parallel
    return [
        micro_batches(
            samples[m * per_mini : (m + 1) * per_mini],
            grpo.token_budget,
            pad_token_id,
            dp_rank,
            dp_size,
            fixed,
            same_count=expert_parallel,
            row_multiple=row_multiple,
        )
        for m in range(grpo.mini_batches_per_step)
    ]


def with_logprobs(
    model: list,
    batches: list[list[RLBatch]],
    grpo: GRPOConfig,
    field: str,
    replay: bool = False,
    stats: RoutingStats | None = None,
) -> list[list[RLBatch]]:
    """Attach `model`'s logprobs as `field` (old_logprobs / ref_logprobs / unreplayed_logprobs) on the
    last pipeline stage; `replay` and `stats` as in `compute_logprobs`."""
    flat = [b for mini in batches for b in mini]
    logprobs = compute_logprobs(model, flat, grpo.generation.temperature, replay, stats)
    if logprobs is None:
        return batches
    it = iter(logprobs)
    return [[dataclasses.replace(b, **{field: next(it)}) for b in mini] for mini in batches]


def policy_forward_step(loss_cfg: PolicyLossConfig, temperature: float, replay: bool = False):
    """A megatron forward step computing the clipped policy loss of an RLBatch (routing as the engine
    did with `replay`)."""

    def forward_step(batch: RLBatch, model):
        def loss_fn(logits: torch.Tensor):
            logprobs = response_logprobs(logits, batch, temperature)
            loss_sum, normalizer, metrics = policy_loss(
                logprobs,
                batch.old_logprobs,
                batch.advantages,
                batch.response_mask,
                loss_cfg,
                rollout_logprobs=batch.rollout_logprobs,
                ref_logprobs=batch.ref_logprobs,
            )
            mask = batch.response_mask
            entropy = response_entropy(logits, batch, temperature)
            metrics["entropy"] = torch.stack([(entropy * mask).sum(), mask.sum()]).float()
            if batch.unreplayed_logprobs is not None:
                gap = (batch.unreplayed_logprobs - batch.rollout_logprobs).abs() * mask
                metrics["logprob_mismatch_abs_unreplayed"] = torch.stack([gap.sum(), mask.sum()]).float()
            zero = torch.zeros(2)
            return loss_sum, counted_once(normalizer), {n: metrics.get(n, zero) for n in LOSS_METRICS}

        return packed_logits(model, batch, replay), loss_fn

    return forward_step


def train_on_groups(
    model: list,
    optimizer,
    scheduler,
    groups: Sequence[RolloutGroup],
    grpo: GRPOConfig,
    pad_token_id: int,
    dp_rank: int,
    dp_size: int,
    reference: list | None = None,
    replay: bool = False,
) -> tuple[list[StepResult], float, dict[str, float]]:
    """All optimizer updates of one step; returns each update's result, the logprob seconds and the
    mixture-of-experts metrics (empty for a dense model; see `train_on_batches`).

    A mini-batch of filler groups only has nothing to learn (an empty loss normaliser): it is not run,
    and the schedule still moves past its update. `reference`: the frozen reference model (its
    logprobs feed the KL term and the kl_ref metric). `replay`: route as the engine did (the groups'
    completions carry its routing).
    """
    samples = rollout_samples(groups, grpo, replay)
    per_mini = len(samples) // grpo.mini_batches_per_step
    learns = [
        any(s.in_loss for s in samples[m * per_mini : (m + 1) * per_mini])
        for m in range(grpo.mini_batches_per_step)
    ]
    batches = mini_batches(samples, grpo, pad_token_id, dp_rank, dp_size, sequence_parallel_multiple(model))
    return train_on_batches(model, optimizer, scheduler, batches, grpo, reference, learns, replay)


def train_on_batches(
    model: list,
    optimizer,
    scheduler,
    batches: list[list[RLBatch]],
    grpo: GRPOConfig,
    reference: list | None = None,
    learns: Sequence[bool] | None = None,
    replay: bool = False,
) -> tuple[list[StepResult], float, dict[str, float]]:
    """The updates of one step on this rank's micro-batches, one list per mini-batch: old (and
    reference) logprobs for all of them first, then one update per mini-batch whose `learns` is true
    (None: every one). Returns each update's result, the logprob seconds and, for a mixture-of-experts
    model, its routing metrics (collective; nemo_recipes.training.moe_routing): expert load of the
    old-logprob pass, with `replay` the agreement of the trainer's own routing with the engine's (and
    the logprobs under it, for `logprob_mismatch_abs_unreplayed`), and megatron-core's load-balancing
    loss of the updates when the model has one."""
    learns = [True] * len(batches) if learns is None else learns
    shape = model_moe_shape(model)
    start = time.perf_counter()
    load = RoutingStats(*shape) if shape else None
    batches = with_logprobs(model, batches, grpo, "old_logprobs", replay, load)
    agreement = RoutingStats(*shape) if shape and replay else None
    if agreement is not None:
        batches = with_logprobs(model, batches, grpo, "unreplayed_logprobs", False, agreement)
    if reference is not None:
        batches = with_logprobs(reference, batches, grpo, "ref_logprobs", replay)
    logprob_seconds = time.perf_counter() - start
    forward_step = policy_forward_step(grpo.loss, grpo.generation.temperature, replay)
    results = []
    for mini, learn in zip(batches, learns, strict=True):
        if not learn:
            scheduler.step(increment=1)
            continue
        args = (row_length(mini), 1, LOSS_METRICS, optimizer, scheduler)
        results.append(run_step(model, mini, forward_step, *args))
    routing: dict[str, float] = {}
    if shape:
        routing.update(load.metrics())
        if agreement is not None:
            agreed = agreement.metrics().get("routing_agreement")
            if agreed is not None:
                routing["routing_agreement"] = agreed
        trained = sum(len(mini) for mini, learn in zip(batches, learns, strict=True) if learn)
        routing.update(aux_loss_metrics(shape[0], trained))
    return results, logprob_seconds, routing
