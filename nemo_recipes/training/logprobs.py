"""The trainer's token logprobs and entropies under the sampling temperature, at any TP/PP layout.

The policy is softmax(logits / temperature), the distribution the rollout engine samples from, so
the logprobs here and the engine's (`Completion.logprobs`) describe the same thing. Logits arrive
vocab-parallel ([b, s, v / tp] on each tensor-parallel rank); every reduction over the vocabulary
goes through the tensor-parallel group, and no rank gathers the full vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
import torch.distributed as dist
from megatron.core import parallel_state, tensor_parallel
from megatron.core.utils import get_model_config

from nemo_recipes.data.rl_batch import RLBatch
from nemo_recipes.model.context_parallel import gather_tokens, packed_inputs, shard
from nemo_recipes.training.moe_routing import RoutingStats, routed
from nemo_recipes.training.step import run_step


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / temperature) at `labels`: [b, s] float32 from [b, s, v / tp]; differentiable."""
    # logits / temperature is a fresh tensor: megatron's cross entropy works in place on its input.
    scaled = logits.float() / temperature
    return -tensor_parallel.vocab_parallel_cross_entropy(scaled, labels)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) at every position: [b, s] float32, detached."""
    group = parallel_state.get_tensor_model_parallel_group()
    scaled = logits.float() / temperature
    shift = scaled.max(dim=-1).values
    dist.all_reduce(shift, op=dist.ReduceOp.MAX, group=group)
    weights = torch.exp(scaled - shift.unsqueeze(-1))
    sums = torch.stack([weights.sum(dim=-1), (weights * scaled).sum(dim=-1)])
    dist.all_reduce(sums, group=group)
    normaliser, weighted = sums
    # H = log Z - E[z], with log Z = shift + log(sum exp(z - shift)).
    return shift + torch.log(normaliser) - weighted / normaliser


def packed_logits(
    model: torch.nn.Module, batch: RLBatch, replay: bool = False, stats: RoutingStats | None = None
) -> torch.Tensor:
    """The model's output for a packed row (thd: each sequence attends only to itself; this
    context-parallel rank's share of the row). A mixture-of-experts model replays the engine's routing
    in the batch with `replay`, and counts its routers' choices into `stats` when given
    (nemo_recipes.training.moe_routing)."""
    multiple = sequence_parallel_multiple([model])
    if batch.tokens.shape[1] % multiple:
        raise ValueError(
            f"a row of {batch.tokens.shape[1]} tokens under sequence parallelism: its length must be a "
            f"multiple of the tensor-parallel size {multiple} (pad it: rl_batch.micro_batches' row_multiple)"
        )
    inputs = packed_inputs(batch.tokens, batch.position_ids, batch.document_lengths)
    with routed(model, batch.routed_experts, batch.routed_tokens, replay, stats):
        return model(inputs.tokens, inputs.position_ids, None, packed_seq_params=inputs.params)


def response_logprobs(logits: torch.Tensor, batch: RLBatch, temperature: float) -> torch.Tensor:
    """[n, L] logprob of every response token of the row from `packed_logits`' output (gathered over
    the context-parallel group: every rank of it gets the whole row's); differentiable."""
    local = token_logprobs(logits, shard(batch.labels, batch.document_lengths), temperature)
    return batch.per_response(gather_tokens(local, batch.document_lengths))


def response_entropy(logits: torch.Tensor, batch: RLBatch, temperature: float) -> torch.Tensor:
    """[n, L] entropy of the policy at every response token of the row (as `response_logprobs`);
    detached."""
    return batch.per_response(gather_tokens(token_entropy(logits, temperature), batch.document_lengths))


def sequence_parallel_multiple(model: list) -> int:
    """What every packed row's length must be a multiple of: the tensor-parallel size under sequence
    parallelism (megatron-core splits the row's positions evenly over the tensor-parallel ranks), else 1."""
    if not get_model_config(model[0]).sequence_parallel:
        return 1
    return parallel_state.get_tensor_model_parallel_world_size()


def row_length(batches: Sequence[RLBatch]) -> int:
    """The longest row: the sequence length megatron-core's schedule is given (with pipeline
    parallelism every row has it, the fixed activation shape between stages)."""
    lengths = {batch.tokens.shape[1] for batch in batches}
    if parallel_state.get_pipeline_model_parallel_world_size() > 1 and len(lengths) > 1:
        raise ValueError(f"pipeline parallelism needs rows of one length, got {sorted(lengths)}")
    return max(lengths)


def _logprob_forward_step(temperature: float, replay: bool, stats: RoutingStats | None):
    def forward_step(batch: RLBatch, model: torch.nn.Module):
        def collect(output: torch.Tensor):
            logprobs = response_logprobs(output, batch, temperature) * batch.response_mask
            return output.new_zeros(()), batch.response_mask.sum().int(), {"logprobs": logprobs.detach()}

        return packed_logits(model, batch, replay, stats), collect

    return forward_step


def compute_logprobs(
    model: list,
    batches: Sequence[RLBatch],
    temperature: float,
    replay: bool = False,
    stats: RoutingStats | None = None,
) -> list[torch.Tensor] | None:
    """The trainer's logprob of every response token, per micro-batch: [n, L] float32, 0 outside
    `response_mask`. `replay`: a mixture-of-experts model routes as the engine did (the batches'
    `routed_experts`); `stats`: its routers' choices are counted there.

    Forward only, through megatron-core's pipeline schedule (collective over the model-parallel
    group). Returns the list on the last pipeline stage and None on the others.
    """
    step = _logprob_forward_step(temperature, replay, stats)
    result = run_step(model, batches, step, row_length(batches), 1, ())
    if not parallel_state.is_pipeline_last_stage():
        return None
    return [out["logprobs"] for out in result.outputs]
