"""Where rollout engines live in a trainer job: one per data-parallel replica, on its first rank.

A replica is a model-parallel (tensor x pipeline) group, times the context-parallel size; the first
rank of its first context-parallel rank's group hosts the engine.
`share_from_engine` hands what the engine produced to the replica's other ranks.
"""

from __future__ import annotations

from typing import TypeVar

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch.distributed as dist
from megatron.core import parallel_state

T = TypeVar("T")


def hosts_engine() -> bool:
    """True on the rank that starts this replica's rollout engine: the first rank of its model-parallel
    group, on the first context-parallel rank (the replica's context-parallel ranks hold the same weights
    and train on the same rollouts: one engine serves them all)."""
    first = dist.get_process_group_ranks(parallel_state.get_model_parallel_group())[0]
    return dist.get_rank() == first and parallel_state.get_context_parallel_rank() == 0


def share_from_engine(obj: T | None) -> T:
    """`obj` from the replica's engine rank, on every rank of the replica (pickled): over its
    model-parallel group, then over each context-parallel group."""
    for group in (parallel_state.get_model_parallel_group(), parallel_state.get_context_parallel_group()):
        if dist.get_world_size(group) > 1:
            box = [obj]
            dist.broadcast_object_list(box, src=dist.get_process_group_ranks(group)[0], group=group)
            obj = box[0]
    return obj
