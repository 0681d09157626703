"""Core attention for megatron-core's local (pure torch) layer spec that also takes packed sequences.

megatron-core's `DotProductAttention` (the local spec's core attention) asserts on `PackedSeqParams`;
only Transformer Engine's attention reads them. `PackedDotProductAttention` takes its place in the
local spec (`nemo_recipes.model.build.layer_spec`); the Transformer Engine spec keeps TE's attention.

The contract, as megatron-core 0.16.1's `Attention.forward` calls a core attention:
- ordinary batches (`packed_seq_params` None): query [s, b, np, hn], key/value [s, b, ng, hn],
  `attention_mask` None (causal) or a boolean [b, 1, s, s] mask (True = masked out, replacing the causal
  mask); returns [s, b, np * hn]. This path IS megatron's `DotProductAttention.forward`, so every result
  without packing is unchanged, bit for bit.
- packed batches (`qkv_format="thd"`): the model is given tokens [1, t] (t = the documents' lengths
  summed) and `Attention` squeezes the dummy batch: query [t, np, hn], key/value [t, ng, hn], RoPE
  already applied per document from position 0 (megatron-core's thd RoPE reads `cu_seqlens` and
  `max_seqlen`). Each document `cu_seqlens_q[i]:cu_seqlens_q[i + 1]` is attended on its own, causally,
  by the same megatron code as an unpacked [L, 1] sequence; returns [t, np * hn], which `Attention`
  reshapes to [t, 1, np * hn].

Supported on both paths, because both run megatron's own code: causal masking, grouped-query attention
(np/ng), tensor parallelism (np and ng are this rank's heads, megatron's head partitioning), attention
dropout under the model-parallel RNG tracker, the softmax scale (`config.softmax_scale`, query-key layer
scaling), bf16/fp16 with megatron's softmax precision, sliding windows and softmax offsets as the config
sets them, selective or full activation recompute. A packed document's output is what the same tokens
give alone as an unpacked [L, 1] sequence (tests/model/test_packed_attention.py: <= 1e-6 against plain
per-document softmax attention; a whole model's logits, losses and gradients within 1e-5).

Context parallelism (`config.context_parallel_size` > 1): the call carries this rank's share of the row
(nemo_recipes.data.context_parallel: every document padded to a multiple of 2 x cp, rank r holding its
chunks r and 2 x cp - 1 - r) and `cu_seqlens_*_padded` of the padded row; keys and values are gathered
over the context-parallel group (their gradients summed back), and each local query attends its
document's keys causally at its true position (tests: <= 1e-6 against per-document attention, gradients
included, at CP2). Sliding windows are refused with it.

Refused loudly: `qkv_format` other than "thd" with `PackedSeqParams`, an `attention_mask` together
with thd packing (documents are delimited by `cu_seqlens` alone), different q and kv `cu_seqlens`
(self-attention only), padded `cu_seqlens_*_padded` that differ from the unpadded ones (at CP 1),
`cu_seqlens` that do not cover exactly the t tokens given (times the CP size), a `max_seqlen` smaller
than the longest document, a non-causal layer in thd form, and an attention bias (as megatron's module
refuses it).

The loop over documents reads `cu_seqlens` on the host: fine on the CPU, where this spec runs; GPU runs
use Transformer Engine's fused varlen attention instead.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import all_gather_first_dim

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType
from torch import Tensor

from nemo_recipes.data.context_parallel import gather_order, padded_lengths, shard_index


class PackedDotProductAttention(DotProductAttention):
    """megatron-core's DotProductAttention, plus thd-packed sequences: causal attention per document."""

    def __init__(self, config, *args, **kwargs) -> None:
        cp_size = config.context_parallel_size
        if cp_size > 1 and config.window_size is not None:
            raise NotImplementedError(
                f"context_parallel_size {cp_size} with window_size {config.window_size}: "
                "PackedDotProductAttention's context parallelism is full causal attention only"
            )
        # megatron's module asserts a context-parallel size of 1; the parallel part is done here.
        local = copy.copy(config)
        local.context_parallel_size = 1
        super().__init__(local, *args, **kwargs)
        self.config = config

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        attn_mask_type: AttnMaskType | None = None,
        attention_bias: Tensor | None = None,
        packed_seq_params: PackedSeqParams | None = None,
    ) -> Tensor:
        if packed_seq_params is None:
            return super().forward(
                query,
                key,
                value,
                attention_mask,
                attn_mask_type=attn_mask_type,
                attention_bias=attention_bias,
            )
        starts = self._document_starts(query, key, value, attention_mask, attention_bias, packed_seq_params)
        if self.config.context_parallel_size > 1:
            return self._context_parallel(query, key, value, starts)
        spans = [
            super(PackedDotProductAttention, self).forward(
                query[a:b].unsqueeze(1),  # megatron's [s, b] attention, once per span as [L, 1]
                key[a:b].unsqueeze(1),
                value[a:b].unsqueeze(1),
                # Block-diagonal causal: each document of the span sees only itself. (Made here also
                # for one document: megatron's own causal mask is made on "cuda", which fails on the
                # CPU when activation recompute runs it inside backward.)
                _span_mask(bounds, query.device),
            )
            for a, b, bounds in _spans(starts, SPAN_TOKENS)
        ]
        return torch.cat(spans).squeeze(1)  # [t, 1, np * hn] -> [t, np * hn]

    def _context_parallel(self, query: Tensor, key: Tensor, value: Tensor, starts: list[int]) -> Tensor:
        """This rank's queries (its two chunks of every padded document, nemo_recipes.data.context_parallel)
        against every document's whole keys and values, gathered over the context-parallel group:
        causal at each query's true position in its document."""
        cp_size = self.config.context_parallel_size
        group = parallel_state.get_context_parallel_group()
        padded = [b - a for a, b in itertools.pairwise(starts)]
        order = gather_order(padded, cp_size).to(query.device)
        # [t_local, ng, hn] per rank -> the padded row's [T, ng, hn]; backward sums every rank's share.
        key = all_gather_first_dim(key, group, reduce_grad=True)[order]
        value = all_gather_first_dim(value, group, reduce_grad=True)[order]
        rows = shard_index(padded, cp_size, dist.get_rank(group)).to(query.device)
        spans = []
        for a, b, bounds in _spans(starts, SPAN_TOKENS * cp_size):
            # Padded lengths are multiples of 2 x cp: the span's queries are local tokens a/cp .. b/cp.
            mine = slice(a // cp_size, b // cp_size)
            spans.append(
                super().forward(
                    query[mine].unsqueeze(1),
                    key[a:b].unsqueeze(1),
                    value[a:b].unsqueeze(1),
                    _span_mask(bounds, query.device, rows[mine] - a),
                )
            )
        return torch.cat(spans).squeeze(1)

    def _document_starts(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        attention_bias: Tensor | None,
        params: PackedSeqParams,
    ) -> list[int]:
        """cu_seqlens as host ints, after checking the packed call is one this module computes right."""
        problems = []
        cp_size = self.config.context_parallel_size
        if params.qkv_format != "thd":
            problems.append(f"qkv_format {params.qkv_format!r} (only 'thd' is packed here)")
        if attention_mask is not None:
            problems.append("an attention_mask with thd packing (documents come from cu_seqlens alone)")
        if attention_bias is not None:
            problems.append("an attention_bias")
        if self.attn_mask_type != AttnMaskType.causal:
            problems.append(f"attn_mask_type {self.attn_mask_type.name} (thd packing here is causal only)")
        if query.dim() != 3 or key.dim() != 3 or value.dim() != 3:
            problems.append(
                f"q/k/v of shapes {tuple(query.shape)}, {tuple(key.shape)}: thd needs [t, heads, hn]"
            )
        cu_q, cu_kv = params.cu_seqlens_q, params.cu_seqlens_kv
        if cu_q is None or cu_kv is None or (cu_q is not cu_kv and not torch.equal(cu_q.cpu(), cu_kv.cpu())):
            problems.append("cu_seqlens_q and cu_seqlens_kv must both be given and equal (self-attention)")
        elif cp_size == 1 and any(
            padded is not None and not torch.equal(padded.cpu(), cu_q.cpu())
            for padded in (params.cu_seqlens_q_padded, params.cu_seqlens_kv_padded)
        ):
            problems.append("padded cu_seqlens that differ from cu_seqlens")
        elif cp_size > 1 and (
            params.cu_seqlens_q_padded is None
            or params.cu_seqlens_kv_padded is None
            or not torch.equal(params.cu_seqlens_q_padded.cpu(), params.cu_seqlens_kv_padded.cpu())
        ):
            problems.append(
                "context parallelism needs equal cu_seqlens_q_padded and cu_seqlens_kv_padded (the "
                "padded row's layout, packed_seq_params)"
            )
        if problems:
            raise ValueError(f"PackedDotProductAttention: {'; '.join(problems)}")
        real = [b - a for a, b in itertools.pairwise(int(x) for x in cu_q.tolist())]
        padded = params.cu_seqlens_q_padded if cp_size > 1 else cu_q
        starts = [int(x) for x in padded.tolist()]
        lengths = [b - a for a, b in itertools.pairwise(starts)]
        if (
            len(starts) < 2
            or starts[0] != 0
            or starts[-1] != query.size(0) * cp_size
            or min(lengths) < 0
            or len(real) != len(lengths)
        ):
            raise ValueError(
                f"PackedDotProductAttention: cu_seqlens {starts} must rise from 0 to the {query.size(0)} "
                f"packed tokens x context-parallel size {cp_size}"
            )
        if cp_size > 1 and any(p % (2 * cp_size) or n > p for n, p in zip(real, lengths, strict=True)):
            raise ValueError(
                f"PackedDotProductAttention: padded document lengths {lengths} must be multiples of "
                f"2 x context-parallel size {cp_size}, each at least its length in {real}"
            )
        for name in ("max_seqlen_q", "max_seqlen_kv"):
            given = getattr(params, name)
            if given is not None and given < max(lengths):
                raise ValueError(
                    f"PackedDotProductAttention: {name} {given} < the longest document {max(lengths)}"
                )
        return starts


SPAN_TOKENS = 256
"""Consecutive documents are attended together, under a block-diagonal mask, in spans of up to this many
tokens (or one longer document): a few masked [L, L] products instead of one small product per document
(short SNS sequences would otherwise cost a Python call each); exact, since a masked score is 0 after
the softmax. 256 was the fastest of 128/256/512/1024 for the SFT step on the toy chat data (2 CPU
cores, docs/benchmarks.md)."""


def _spans(starts: Sequence[int], limit: int) -> list[tuple[int, int, list[int]]]:
    """(start, end, document bounds relative to start) of consecutive documents grouped into spans of at
    most `limit` tokens (a longer document is a span of its own), in order; empty documents skipped."""
    spans: list[tuple[int, int, list[int]]] = []
    for a, b in itertools.pairwise(starts):
        if b == a:
            continue
        if spans and b - spans[-1][0] <= limit:
            first, _, bounds = spans[-1]
            spans[-1] = (first, b, [*bounds, b - first])
        else:
            spans.append((a, b, [0, b - a]))
    return spans


def _span_mask(bounds: Sequence[int], device: torch.device, rows: Tensor | None = None) -> Tensor:
    """[1, 1, q, L] bool, True = masked (megatron's convention): causal within each document of the span,
    nothing across documents. `rows`: the span positions of the q queries (default: all L, in order)."""
    segment = torch.repeat_interleave(
        torch.arange(len(bounds) - 1, device=device),
        torch.tensor([b - a for a, b in itertools.pairwise(bounds)], device=device),
    )
    length = bounds[-1]
    if rows is None:
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        return ~(causal & (segment[:, None] == segment[None, :]))[None, None]
    causal = rows[:, None] >= torch.arange(length, device=device)[None, :]
    return ~(causal & (segment[rows][:, None] == segment[None, :]))[None, None]


def packed_position_ids(lengths: Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """Position ids [1, t] that restart at 0 for every document of the pack.

    megatron's RoPE does not read them (it positions each document from `cu_seqlens`); they keep a packed
    batch the same as its documents for anything that does (HF models, vLLM, learned positions).
    """
    return torch.cat([torch.arange(n, device=device) for n in lengths]).unsqueeze(0)


def packed_seq_params(
    lengths: Sequence[int], device: torch.device | str | None = None, cp_size: int = 1
) -> PackedSeqParams:
    """thd PackedSeqParams for documents of these lengths packed into one row of sum(lengths) tokens.

    `cu_seqlens` are int32 (as Transformer Engine wants them), on `device` (default: the current CUDA
    device when there is one, else the CPU). `max_seqlen` is the longest document (TE sizes its kernels
    by it; megatron-core sizes the RoPE table by it). Padding at the end of a row goes in as a document
    of its own (its tokens then attend only among themselves; mask their loss).

    `cp_size` > 1: the row is sharded over a context-parallel group (nemo_recipes.data.context_parallel);
    `cu_seqlens_*_padded` describe the padded row (documents padded to multiples of 2 x cp_size) and
    `max_seqlen` is its longest padded document, as TE's attention and megatron's thd RoPE read them.
    """
    lengths = [int(n) for n in lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"packed_seq_params: needs one or more documents of length >= 1, got {lengths}")
    if device is None:
        device = torch.cuda.current_device() if torch.cuda.is_available() else "cpu"

    def cumulative(ns: list[int]) -> Tensor:
        return torch.tensor([0, *ns], dtype=torch.int32, device=device).cumsum(0, dtype=torch.int32)

    cu_seqlens = cumulative(lengths)
    padded = padded_lengths(lengths, cp_size)
    cu_padded = cumulative(padded) if cp_size > 1 else None  # None: the same as cu_seqlens
    return PackedSeqParams(
        qkv_format="thd",
        cu_seqlens_q=cu_seqlens,
        cu_seqlens_kv=cu_seqlens,
        cu_seqlens_q_padded=cu_padded,
        cu_seqlens_kv_padded=cu_padded,
        max_seqlen_q=max(padded),
        max_seqlen_kv=max(padded),
    )
