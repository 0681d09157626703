"""Generate -> decode -> score: the one path from prompts to scored responses.

GRPO's collection (`groups.py`), stage 2's rehearsal and evaluation all call it. Each prompt is seeded
from the run's seed and the prompt's key (its draw position, or an eval item's task/id), so a
response depends on the prompt, the key, the weights and the settings: not on which replica or batch
generated it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from nemo_recipes.config.generation import GenerationConfig
from nemo_recipes.data.rl_prompts import Prompt
from nemo_recipes.records.rollout import Completion
from nemo_recipes.rollout.engine import RolloutEngine
from nemo_recipes.tasks import RewardResult, TaskTable, score_batch


@dataclass(frozen=True)
class Generated:
    """One prompt's responses: the engine's completions, their decoded texts and (when scored) rewards."""

    prompt: Prompt
    completions: list[Completion]
    texts: list[str]
    results: list[RewardResult] | None = None
    """The task reward of each response (None: not scored)."""


def sample_seed(seed: int, key: int | str) -> int:
    """The sampling seed of a prompt from its key (draw position or item key) and the run's seed."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def generate(
    engine: RolloutEngine,
    prompts: Sequence[Prompt],
    keys: Sequence[int | str],
    generation: GenerationConfig,
    tokenizer,
    seed: int,
) -> list[Generated]:
    """`generation.num_generations_per_prompt` decoded responses per prompt, in prompt order."""
    if not prompts:
        return []
    seeds = [sample_seed(seed, k) for k in keys]
    outputs = engine.generate([p.token_ids for p in prompts], generation, seeds)
    return [
        Generated(p, cs, [tokenizer.decode(c.token_ids, skip_special_tokens=True) for c in cs])
        for p, cs in zip(prompts, outputs, strict=True)
    ]


def generate_and_score(
    engine: RolloutEngine,
    prompts: Sequence[Prompt],
    keys: Sequence[int | str],
    generation: GenerationConfig,
    table: TaskTable,
    tokenizer,
    seed: int,
) -> list[Generated]:
    """`generate`, then every response scored by its task's reward (one batch over all prompts)."""
    generated = generate(engine, prompts, keys, generation, tokenizer, seed)
    flat = score_batch(
        table, [t for g in generated for t in g.texts], [g.prompt.record for g in generated for _ in g.texts]
    )
    out, start = [], 0
    for g in generated:
        out.append(Generated(g.prompt, g.completions, g.texts, flat[start : start + len(g.texts)]))
        start += len(g.texts)
    return out
