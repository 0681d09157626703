"""Process-group set-up from torchrun or Slurm `srun`, megatron-core model parallel state, and seeds."""

from __future__ import annotations

import random
from datetime import timedelta

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import numpy as np
import torch
import torch.distributed as dist
from megatron.core import parallel_state, tensor_parallel

from nemo_recipes.config.model import ParallelConfig
from nemo_recipes.launcher import LaunchEnv


def init_distributed(parallel_cfg: ParallelConfig, launch: LaunchEnv, timeout_minutes: int = 30) -> int:
    """Create the default process group and megatron-core's model-parallel groups; returns the DP size."""
    if not dist.is_initialized():
        on_gpu = torch.cuda.is_available()
        if on_gpu:
            torch.cuda.set_device(launch.local_rank)
        dist.init_process_group(
            backend="nccl" if on_gpu else "gloo",
            init_method=f"tcp://{launch.master_addr}:{launch.master_port}",
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=timedelta(minutes=timeout_minutes),
        )
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=parallel_cfg.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel_cfg.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=parallel_cfg.virtual_pipeline_model_parallel_size,
        context_parallel_size=parallel_cfg.context_parallel_size,
        expert_model_parallel_size=parallel_cfg.expert_model_parallel_size,
    )
    return parallel_state.get_data_parallel_world_size()


def comm_device() -> torch.device:
    """Where the tensors of a collective over the default group live: the current GPU under NCCL (which
    refuses host tensors), the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _AllGather(torch.autograd.Function):
    """Concatenate every rank's tensor along dim 0, in rank order; see `all_gather_first_dim`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup, reduce_grad: bool) -> torch.Tensor:
        ctx.group, ctx.reduce_grad, ctx.rows = group, reduce_grad, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        if ctx.reduce_grad:
            grad = grad.contiguous()
            dist.all_reduce(grad, group=ctx.group)
        rank = dist.get_rank(ctx.group)
        return grad[rank * ctx.rows : (rank + 1) * ctx.rows], None, None


def all_gather_first_dim(x: torch.Tensor, group: dist.ProcessGroup, reduce_grad: bool) -> torch.Tensor:
    """Every rank's `x` (equal shapes) concatenated along dim 0 in rank order; differentiable.

    Backward: `reduce_grad` sums the gradients of the gathered tensor over the group before each rank
    takes its own rows (each rank's output feeds a different computation: context-parallel keys and
    values); without it each rank takes its own rows of its gradient alone (every rank computes the
    same function of the gathered tensor, so counting the others' would count it `group size` times).
    Plain all_gather/all_reduce, which gloo supports too. The tensor itself for a group of one.
    """
    if dist.get_world_size(group) == 1:
        return x
    return _AllGather.apply(x, group, reduce_grad)


def seed_all(seed: int) -> None:
    """Seed python/numpy/torch; pipeline stages get distinct streams, TP ranks a tracked model-parallel one.

    Data order does not depend on these streams (the samplers take their own seeded generators), so a
    run's data is the same at any layout.
    """
    stage_seed = seed + 100 * parallel_state.get_pipeline_model_parallel_rank()
    random.seed(stage_seed)
    np.random.seed(stage_seed % 2**32)
    torch.manual_seed(stage_seed)
    tensor_parallel.model_parallel_cuda_manual_seed(stage_seed)


def shutdown() -> None:
    """Tear down model-parallel groups and the default group (lets a process run several layouts)."""
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()


def is_logging_rank() -> bool:
    """Global rank 0 writes logs, metrics and run-directory files."""
    return not dist.is_initialized() or dist.get_rank() == 0
