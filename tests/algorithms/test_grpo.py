"""GRPO/DAPO math against numbers worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from nemo_recipes.algorithms.grpo import (
    group_advantages,
    kl_penalty,
    overlong_penalty,
    policy_loss,
)
from nemo_recipes.config.rl import OverlongPenaltyConfig, PolicyLossConfig

NO_TIS = {"tis_cap": None}


def close(actual: torch.Tensor, expected: list | float, atol: float = 1e-5) -> None:
    torch.testing.assert_close(actual.float(), torch.tensor(expected, dtype=torch.float32), atol=atol, rtol=0)


def logs(*ratios: float) -> list[float]:
    return [math.log(r) for r in ratios]


# ---- advantages ----


def test_advantages_std_normalised_unbiased() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0]])
    # group 0: mean 0.5, centred ±0.5, unbiased var = 4 * 0.25 / 3 = 1/3, std 0.57735 -> ±0.866025
    # group 1: mean 0.75, centred [-.75, -.75, -.75, 2.25], var = (3 * .5625 + 5.0625) / 3 = 2.25, std 1.5
    adv = group_advantages(rewards, normalize_std=True, eps=0.0)
    close(adv, [[0.866025, -0.866025, -0.866025, 0.866025], [-0.5, -0.5, -0.5, 1.5]])


def test_advantages_centred_only() -> None:
    adv = group_advantages(torch.tensor([[0.0, 0.0, 0.0, 3.0]]), normalize_std=False)
    close(adv, [[-0.75, -0.75, -0.75, 2.25]])


@pytest.mark.parametrize("normalize_std", [True, False])
def test_all_equal_group_gives_zero_not_nan(normalize_std: bool) -> None:
    adv = group_advantages(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]), normalize_std)
    assert torch.equal(adv, torch.zeros(2, 3))


def test_std_needs_two_responses() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages(torch.tensor([[1.0]]), normalize_std=True)


# ---- overlong penalty ----


def test_overlong_penalty_regions() -> None:
    cfg = OverlongPenaltyConfig(buffer_tokens=4, penalty_factor=1.0)
    # max 10, buffer 4: ramp starts after L = 6; (6 - L) / 4 in (6, 10], -1 beyond 10
    lengths = torch.tensor([0, 6, 7, 8, 10, 11, 20])
    close(overlong_penalty(lengths, 10, cfg), [0.0, 0.0, -0.25, -0.5, -1.0, -1.0, -1.0])


def test_overlong_penalty_factor_scales() -> None:
    cfg = OverlongPenaltyConfig(buffer_tokens=4, penalty_factor=0.5)
    # L = 9: (6 - 9) / 4 * 0.5 = -0.375; L = 12: -0.5
    close(overlong_penalty(torch.tensor([9, 12]), 10, cfg), [-0.375, -0.5])


def test_overlong_penalty_disabled() -> None:
    cfg = OverlongPenaltyConfig(enabled=False, buffer_tokens=4)
    assert torch.equal(overlong_penalty(torch.tensor([3, 9, 50]), 10, cfg), torch.zeros(3))


def test_overlong_buffer_longer_than_max_is_an_error() -> None:
    with pytest.raises(ValueError, match="exceeds max_response_tokens"):
        overlong_penalty(torch.tensor([1]), 10, OverlongPenaltyConfig(buffer_tokens=11))


# ---- KL estimators ----


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        # d = logp - ref = [1, -0.5]
        ("k1", [1.0, -0.5]),
        ("k2", [0.5, 0.125]),  # d^2 / 2
        ("k3", [0.367879, 0.148721]),  # exp(-d) + d - 1: e^-1 + 1 - 1; e^0.5 - 0.5 - 1
    ],
)
def test_kl_estimators(estimator: str, expected: list[float]) -> None:
    close(kl_penalty(torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.5]), estimator), expected)


def test_unknown_kl_estimator() -> None:
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k4")


# ---- policy loss: clipping ----


def clip_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Two responses, A = +1 and -1, with token ratios 1.5 (above 1.28), 1.1 (inside), 0.5 (below 0.8)."""
    logprobs = torch.tensor([logs(1.5, 1.1, 0.5)] * 2, requires_grad=True)
    cfg = PolicyLossConfig(clip_eps_low=0.2, clip_eps_high=0.28, **NO_TIS)
    loss_sum, normalizer, metrics = policy_loss(
        logprobs, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.ones(2, 3), cfg
    )
    loss_sum.backward()
    return loss_sum, normalizer, logprobs.grad, metrics


def test_clip_higher_both_signs() -> None:
    loss_sum, normalizer, grad, metrics = clip_case()
    # A = +1: -min(r, clip(r)) = [-1.28 (clipped high), -1.1, -0.5 (low side does not bind for A > 0)]
    # A = -1: -min(-r, -clip(r)) = [1.5 (high side does not bind for A < 0), 1.1, 0.8 (clipped low)]
    # sum = -2.88 + 3.4 = 0.52 over 6 tokens
    close(loss_sum, 0.52)
    assert normalizer.item() == 6 and normalizer.dtype == torch.int32
    # d(-r A)/d logp = -r A where unclipped, 0 where the clip binds
    close(grad, [[0.0, -1.1, -0.5], [1.5, 1.1, 0.0]])
    close(metrics["clip_fraction_high"], [1.0, 6.0])
    close(metrics["clip_fraction_low"], [1.0, 6.0])
    close(metrics["ratio_mean"], [6.2, 6.0])  # 2 * (1.5 + 1.1 + 0.5)
    close(metrics["policy_loss"], [0.52, 6.0])


def test_clip_higher_lets_a_positive_ratio_grow() -> None:
    logprobs = torch.tensor([logs(1.25)], requires_grad=True)
    args = (torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1))
    # eps_high 0.28: 1.25 is inside [0.8, 1.28] -> loss -1.25, gradient -1.25
    loss, _, _ = policy_loss(logprobs, *args, PolicyLossConfig(clip_eps_high=0.28, **NO_TIS))
    close(loss, -1.25)
    close(torch.autograd.grad(loss, logprobs)[0], [[-1.25]])
    # symmetric eps 0.2: clipped to 1.2 -> loss -1.2, gradient 0
    loss, _, metrics = policy_loss(logprobs, *args, PolicyLossConfig(clip_eps_high=0.2, **NO_TIS))
    close(loss, -1.2)
    close(torch.autograd.grad(loss, logprobs)[0], [[0.0]])
    close(metrics["clip_fraction_high"], [1.0, 1.0])


# ---- policy loss: aggregation ----


def aggregation_case(aggregation: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ratio 1 everywhere, so a token's loss is -A. Row 0: 1 token, A = +2; row 1: 3 tokens, A = -1;
    row 2: no response token."""
    logprobs = torch.zeros(3, 4, requires_grad=True)
    mask = torch.tensor([[0, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]])
    cfg = PolicyLossConfig(aggregation=aggregation, **NO_TIS)
    loss_sum, normalizer, _ = policy_loss(
        logprobs, torch.zeros(3, 4), torch.tensor([2.0, -1.0, 5.0]), mask, cfg
    )
    loss_sum.backward()
    return loss_sum, normalizer, logprobs.grad


@pytest.mark.parametrize(
    ("aggregation", "loss_sum", "normalizer", "row1_grad"),
    [
        ("token_mean", 1.0, 4, 1.0),  # (-2 + 1 + 1 + 1) / 4 tokens = 0.25
        ("seq_mean_token_mean", -1.0, 2, 1 / 3),  # (-2 / 1 + 3 / 3) / 2 responses = -0.5
        ("seq_mean_token_sum", 1.0, 2, 1.0),  # (-2 + 3) / 2 responses = 0.5
    ],
)
def test_aggregations_differ(aggregation: str, loss_sum: float, normalizer: int, row1_grad: float) -> None:
    got_sum, got_normalizer, grad = aggregation_case(aggregation)
    close(got_sum, loss_sum)
    assert got_normalizer.item() == normalizer  # row 2 has no response token: not counted
    # row 0's single token: d(-A r)/d logp = -2 in every aggregation (its mean is itself)
    close(grad, [[0, -2.0, 0, 0], [row1_grad] * 3 + [0], [0] * 4])


def test_micro_batches_sum_to_the_global_token_mean() -> None:
    cfg = PolicyLossConfig(**NO_TIS)
    mask = torch.tensor([[0, 1, 0, 0], [1, 1, 1, 0]])
    parts = [
        policy_loss(torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([a]), mask[i : i + 1], cfg)
        for i, a in enumerate([2.0, -1.0])
    ]
    # micro-batch 0: (-2, 1 token); micro-batch 1: (3, 3 tokens); global (-2 + 3) / (1 + 3) = 0.25
    total = sum(p[0] for p in parts) / sum(p[1] for p in parts)
    close(total, 0.25)


def test_padding_contributes_nothing() -> None:
    cfg = PolicyLossConfig(tis_cap=2.0, kl_coef=0.1)
    mask = torch.tensor([[1, 1, 0]])
    garbage = torch.tensor([[0.0, 0.0, float("nan")]])
    logprobs = torch.tensor([[0.0, 0.0, float("inf")]], requires_grad=True)
    old, rollout, ref = garbage, torch.tensor([[0.0, 0.0, -1e4]]), torch.tensor([[0.0, 0.0, 1e4]])
    loss_sum, normalizer, metrics = policy_loss(logprobs, old, torch.tensor([1.0]), mask, cfg, rollout, ref)
    loss_sum.backward()
    # two response tokens with r = 1, w = 1, KL 0: loss -1 each
    close(loss_sum, -2.0)
    assert normalizer.item() == 2
    close(logprobs.grad, [[-1.0, -1.0, 0.0]])
    assert all(torch.isfinite(v).all() for v in metrics.values())


# ---- truncated importance sampling ----


def tis_case(tis_cap: float | None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Ratio 1, A = +1, three tokens whose trainer/engine probability ratio is 0.5, 1.5 and 4."""
    logprobs = torch.zeros(1, 3, requires_grad=True)
    rollout = -torch.tensor([logs(0.5, 1.5, 4.0)])  # old - rollout = log(p_trainer / p_engine)
    cfg = PolicyLossConfig(tis_cap=tis_cap)
    loss_sum, _, metrics = policy_loss(
        logprobs, torch.zeros(1, 3), torch.tensor([1.0]), torch.ones(1, 3), cfg, rollout
    )
    loss_sum.backward()
    return loss_sum, logprobs.grad, metrics


def test_tis_truncates_weights() -> None:
    loss_sum, grad, metrics = tis_case(tis_cap=2.0)
    # w = min([0.5, 1.5, 4], 2) = [0.5, 1.5, 2]; token loss -w -> sum -4
    close(loss_sum, -4.0)
    close(grad, [[-0.5, -1.5, -2.0]])
    close(metrics["tis_weight_mean"], [4.0, 3.0])
    close(metrics["tis_clipped_fraction"], [1.0, 3.0])
    # |log 0.5| + log 1.5 + log 4 = 0.693147 + 0.405465 + 1.386294
    close(metrics["logprob_mismatch_abs"], [2.484907, 3.0])
    # k3 with r = p_trainer / p_engine: r - log r - 1 = 0.193147 + 0.094535 + 1.613706
    close(metrics["mismatch_kl"], [1.901388, 3.0])


def test_tis_off_reports_the_mismatch_only() -> None:
    loss_sum, grad, metrics = tis_case(tis_cap=None)
    close(loss_sum, -3.0)
    close(grad, [[-1.0, -1.0, -1.0]])
    assert "tis_weight_mean" not in metrics and "tis_clipped_fraction" not in metrics
    close(metrics["logprob_mismatch_abs"], [2.484907, 3.0])


def test_tis_without_rollout_logprobs_is_an_error() -> None:
    with pytest.raises(ValueError, match="rollout_logprobs"):
        policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1), PolicyLossConfig())


# ---- KL term ----


@pytest.mark.parametrize(
    ("estimator", "loss", "grad"),
    [
        # d = logp - ref = 1 with A = 0 (no policy-gradient term), kl_coef 0.1
        ("k1", 0.1, 0.1),  # 0.1 * d; d/dlogp = 0.1
        ("k2", 0.05, 0.1),  # 0.1 * d^2 / 2; 0.1 * d
        ("k3", 0.0367879, 0.0632121),  # 0.1 * (e^-1 + 1 - 1); 0.1 * (1 - e^-d)
    ],
)
def test_kl_term(estimator: str, loss: float, grad: float) -> None:
    logprobs = torch.zeros(1, 1, requires_grad=True)
    cfg = PolicyLossConfig(kl_coef=0.1, kl_estimator=estimator, **NO_TIS)
    ref = torch.tensor([[-1.0]])
    loss_sum, _, metrics = policy_loss(
        logprobs, torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1), cfg, ref_logprobs=ref
    )
    loss_sum.backward()
    close(loss_sum, loss)
    close(logprobs.grad, [[grad]])
    close(metrics["kl_ref"], [0.367879, 1.0])  # always k3
    close(metrics["policy_loss"], [0.0, 1.0])  # the clipped term alone
    close(metrics["loss"], [loss, 1.0])


def test_kl_without_reference_is_an_error() -> None:
    cfg = PolicyLossConfig(kl_coef=0.1, **NO_TIS)
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1), cfg)


# ---- gradients and dtypes ----


def test_gradients_reach_logprobs_only() -> None:
    inputs = [torch.zeros(1, 2, requires_grad=True) for _ in range(4)]
    logprobs, old, rollout, ref = inputs
    advantages = torch.ones(1, requires_grad=True)
    cfg = PolicyLossConfig(kl_coef=0.1)
    loss_sum, _, metrics = policy_loss(logprobs, old, advantages, torch.ones(1, 2), cfg, rollout, ref)
    loss_sum.backward()
    assert logprobs.grad is not None
    assert old.grad is None and rollout.grad is None and ref.grad is None and advantages.grad is None
    assert all(v.shape == (2,) and v.dtype == torch.float32 and not v.requires_grad for v in metrics.values())


def test_bfloat16_logprobs() -> None:
    logprobs = torch.tensor([[0.0, -0.5]], dtype=torch.bfloat16, requires_grad=True)
    old = logprobs.detach().clone()
    loss_sum, _, _ = policy_loss(
        logprobs, old, torch.tensor([1.5]), torch.ones(1, 2), PolicyLossConfig(**NO_TIS)
    )
    loss_sum.backward()
    # ratio 1, A = 1.5: loss -1.5 per token, computed in float32; gradient -1.5 back in bfloat16
    assert loss_sum.dtype == torch.float32
    close(loss_sum, -3.0)
    assert logprobs.grad.dtype == torch.bfloat16
    close(logprobs.grad, [[-1.5, -1.5]])
