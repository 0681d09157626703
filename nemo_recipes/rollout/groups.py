"""Rollout groups for one RL step: prompts drawn, responses generated and scored, DAPO dynamic sampling.

Each data-parallel replica generates a contiguous share of a round's prompts on its engine (held by
the replica's first rank) and scores them; the groups are then gathered so every rank holds the same
list in prompt order. Rounds repeat until `prompts_per_step` informative groups (rewards not all
equal) are found or `dynamic_sampling.max_generation_rounds` is reached; a short step is filled with
the first uninformative groups drawn, marked `filler`: they count in the step's reward metrics, but the
trainer leaves them out of the loss and its normaliser (their task rewards are equal, so any advantage
they had would come from the length penalty alone).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch.distributed as dist

from nemo_recipes.config.rl import GRPOConfig
from nemo_recipes.data.rl_prompts import Prompt
from nemo_recipes.data.task_sampler import TaskSampler
from nemo_recipes.records.rollout import RolloutGroup
from nemo_recipes.rollout.engine import RolloutEngine
from nemo_recipes.rollout.generate import generate_and_score
from nemo_recipes.tasks import TaskTable


@dataclass(frozen=True)
class StepGroups:
    groups: list[RolloutGroup]
    """Exactly prompts_per_step groups, in draw order."""
    next_position: int
    """Where the next step's draws start."""
    drawn: int
    """Groups generated this step (all rounds)."""
    rounds: int
    filled_uninformative: int
    """Slots filled with uninformative groups because the round cap was reached."""
    drawn_by_task: dict[str, int]
    uninformative_by_task: dict[str, int]
    """Per task: groups generated this step, and those whose rewards were all equal."""


def generate_share(
    engine: RolloutEngine,
    prompts: Sequence[Prompt],
    positions: Sequence[int],
    grpo: GRPOConfig,
    table: TaskTable,
    tokenizer,
    seed: int,
) -> list[RolloutGroup]:
    """Generate and score this replica's prompts (on the engine rank)."""
    scored = generate_and_score(engine, prompts, positions, grpo.generation, table, tokenizer, seed)
    return [
        RolloutGroup(
            position=position,
            task=g.prompt.record.task,
            prompt_ids=g.prompt.token_ids,
            completions=g.completions,
            rewards=[r.score for r in g.results],
            equivalent=[bool(r.equivalent) for r in g.results],
        )
        for g, position in zip(scored, positions, strict=True)
    ]


def collect_step_groups(
    engine: RolloutEngine | None,
    prompts: Sequence[Prompt],
    sampler: TaskSampler,
    position: int,
    grpo: GRPOConfig,
    table: TaskTable,
    tokenizer,
    seed: int,
    replica: tuple[int, int],
) -> StepGroups:
    """The step's groups (collective over the world; `replica` = (dp rank, dp size))."""
    want, dynamic = grpo.prompts_per_step, grpo.dynamic_sampling
    kept: list[RolloutGroup] = []
    spare: list[RolloutGroup] = []
    drawn = rounds = 0
    drawn_by_task: Counter[str] = Counter()
    uninformative_by_task: Counter[str] = Counter()
    while len(kept) < want and (rounds == 0 or (dynamic.enabled and rounds < dynamic.max_generation_rounds)):
        count = want - len(kept)
        indices = sampler.draw(position, count)
        positions = list(range(position, position + count))
        position += count
        lo, hi = _share(count, *replica)
        local = []
        if engine is not None:
            mine = [prompts[i] for i in indices[lo:hi]]
            local = generate_share(engine, mine, positions[lo:hi], grpo, table, tokenizer, seed)
        groups = gather(local)
        drawn, rounds = drawn + len(groups), rounds + 1
        drawn_by_task.update(g.task for g in groups)
        uninformative_by_task.update(g.task for g in groups if not g.informative)
        if not dynamic.enabled:
            kept = groups
            break
        kept += [g for g in groups if g.informative]
        spare += [g for g in groups if not g.informative]
    filled = want - len(kept)
    fillers = [dataclasses.replace(g, filler=True) for g in spare[:filled]]
    kept = sorted(kept + fillers, key=lambda g: g.position)
    return StepGroups(kept, position, drawn, rounds, filled, dict(drawn_by_task), dict(uninformative_by_task))


def _share(count: int, rank: int, size: int) -> tuple[int, int]:
    """Contiguous, near-equal share [lo, hi) of `count` items for `rank` of `size`."""
    base, extra = divmod(count, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def gather(local: list[RolloutGroup]) -> list[RolloutGroup]:
    """Every rank's groups on every rank, in draw order (ranks without an engine contribute none)."""
    everyone: list[list[RolloutGroup] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, local)
    return sorted((g for part in everyone for g in part or []), key=lambda g: g.position)
