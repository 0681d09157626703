"""Answer-only language-model loss, summed for token-level normalisation over the global batch."""

from __future__ import annotations

import torch


def masked_token_loss(
    per_token_loss: torch.Tensor, loss_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Sum of the per-token losses where `loss_mask` is 1, and the number of those tokens.

    per_token_loss: [b, s] float (cross entropy of each next-token label); loss_mask: [b, s] in {0, 1}.
    Returns (loss_sum, num_tokens, metrics). megatron-core's schedule divides the gradients by the
    token count of the whole global batch (`calculate_per_token_loss`), so every answer token weighs
    the same wherever it sits: in which micro-batch, data-parallel rank, or packed row.
    metrics["lm_loss"] = [loss_sum, num_tokens] (detached), summed later across ranks.
    """
    mask = loss_mask.to(per_token_loss.dtype)
    loss_sum = (per_token_loss.float() * mask.float()).sum()
    num_tokens = loss_mask.sum().to(torch.int)
    return loss_sum, num_tokens, {"lm_loss": torch.stack([loss_sum.detach(), num_tokens.detach().float()])}
