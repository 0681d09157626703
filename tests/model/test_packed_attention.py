"""thd-packed sequences on the local layer spec (nemo_recipes/model/packed_attention.py): the core attention
against plain per-document softmax attention, a whole tiny GPT packed against its documents run alone
(logits, losses, gradients; TP1 here, TP2 over 2 gloo ranks), and [b, s] batches unchanged.

The TP2 check runs this file as a torchrun worker:
    python -m torch.distributed.run --nproc-per-node 2 -m tests.model.test_packed_attention OUT.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import pytest
import torch
import torch.distributed as dist
from megatron.core import parallel_state, tensor_parallel
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType

from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import load_config
from nemo_recipes.data.context_parallel import shard_row
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model import packed_attention
from nemo_recipes.model.build import build_model
from nemo_recipes.model.context_parallel import gather_tokens
from nemo_recipes.model.packed_attention import (
    PackedDotProductAttention,
    packed_position_ids,
    packed_seq_params,
)
from tests.conftest import run_torchrun
from tests.worker_results import write_worst

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the local spec on a CPU-only torch")

LENGTHS = [5, 1, 9, 3, 6]
"""Documents of one packed row: a document of length 1 among them."""


def run_config(tp: int = 1, cp: int = 1) -> RunConfig:
    sets = [f"parallel.tensor_model_parallel_size={tp}", f"parallel.context_parallel_size={cp}"]
    return load_config(RunConfig, None, ["model.hf_config=tiny-qwen3", *sets])


@pytest.fixture(scope="module")
def one_process():
    """A single gloo rank with megatron's model-parallel state (TP1), torn down after the module."""
    cfg = run_config()
    init_distributed(cfg.parallel, read_launch_env())
    seed_all(cfg.seed)
    try:
        yield cfg
    finally:
        shutdown()


# (a) the core attention against plain softmax attention per document


def attention_config(**changes) -> TransformerConfig:
    base = dict(num_layers=1, hidden_size=64, num_attention_heads=4, num_query_groups=2, kv_channels=16)
    base["attention_dropout"] = 0.0
    return TransformerConfig(**{**base, **changes})


def core_attention(config: TransformerConfig) -> PackedDotProductAttention:
    """Built as megatron's Attention builds it (the softmax scale comes from the config)."""
    return PackedDotProductAttention(
        config,
        layer_number=1,
        attn_mask_type=AttnMaskType.causal,
        attention_type="self",
        softmax_scale=config.softmax_scale,
    )


def reference_attention(q, k, v, lengths: list[int], scale: float) -> torch.Tensor:
    """Per document and head, float64: softmax(scale * q k^T + causal mask) v; heads share kv by group."""
    q, k, v = q.double(), k.double(), v.double()
    per_group = q.size(1) // k.size(1)
    out, start = [], 0
    for n in lengths:
        doc = slice(start, start + n)
        heads = []
        for h in range(q.size(1)):
            scores = scale * q[doc, h] @ k[doc, h // per_group].T
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -math.inf)
            heads.append(torch.softmax(scores, dim=-1) @ v[doc, h // per_group])
        out.append(torch.cat(heads, dim=-1))
        start += n
    return torch.cat(out)


@pytest.mark.parametrize("span_tokens", [256, 10], ids=["one_span", "spans_of_10"])
@pytest.mark.parametrize("lengths", [LENGTHS, [11]], ids=["several_documents", "one_document"])
@pytest.mark.parametrize("softmax_scale", [None, 0.3])
def test_core_attention_matches_plain_attention_per_document(
    one_process, lengths, softmax_scale, span_tokens, monkeypatch
) -> None:
    # Documents are grouped into spans of at most span_tokens (one longer document alone): at 10, the
    # lengths [5, 1, 9, 3, 6] make spans [5, 1] [9] [3, 6].
    monkeypatch.setattr(packed_attention, "SPAN_TOKENS", span_tokens)
    config = attention_config(softmax_scale=softmax_scale)
    attention = core_attention(config)
    gen = torch.Generator().manual_seed(0)
    t = sum(lengths)
    q = torch.randn(t, 4, 16, generator=gen)
    k, v = torch.randn(t, 2, 16, generator=gen), torch.randn(t, 2, 16, generator=gen)
    out = attention(q, k, v, None, packed_seq_params=packed_seq_params(lengths))
    scale = softmax_scale if softmax_scale is not None else 1 / math.sqrt(16)
    expected = reference_attention(q, k, v, lengths, scale)
    assert out.shape == (t, 4 * 16) and out.dtype == torch.float32
    assert (out.double() - expected).abs().max().item() <= 1e-6


def test_core_attention_drops_out_under_the_model_parallel_rng_when_configured(one_process) -> None:
    attention = core_attention(attention_config(attention_dropout=0.5))
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(sum(LENGTHS), h, 16, generator=gen) for h in (4, 2, 2))
    params = packed_seq_params(LENGTHS)
    tracker = tensor_parallel.get_cuda_rng_tracker()
    state = tracker.get_states()
    dropped = attention(q, k, v, None, packed_seq_params=params)
    tracker.set_states(state)
    assert torch.equal(attention(q, k, v, None, packed_seq_params=params), dropped)
    attention.eval()
    plain = attention(q, k, v, None, packed_seq_params=params)
    assert (plain.double() - reference_attention(q, k, v, LENGTHS, 1 / 4)).abs().max().item() <= 1e-6
    assert (dropped - plain).abs().max().item() > 1e-2


def test_core_attention_refuses_what_it_does_not_compute(one_process) -> None:
    attention = core_attention(attention_config())
    q, kv = torch.randn(6, 4, 16), torch.randn(6, 2, 16)
    good = packed_seq_params([2, 4])

    def refused(params: PackedSeqParams, mask=None) -> str:
        with pytest.raises(ValueError, match="PackedDotProductAttention") as info:
            attention(q, kv, kv, mask, packed_seq_params=params)
        return str(info.value)

    assert "qkv_format 'sbhd'" in refused(PackedSeqParams(**{**vars(good), "qkv_format": "sbhd"}))
    assert "attention_mask" in refused(good, mask=torch.zeros(1, 1, 6, 6, dtype=torch.bool))
    assert "must rise from 0 to the 6" in refused(packed_seq_params([2, 3]))
    assert "max_seqlen_q 3 < the longest document 4" in refused(
        PackedSeqParams(**{**vars(good), "max_seqlen_q": 3})
    )
    other_kv = PackedSeqParams(**{**vars(good), "cu_seqlens_kv": packed_seq_params([3, 3]).cu_seqlens_kv})
    assert "equal (self-attention)" in refused(other_kv)
    padded = PackedSeqParams(**{**vars(good), "cu_seqlens_q_padded": torch.tensor([0, 4, 8])})
    assert "padded cu_seqlens" in refused(padded)
    with pytest.raises(NotImplementedError, match="full causal attention only"):
        core_attention(attention_config(context_parallel_size=2, window_size=(4, 0)))


def test_packed_seq_params_from_document_lengths() -> None:
    params = packed_seq_params([3, 1, 4])
    assert params.qkv_format == "thd" and params.cu_seqlens_q.dtype == torch.int32
    assert params.cu_seqlens_q.tolist() == params.cu_seqlens_kv.tolist() == [0, 3, 4, 8]
    assert params.max_seqlen_q == params.max_seqlen_kv == 4  # the longest document, not the pack
    assert packed_position_ids([3, 1, 4]).tolist() == [[0, 1, 2, 0, 0, 1, 2, 3]]
    for bad in ([], [2, 0]):
        with pytest.raises(ValueError, match="length >= 1"):
            packed_seq_params(bad)


# (b) a whole tiny GPT: one packed row against each document alone


def packed_vs_separate(ddp_model, vocab: int, lengths: list[int]) -> dict[str, float]:
    """Max abs differences, packed (thd) vs each document alone: logits, per-token losses, gradients of
    the summed loss (this rank's shards; megatron's DDP holds gradients in `main_grad`). Documents alone
    get an explicit causal mask, as the trainer's batches do (megatron's own mask for None is made on
    "cuda", which the CPU device layer cannot redirect inside backward, where recompute runs it)."""
    gen = torch.Generator().manual_seed(7)
    docs = [torch.randint(0, vocab, (1, n), generator=gen) for n in lengths]
    labels = [torch.randint(0, vocab, (1, n), generator=gen) for n in lengths]
    params = [p for p in ddp_model.parameters() if p.requires_grad]

    def causal(n: int) -> torch.Tensor:
        return torch.ones(n, n, dtype=torch.bool).triu(1)[None, None]

    def run(packed: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        if packed:  # one row [1, t], no mask: documents come from cu_seqlens
            calls = [(torch.cat(docs, 1), torch.cat(labels, 1), packed_position_ids(lengths), None)]
            extra = {"packed_seq_params": packed_seq_params(lengths)}
        else:
            calls = [
                (d, y, torch.arange(n)[None], causal(n))
                for d, y, n in zip(docs, labels, lengths, strict=True)
            ]
            extra = {}
        ddp_model.zero_grad_buffer()
        with torch.no_grad():
            logits = torch.cat([ddp_model(x, pos, mask, **extra) for x, _, pos, mask in calls], dim=1)
        losses = torch.cat([ddp_model(x, pos, mask, labels=y, **extra) for x, y, pos, mask in calls], dim=1)
        losses.sum().backward()
        grads = [p.main_grad.clone() for p in params]
        ddp_model.zero_grad_buffer()
        return logits, losses.detach(), grads

    logits, losses, grads = run(packed=True)
    alone_logits, alone_losses, alone_grads = run(packed=False)
    assert logits.shape[:2] == alone_logits.shape[:2] == (1, sum(lengths))
    return {
        "logits": (logits - alone_logits).abs().max().item(),
        "loss": (losses - alone_losses).abs().max().item(),
        "grad": max((a - b).abs().max().item() for a, b in zip(grads, alone_grads, strict=True)),
        "grad_scale": max(g.abs().max().item() for g in grads),
    }


@pytest.mark.parametrize("recompute", [None, "selective", "full"])
def test_tiny_gpt_packed_matches_documents_alone(one_process, recompute: str | None) -> None:
    cfg = one_process
    model_cfg = cfg.model.model_copy(update={"recompute": recompute})
    seed_all(cfg.seed)
    model, tc, arch = build_model(model_cfg, cfg.parallel)
    assert tc.recompute_granularity == recompute
    core = model[0].module.decoder.layers[0].self_attention.core_attention
    assert type(core) is PackedDotProductAttention
    diffs = packed_vs_separate(model[0], arch.vocab_size, LENGTHS)
    assert diffs["grad_scale"] > 1e-3, diffs  # the gradients compared are not vanishing
    assert max(diffs["logits"], diffs["loss"], diffs["grad"]) <= 1e-5, diffs


# (c) ordinary [b, s] batches: the same logits as megatron's stock local spec


def test_unpacked_batches_match_the_stock_local_spec(one_process) -> None:
    cfg = one_process
    seed_all(cfg.seed)
    model, tc, arch = build_model(cfg.model, cfg.parallel)
    ours = model[0].module
    stock_spec = get_gpt_layer_local_spec(qk_layernorm=tc.qk_layernorm, normalization="RMSNorm")
    assert stock_spec.submodules.self_attention.submodules.core_attention is DotProductAttention
    stock = GPTModel(
        config=tc,
        transformer_layer_spec=stock_spec,
        vocab_size=arch.vocab_size,
        max_sequence_length=arch.max_position_embeddings,
        share_embeddings_and_output_weights=arch.tie_word_embeddings,
        position_embedding_type="rope",
        rotary_base=int(arch.rotary_base),
    )
    stock.load_state_dict(ours.state_dict(), strict=True)
    b, s = 3, 12
    tokens = torch.randint(0, arch.vocab_size, (b, s), generator=torch.Generator().manual_seed(5))
    position_ids = torch.arange(s).expand(b, s)
    padded = torch.arange(s).expand(b, s) >= torch.tensor([[12], [7], [4]])  # right padding per row
    mask = torch.ones(s, s, dtype=torch.bool).triu(1)[None, None] | padded[:, None, None, :]
    with torch.no_grad():
        for attention_mask in (None, mask):
            got = ours(tokens, position_ids, attention_mask)
            want = stock(tokens, position_ids, attention_mask)
            assert torch.equal(got, want)


# (d) TP2 over 2 gloo ranks: packed against documents alone


def torchrun_worker(tmp_path: Path, layout: str) -> dict[str, float]:
    """Run this file's `layout` worker on 2 gloo ranks; its JSON result."""
    out = tmp_path / f"{layout}.json"
    run_torchrun(["-m", "tests.model.test_packed_attention", str(out), layout])
    return json.loads(out.read_text())


@pytest.mark.parallel
def test_tensor_parallel_packed_matches_documents_alone(tmp_path: Path) -> None:
    diffs = torchrun_worker(tmp_path, "tp2")
    assert diffs["grad_scale"] > 1e-3, diffs
    assert max(diffs["logits"], diffs["loss"], diffs["grad"]) <= 1e-5, diffs


def tp2_worker(out: Path) -> None:
    cfg = run_config(tp=2)
    init_distributed(cfg.parallel, read_launch_env())
    try:
        seed_all(cfg.seed)
        model, tc, arch = build_model(cfg.model, cfg.parallel)
        assert tc.tensor_model_parallel_size == 2
        diffs = packed_vs_separate(model[0], arch.vocab_size, LENGTHS)
        write_worst(diffs, out)
    finally:
        shutdown()


# (e) context parallelism over 2 gloo ranks: each rank's chunks of every document against plain attention


CP_CASES = {"several_documents": (LENGTHS, 256), "spans_of_10": (LENGTHS, 10), "one_document": ([11], 256)}
"""Row layouts at CP2 (documents padded to multiples of 4): LENGTHS [5, 1, 9, 3, 6] pads to [8, 4, 12, 4,
8] (a document of length 1 among them); at SPAN_TOKENS 10 the
padded documents go in spans of at most 20 tokens."""


@pytest.mark.parallel
def test_context_parallel_attention_matches_plain_attention_per_document(tmp_path: Path) -> None:
    diffs = torchrun_worker(tmp_path, "cp2")
    assert set(diffs) == {f"{case}_{what}" for case in CP_CASES for what in ("out", "grad", "grad_scale")}
    for case in CP_CASES:
        assert diffs[f"{case}_grad_scale"] > 1e-2, diffs  # the gradients compared are not vanishing
        assert max(diffs[f"{case}_out"], diffs[f"{case}_grad"]) <= 1e-6, (case, diffs)


def cp2_worker(out: Path) -> None:
    """Every rank: the same q, k, v of a whole row; its shard through PackedDotProductAttention at CP2,
    the outputs gathered back; against `reference_attention` in float64, outputs and the gradients of a
    weighted sum (each rank's share of the gradients summed over the group)."""
    cfg = run_config(cp=2)
    init_distributed(cfg.parallel, read_launch_env())
    try:
        seed_all(cfg.seed)
        attention = core_attention(attention_config(context_parallel_size=2))
        group = parallel_state.get_context_parallel_group()
        rank = parallel_state.get_context_parallel_rank()
        diffs = {}
        for case, (lengths, span_tokens) in CP_CASES.items():
            packed_attention.SPAN_TOKENS = span_tokens
            gen = torch.Generator().manual_seed(3)
            t = sum(lengths)
            q, k, v = (torch.randn(t, h, 16, generator=gen, requires_grad=True) for h in (4, 2, 2))
            weights = torch.randn(t, 4 * 16, generator=gen)
            mine = [shard_row(x[None], lengths, 2, rank, pad=0)[0] for x in (q, k, v)]
            got = attention(*mine, None, packed_seq_params=packed_seq_params(lengths, cp_size=2))
            got = gather_tokens(got[None], lengths)[0]
            (got * weights).sum().backward()
            grads = [x.grad for x in (q, k, v)]
            for g in grads:
                dist.all_reduce(g, group=group)
            ref_inputs = [x.detach().double().requires_grad_() for x in (q, k, v)]
            expected = reference_attention(*ref_inputs, lengths, 1 / 4)
            (expected * weights.double()).sum().backward()
            diffs[f"{case}_out"] = (got.double() - expected).abs().max().item()
            diffs[f"{case}_grad"] = max(
                (g.double() - r.grad).abs().max().item() for g, r in zip(grads, ref_inputs, strict=True)
            )
            diffs[f"{case}_grad_scale"] = min(g.abs().max().item() for g in grads)
        if dist.get_rank() == 0:
            out.write_text(json.dumps(diffs))
    finally:
        shutdown()


if __name__ == "__main__":
    {"tp2": tp2_worker, "cp2": cp2_worker}[sys.argv[2]](Path(sys.argv[1]))


def test_documents_are_grouped_into_spans_in_order() -> None:
    starts = [0, 5, 6, 6, 15, 18, 24]  # lengths 5, 1, 0 (skipped), 9, 3, 6
    assert packed_attention._spans(starts, 10) == [(0, 6, [0, 5, 6]), (6, 15, [0, 9]), (15, 24, [0, 3, 9])]
    mask = packed_attention._span_mask([0, 2, 3], torch.device("cpu"))[0, 0]
    assert mask.tolist() == [[False, True, True], [False, False, True], [True, True, False]]
    assert packed_attention._spans([0, 12, 14, 20], 10) == [(0, 12, [0, 12]), (12, 20, [0, 2, 8])]  # 12 > 10
