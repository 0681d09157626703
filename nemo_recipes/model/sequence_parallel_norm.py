"""RMSNorm for megatron-core's local (pure torch) layer spec that also runs under sequence parallelism.

megatron-core's local spec builds its norms with `WrappedTorchNorm`, which returns a `torch.nn.RMSNorm`
and asserts that `config.sequence_parallel` is off. Under sequence parallelism the norms in the
residual stream (each layer's input and pre-MLP norm, the final norm) see only this tensor-parallel
rank's slice of the sequence ([s / tp, b, h]), so their weight's gradient is a partial sum over the
rank's tokens. megatron-core completes it in `finalize_model_grads`
(`_allreduce_non_tensor_model_parallel_grads`): it sums over the tensor-parallel group the gradient of
every parameter marked `sequence_parallel = True` when `config.sequence_parallel` is on, as its
Transformer Engine and Apex norms mark theirs. `SequenceParallelRMSNorm` is `torch.nn.RMSNorm` (the
same forward, parameter name and initial weight, so without sequence parallelism every result is
unchanged, bit for bit) with its weight so marked.

The per-head q/k norms (Qwen3) act after the column-parallel QKV projection has gathered the sequence,
on this rank's heads: their gradient is partial over heads at any TP size, and megatron-core sums it
over the group by name (`q_layernorm` / `k_layernorm`) whether or not they are marked; the mark sends
them down the same single sum.
"""

from __future__ import annotations

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
from megatron.core.transformer import TransformerConfig


class SequenceParallelRMSNorm(torch.nn.RMSNorm):
    """`torch.nn.RMSNorm` over the last `hidden_size` features, built as megatron-core builds its norms;
    its weight carries `sequence_parallel = config.sequence_parallel` (module docstring)."""

    def __init__(self, config: TransformerConfig, hidden_size: int, eps: float = 1e-5) -> None:
        if config.normalization != "RMSNorm":
            raise ValueError(f"SequenceParallelRMSNorm is an RMSNorm; the config asks {config.normalization}")
        if config.layernorm_zero_centered_gamma or config.memory_efficient_layer_norm:
            raise ValueError(
                "SequenceParallelRMSNorm supports neither zero-centered gamma nor memory-efficient norm"
            )
        super().__init__(normalized_shape=hidden_size, eps=eps)
        self.weight.sequence_parallel = config.sequence_parallel
