"""Where rollout engines live in a trainer job: one per data-parallel replica, on its first rank.

A replica is a model-parallel (tensor x pipeline) group; the group's first rank hosts the engine.
`share_from_engine` hands what the engine produced to the replica's other ranks.
"""

from __future__ import annotations

from typing import TypeVar

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch.distributed as dist
from megatron.core import parallel_state

T = TypeVar("T")


def engine_rank_of_replica() -> int:
    """Global rank of the rank hosting this replica's engine: its model-parallel group's first."""
    if parallel_state.get_context_parallel_world_size() > 1:
        raise NotImplementedError("rollout engines with context parallelism > 1 are not supported")
    return dist.get_process_group_ranks(parallel_state.get_model_parallel_group())[0]


def hosts_engine() -> bool:
    """True on the rank that starts this replica's rollout engine."""
    return dist.get_rank() == engine_rank_of_replica()


def share_from_engine(obj: T | None) -> T:
    """`obj` from the replica's engine rank, on every rank of its model-parallel group (pickled)."""
    group = parallel_state.get_model_parallel_group()
    if dist.get_world_size(group) == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=engine_rank_of_replica(), group=group)
    return box[0]
