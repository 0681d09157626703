"""GRPO with DAPO's options: group advantages, overlong penalty, policy loss.

Shapes: G prompt groups of n responses; b responses of s token positions in a trained micro-batch.
The loss follows `sft_loss`'s protocol: (loss_sum, normalizer, metrics), where megatron-core divides
the gradients by the normalizers summed over the whole global batch (all micro-batches and
data-parallel ranks), and every metric is a detached [numerator, denominator] pair summed the same way.
All math runs in float32 whatever the dtype of the logprobs.
DAPO's dynamic-sampling filter is `RolloutGroup.informative` (records/rollout.py), which rollout
collection applies.
"""

from __future__ import annotations

from typing import Literal

import torch

from nemo_recipes.config.rl import OverlongPenaltyConfig, PolicyLossConfig

KLEstimator = Literal["k1", "k2", "k3"]
Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"]


def group_advantages(rewards: torch.Tensor, normalize_std: bool, eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages, [G, n] -> [G, n] float32.

    (r - group mean) / (group std + eps) with the unbiased std (divisor n - 1, torch.std's default, as
    in GRPO and verl), or only r - group mean when `normalize_std` is False (Dr. GRPO). A group whose
    rewards are all equal gets advantages 0.
    """
    rewards = rewards.float()
    centred = rewards - rewards.mean(dim=-1, keepdim=True)
    if not normalize_std:
        return centred
    if rewards.shape[-1] < 2:
        raise ValueError(f"std normalisation needs at least 2 responses per group, got {rewards.shape[-1]}")
    return centred / (rewards.std(dim=-1, keepdim=True) + eps)


def overlong_penalty(
    response_lengths: torch.Tensor, max_response_tokens: int, cfg: OverlongPenaltyConfig
) -> torch.Tensor:
    """DAPO soft overlong punishment, added to the reward: [N] int lengths -> [N] float32 penalties.

    With start = max_response_tokens - buffer_tokens: 0 for L <= start, (start - L) / buffer_tokens *
    penalty_factor for start < L <= max_response_tokens (a linear ramp down to -penalty_factor), and
    -penalty_factor for L > max_response_tokens. All zeros when `cfg.enabled` is False.
    """
    if not cfg.enabled:
        return torch.zeros(response_lengths.shape, dtype=torch.float32, device=response_lengths.device)
    if cfg.buffer_tokens > max_response_tokens:
        raise ValueError(
            f"overlong buffer_tokens {cfg.buffer_tokens} exceeds max_response_tokens {max_response_tokens}"
        )
    start = max_response_tokens - cfg.buffer_tokens
    ramp = (start - response_lengths.float()) / cfg.buffer_tokens * cfg.penalty_factor
    return ramp.clamp(min=-cfg.penalty_factor, max=0.0)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator) -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from tokens sampled from pi (Schulman, "Approximating KL").

    With d = logprobs - ref_logprobs: k1 = d; k2 = d^2 / 2; k3 = exp(-d) + d - 1 (unbiased, >= 0).
    Any shape, float32 out; gradients flow to both inputs (detach `ref_logprobs` to train pi only).
    """
    d = logprobs.float() - ref_logprobs.float()
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d.square()
    if estimator == "k3":
        return torch.exp(-d) + d - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}; expected k1, k2 or k3")


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    cfg: PolicyLossConfig,
    rollout_logprobs: torch.Tensor | None = None,
    ref_logprobs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped policy-gradient loss with clip-higher, truncated importance sampling and a KL term.

    logprobs [b, s]: the trained policy's logprobs of the sampled tokens (the only input that gets
    gradients); old_logprobs [b, s]: the trainer's logprobs under the weights that generated the
    rollout; advantages [b]: one per response; response_mask [b, s] in {0, 1}: the response tokens;
    rollout_logprobs [b, s]: the inference engine's logprobs (needed when cfg.tis_cap is set);
    ref_logprobs [b, s]: the reference model's (needed when cfg.kl_coef > 0). Values at padding
    positions are never read, whatever they are (inf, nan).

    Per response token, with r = exp(logprobs - old_logprobs) and A the response's advantage:
    loss = -min(r A, clip(r, 1 - clip_eps_low, 1 + clip_eps_high) A) * w + kl_coef * KL, where
    w = min(exp(old_logprobs - rollout_logprobs), tis_cap) (detached; 1 when tis_cap is null) and KL is
    `kl_penalty(logprobs, ref_logprobs, cfg.kl_estimator)`. Returns (loss_sum, normalizer, metrics);
    the loss of the global batch is sum(loss_sum) / sum(normalizer) over all micro-batches and ranks:
    token_mean: sum of token losses / number of response tokens;
    seq_mean_token_mean: sum over responses of their token mean / number of responses;
    seq_mean_token_sum: sum over responses of their token sum / number of responses.
    Responses without response tokens are not counted. normalizer is an int tensor.

    metrics, each a detached float32 [numerator, denominator]: "loss" (the returned pair),
    "policy_loss" (the clipped term alone, same aggregation); token means over response tokens:
    "clip_fraction_low" / "clip_fraction_high" (the clip is active: A < 0 and r < 1 - clip_eps_low /
    A > 0 and r > 1 + clip_eps_high), "ratio_mean", "kl_ref" (k3 of KL(pi || pi_ref), with
    ref_logprobs), and with rollout_logprobs "mismatch_kl" (k3 of KL(engine || old)) and
    "logprob_mismatch_abs" (|old - rollout|), with TIS also "tis_weight_mean" (w) and
    "tis_clipped_fraction" (tokens where the cap bound).
    """
    if cfg.tis_cap is not None and rollout_logprobs is None:
        raise ValueError("tis_cap is set: policy_loss needs the engine's rollout_logprobs")
    if cfg.kl_coef > 0 and ref_logprobs is None:
        raise ValueError(f"kl_coef is {cfg.kl_coef}: policy_loss needs ref_logprobs")
    mask = response_mask.bool()
    lp, old = _masked(logprobs, mask), _masked(old_logprobs.detach(), mask)
    ratio = torch.exp(lp - old)
    adv = advantages.detach().float()[:, None]
    low, high = 1.0 - cfg.clip_eps_low, 1.0 + cfg.clip_eps_high
    per_token = -torch.minimum(ratio * adv, ratio.clamp(low, high) * adv)
    metrics = {
        "clip_fraction_low": _token_mean((ratio < low) & (adv < 0), mask),
        "clip_fraction_high": _token_mean((ratio > high) & (adv > 0), mask),
        "ratio_mean": _token_mean(ratio, mask),
    }
    if rollout_logprobs is not None:
        rollout = _masked(rollout_logprobs.detach(), mask)
        metrics["logprob_mismatch_abs"] = _token_mean((old - rollout).abs(), mask)
        metrics["mismatch_kl"] = _token_mean(kl_penalty(rollout, old, "k3"), mask)  # KL(engine || trainer)
        if cfg.tis_cap is not None:
            weight = torch.exp(old - rollout)
            metrics["tis_clipped_fraction"] = _token_mean(weight > cfg.tis_cap, mask)
            weight = weight.clamp(max=cfg.tis_cap)
            metrics["tis_weight_mean"] = _token_mean(weight, mask)
            per_token = per_token * weight
    pg_sum, normalizer = _aggregate(per_token.detach(), mask, cfg.aggregation)
    if ref_logprobs is not None:
        ref = _masked(ref_logprobs.detach(), mask)
        metrics["kl_ref"] = _token_mean(kl_penalty(lp, ref, "k3"), mask)  # KL(policy || reference)
        if cfg.kl_coef > 0:
            per_token = per_token + cfg.kl_coef * kl_penalty(lp, ref, cfg.kl_estimator)
    loss_sum, _ = _aggregate(per_token, mask, cfg.aggregation)
    metrics["policy_loss"] = torch.stack([pg_sum, normalizer.float()])
    metrics["loss"] = torch.stack([loss_sum.detach(), normalizer.float()])
    return loss_sum, normalizer, metrics


def _masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """float32 values with 0 at padding, so no inf or nan there reaches exp or the gradients."""
    return torch.where(mask, values.float(), 0.0)


def _token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[sum over response tokens, number of response tokens], detached float32 [2]."""
    total = torch.where(mask, values.detach().float(), 0.0).sum()
    return torch.stack([total, mask.sum().float()])


def _aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, aggregation: Aggregation
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_sum, int normalizer) of [b, s] per-token losses under `aggregation` (see policy_loss)."""
    per_token = torch.where(mask, per_token, 0.0)
    if aggregation == "token_mean":
        return per_token.sum(), mask.sum().to(torch.int)
    counts = mask.sum(dim=-1)
    num_seqs = (counts > 0).sum().to(torch.int)
    if aggregation == "seq_mean_token_mean":
        return (per_token.sum(dim=-1) / counts.clamp(min=1)).sum(), num_seqs
    return per_token.sum(), num_seqs  # seq_mean_token_sum
