"""One optimizer step (or a forward-only pass) through megatron-core's pipeline schedules.

Stage-agnostic: a stage passes its micro-batches and a `forward_step(batch, model) -> (output, loss_fn)`
and gets back summed metrics. Every rank passes the same micro-batches for its data-parallel slice;
pipeline stages take from them what they need.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import comm_device

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.pipeline_parallel import get_forward_backward_func

B = TypeVar("B")
ForwardStep = Callable[[object, torch.nn.Module], tuple[torch.Tensor, Callable]]


@dataclass(frozen=True)
class StepResult:
    """Metrics of one step: sums over the global batch (all data-parallel ranks) and their ratios."""

    sums: dict[str, list[float]]
    """metric -> [numerator, denominator] summed over micro-batches and data-parallel ranks."""
    grad_norm: float | None
    lr: float | None
    """The learning rate the update ran at (None: forward only)."""
    update_skipped: bool
    seconds: float
    outputs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    """The loss functions' outputs, one per micro-batch in order, on the last pipeline stage only
    (empty elsewhere): per-micro-batch results such as logprobs (nemo_recipes.training.logprobs)."""

    def mean(self, name: str) -> float:
        num, den = self.sums[name]
        return num / max(den, 1.0)


def on_device(batch: B, device: torch.device) -> B:
    """`batch` (a tensor, or a dataclass of tensors and plain values) with every tensor on `device`: the
    stages build batches on the host; the model may live on a GPU. The batch itself when nothing moves
    (CPU runs)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    moved = {
        f.name: value.to(device, non_blocking=True)
        for f in dataclasses.fields(batch)
        if isinstance(value := getattr(batch, f.name), torch.Tensor) and value.device != device
    }
    return dataclasses.replace(batch, **moved) if moved else batch


def _iterators(model: list, micro_batches: Sequence) -> list | object:
    # Each virtual-pipeline chunk consumes its own pass over the micro-batches.
    iters = [iter(micro_batches) for _ in model]
    return iters if len(model) > 1 else iters[0]


def _reduce_metrics(outputs: list[dict[str, torch.Tensor]], names: Sequence[str]) -> dict[str, list[float]]:
    """Sum [num, den] pairs over micro-batches, then over the world.

    Only the last pipeline stage has outputs, and every tensor/context-parallel rank of it holds the
    same values: the world sum is divided by that replication.
    """
    local = torch.zeros(len(names), 2, dtype=torch.float64, device=comm_device())
    for out in outputs:
        for i, n in enumerate(names):
            local[i] += out[n].to(torch.float64).reshape(2)
    dist.all_reduce(local)
    local /= (
        parallel_state.get_tensor_model_parallel_world_size()
        * parallel_state.get_context_parallel_world_size()
    )
    return {n: local[i].tolist() for i, n in enumerate(names)}


def run_step(
    model: list,
    micro_batches: Sequence,
    forward_step: ForwardStep,
    seq_length: int,
    micro_batch_size: int,
    metric_names: Sequence[str],
    optimizer=None,
    scheduler=None,
) -> StepResult:
    """Forward/backward over the micro-batches and one optimizer update; forward only without optimizer.

    The loss functions return a dict of [num, den] tensors keyed by `metric_names`.
    """
    start = time.perf_counter()
    forward_only = optimizer is None
    if not forward_only:
        for chunk in model:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
    for chunk in model:
        chunk.train(not forward_only)

    device = next(model[0].parameters()).device

    def fwd(data_iterator, chunk):
        return forward_step(on_device(next(data_iterator), device), chunk)

    with torch.set_grad_enabled(not forward_only):
        outputs = get_forward_backward_func()(
            forward_step_func=fwd,
            data_iterator=_iterators(model, micro_batches),
            model=model,
            num_microbatches=len(micro_batches),
            seq_length=seq_length,
            micro_batch_size=micro_batch_size,
            forward_only=forward_only,
        )
    grad_norm, lr, skipped = None, None, False
    if not forward_only:
        lr = optimizer.param_groups[0]["lr"]
        ok, grad_norm, _ = optimizer.step()
        skipped = not ok
        if ok:
            scheduler.step(increment=1)
    return StepResult(
        sums=_reduce_metrics(outputs, metric_names),
        grad_norm=float(grad_norm) if grad_norm is not None else None,
        lr=lr,
        update_skipped=skipped,
        seconds=time.perf_counter() - start,
        outputs=list(outputs),
    )
