"""SNS-like sequence lengths for the packed-vs-padded benchmarks (grpo_step.py, sft_step.py).

SNS work is mostly short: notes and queries of tens of tokens answered by a label of a few tokens,
with a long tail of long notes and long generations. Scaled to the run's maximum lengths.
"""

from __future__ import annotations

import random


def _draw(rng: random.Random, bands: tuple[tuple[float, int, int], ...]) -> int:
    """A length from the first band whose cumulative share exceeds a uniform draw: (share, lo, hi)."""
    roll = rng.random()
    _, lo, hi = next(band for band in bands if roll < band[0])
    return rng.randint(lo, max(lo, hi))


def sns_lengths(rng: random.Random, max_prompt: int, max_response: int) -> tuple[int, int]:
    """(prompt, response) tokens of one SNS-like rollout: prompts mostly tens of tokens with a tail to
    the maximum; answers mostly a label of a few tokens, some sentences, a few long generations."""
    prompt = _draw(rng, ((0.7, 20, 80), (0.93, 80, max_prompt // 4), (1.0, max_prompt // 4, max_prompt)))
    response = _draw(rng, ((0.6, 1, 6), (0.9, 6, max_response // 8), (1.0, max_response // 2, max_response)))
    return min(prompt, max_prompt), min(response, max_response)
