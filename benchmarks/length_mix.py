"""SNS-like sequence lengths for the packed-vs-padded benchmarks (grpo_step.py, sft_step.py).

SNS work is mostly short: notes and queries of tens of tokens answered by a label of a few tokens,
with a long tail of long notes and long generations. Scaled to the run's maximum lengths.
"""

from __future__ import annotations

import random


def sns_lengths(rng: random.Random, max_prompt: int, max_response: int) -> tuple[int, int]:
    """(prompt, response) tokens of one SNS-like rollout: prompts mostly tens of tokens with a tail to
    the maximum; answers mostly a label of a few tokens, some sentences, a few long generations."""
    roll = rng.random()
    if roll < 0.7:
        prompt = rng.randint(20, 80)
    elif roll < 0.93:
        prompt = rng.randint(80, max(81, max_prompt // 4))
    else:
        prompt = rng.randint(max_prompt // 4, max_prompt)
    roll = rng.random()
    if roll < 0.6:
        response = rng.randint(1, 6)
    elif roll < 0.9:
        response = rng.randint(6, max(7, max_response // 8))
    else:
        response = rng.randint(max_response // 2, max_response)
    return min(prompt, max_prompt), min(response, max_response)
