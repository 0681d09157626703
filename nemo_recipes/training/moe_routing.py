"""The policy's MoE routers in the RL stage: replaying the engine's routing, and what they chose.

megatron-core 0.16.1 gives every `TopKRouter` a `RouterReplay` when `moe_enable_routing_replay` is set
(our builder sets it for every MoE model; without an action the router routes as usual). `routed(...)`
wraps one forward pass of a packed row: with the engine's routing in the batch and `replay`, each
router takes its layer's top-k from it (`REPLAY_FORWARD`: the combine weights are still the router's
own softmax over the replayed experts' logits, so the router keeps its gradient); forward hooks then
count what the routers chose into a `RoutingStats` (tokens per expert per layer; on a pass that routes
itself, how often its top-k set equals the engine's).

Backward without recomputation never re-runs a router, so one forward's replay needs no more; with
full activation recomputation (`model.recompute: full`) the router would run again during the backward
pass, which is refused (config check).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import comm_device

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.transformer.moe.moe_utils import (
    clear_aux_losses_tracker,
    get_moe_layer_wise_logging_tracker,
)
from megatron.core.transformer.moe.router import TopKRouter
from megatron.core.transformer.moe.router_replay import RouterReplayAction

_ROUTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model chunk -> [(global layer index, router)]; found once per chunk."""


def moe_routers(chunk: torch.nn.Module) -> list[tuple[int, TopKRouter]]:
    """The chunk's MoE routers with their global (0-based) layer index; [] for a dense model."""
    if chunk not in _ROUTERS:
        _ROUTERS[chunk] = [(m.layer_number - 1, m) for m in chunk.modules() if isinstance(m, TopKRouter)]
    return _ROUTERS[chunk]


def model_moe_shape(model: list) -> tuple[int, int] | None:
    """(layers, experts) of a mixture-of-experts model's chunks; None for a dense model."""
    config = model[0].config
    return (config.num_layers, config.num_moe_experts) if config.num_moe_experts else None


def aux_loss_metrics(num_layers: int, micro_batches: int) -> dict[str, float]:
    """megatron-core's load-balancing loss of the updates since the last call, from its per-layer
    tracker (filled only by routers with an auxiliary loss): `moe/load_balancing_loss`, the mean over
    layers and micro-batches; then the tracker is cleared. {} when the model has none. Collective (the
    world's sums here: megatron's own reduction averages with a reduce op gloo lacks)."""
    tracker = get_moe_layer_wise_logging_tracker()
    name = "load_balancing_loss"
    values = tracker[name]["values"].detach().double().cpu().sum() if name in tracker else 0.0
    sums = torch.tensor(
        [float(values), float(micro_batches), float(name in tracker)],
        dtype=torch.float64,
        device=comm_device(),
    )
    dist.all_reduce(sums)
    clear_aux_losses_tracker()
    if sums[2] == 0 or sums[1] == 0:
        return {}
    # A layer's value lives on its pipeline stage, once per tensor-parallel rank; micro-batches are
    # counted on every rank: the TP factor cancels, PP's does not.
    pp = parallel_state.get_pipeline_model_parallel_world_size()
    return {f"moe/{name}": float(sums[0]) * pp / (num_layers * float(sums[1]))}


@dataclass
class RoutingStats:
    """What the routers chose over some forward passes, summed on this rank (reduce with `metrics`)."""

    num_layers: int
    num_experts: int
    tokens_per_expert: torch.Tensor = field(init=False)
    """[layers, experts]: routed (token, expert) pairs per layer, over the engine-routed tokens."""
    agreement: torch.Tensor = field(init=False)
    """[tokens whose top-k set equals the engine's, tokens compared], summed over layers."""

    def __post_init__(self) -> None:
        self.tokens_per_expert = torch.zeros(self.num_layers, self.num_experts, dtype=torch.float64)
        self.agreement = torch.zeros(2, dtype=torch.float64)

    def metrics(self) -> dict[str, float]:
        """Reduced over the world (collective): `moe/load_imbalance` (the mean over layers of max/mean
        tokens per expert; per layer `moe/layer_<l>/load_imbalance`) and `routing_agreement`."""
        both = torch.cat([self.tokens_per_expert.flatten(), self.agreement]).to(comm_device())
        dist.all_reduce(both)
        # TP ranks route the same tokens (or, under sequence parallelism, each its slice of the row):
        # counted TP times or once; every metric below is a ratio, unchanged by either.
        both /= parallel_state.get_tensor_model_parallel_world_size()
        load = both[: self.tokens_per_expert.numel()].view(self.num_layers, self.num_experts)
        agree, compared = both[-2:].tolist()
        out: dict[str, float] = {}
        per_layer = []
        for layer, tokens in enumerate(load):
            if tokens.sum() > 0:
                imbalance = float(tokens.max() / tokens.mean())
                out[f"moe/layer_{layer}/load_imbalance"] = imbalance
                per_layer.append(imbalance)
        if per_layer:
            out["moe/load_imbalance"] = sum(per_layer) / len(per_layer)
        if compared > 0:
            out["routing_agreement"] = agree / compared
        return out


@contextlib.contextmanager
def routed(
    chunk: torch.nn.Module,
    routing: torch.Tensor | None,
    routed_tokens: torch.Tensor | None,
    replay: bool,
    stats: RoutingStats | None,
) -> Iterator[None]:
    """One forward pass of a packed row through `chunk`: with `replay`, its routers take the engine's
    `routing` ([t, layers, k]); with `stats`, what they chose is counted there (over `routed_tokens`)."""
    routers = moe_routers(chunk)
    if not routers or (not replay and stats is None):
        yield
        return
    if replay and routing is None:
        raise ValueError("routing replay needs the engine's routing in the batch (grpo.routing_replay)")
    sequence_parallel = routers[0][1].config.sequence_parallel
    rows = _local_rows(routing, sequence_parallel) if routing is not None else None
    mask = _local_rows(routed_tokens, sequence_parallel) if routed_tokens is not None else None
    hooks = []
    for layer, router in routers:
        if replay:
            router.router_replay.clear_indices()
            router.router_replay.set_target_indices(rows[:, layer])
            router.router_replay.set_router_replay_action(RouterReplayAction.REPLAY_FORWARD)
        if stats is not None:
            engine = rows[:, layer] if rows is not None and not replay else None
            hooks.append(router.register_forward_hook(_counter(stats, layer, mask, engine)))
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for _, router in routers:
            if replay:
                router.router_replay.clear_router_replay_action()
                router.router_replay.clear_indices()


def _local_rows(values: torch.Tensor, sequence_parallel: bool) -> torch.Tensor:
    """The positions of a packed row this rank's routers see: all of them, or, with sequence
    parallelism, this tensor-parallel rank's contiguous shard (megatron-core's embedding scatters the
    row [t, 1, h] along t into tp equal slices, in rank order; rows are padded to a multiple of tp)."""
    tp = parallel_state.get_tensor_model_parallel_world_size()
    if not sequence_parallel or tp == 1:
        return values
    return values.chunk(tp)[parallel_state.get_tensor_model_parallel_rank()]


def _counter(stats: RoutingStats, layer: int, mask: torch.Tensor | None, engine: torch.Tensor | None):
    """A forward hook counting a router's choices (its routing map) into `stats`."""

    def hook(_router, _inputs, outputs) -> None:
        _, routing_map = outputs
        chosen = routing_map.detach().bool()
        valid = mask.to(chosen.device) if mask is not None else torch.ones_like(chosen[:, 0])
        stats.tokens_per_expert[layer] += chosen[valid].sum(0).to(torch.float64).cpu()
        if engine is not None:
            wanted = torch.zeros_like(chosen).scatter_(1, engine.to(chosen.device), True)
            same = (chosen == wanted).all(-1)[valid]
            stats.agreement += torch.tensor([float(same.sum()), float(same.numel())], dtype=torch.float64)

    return hook
