"""Build megatron-core GPTModel chunks for the Qwen3 / Qwen3-MoE / Qwen2 / Llama families from an HF config.

The layer spec is the one switch for GPU kernels: Transformer Engine's spec when resolved to
`transformer_engine`, megatron-core's local (pure torch) spec otherwise. Parameters are initialised
on the CPU from the full weight (`use_cpu_initialization`), so a given seed gives the same weights at
every tensor-parallel size.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
from megatron.core.enums import ModelType
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import (
    get_gpt_layer_local_spec,
    get_gpt_layer_with_transformer_engine_spec,
)
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.module import Float16Module
from megatron.core.transformer.moe import moe_utils
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.transformer_block import TransformerBlockSubmodules, get_num_layers_to_build

from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.model import ModelConfig, ParallelConfig, hf_num_experts
from nemo_recipes.model.lora import apply_lora
from nemo_recipes.model.packed_attention import PackedDotProductAttention
from nemo_recipes.model.sequence_parallel_norm import SequenceParallelRMSNorm

if not moe_utils.HAVE_TE:
    # megatron-core 0.16.1 binds te_general_gemm only when Transformer Engine imports, yet its router
    # reads the name unconditionally (NameError without TE); None selects its own torch matmul.
    moe_utils.te_general_gemm = None

FAMILIES = {
    # model_type: (qk_layernorm, add_qkv_bias)
    "qwen3": (True, False),
    "qwen3_moe": (True, False),
    "qwen2": (False, True),
    "llama": (False, False),
}
MOE_FAMILIES = ("qwen3_moe",)
"""Families whose every decoder layer is a routed mixture of experts (no shared expert)."""


@dataclass(frozen=True)
class ArchSpec:
    """What megatron-core needs from an HF config."""

    model_type: str
    vocab_size: int
    max_position_embeddings: int
    rotary_base: float
    tie_word_embeddings: bool


def resolve_transformer_impl(model_cfg: ModelConfig) -> str:
    """'local' or 'transformer_engine'; fails loudly when a TE-only feature is asked for without TE."""
    have_te = importlib.util.find_spec("transformer_engine") is not None and torch.cuda.is_available()
    if model_cfg.transformer_impl == "auto":
        impl = "transformer_engine" if have_te else "local"
    else:
        impl = model_cfg.transformer_impl
    if impl == "transformer_engine" and not have_te:
        raise ConfigError(
            "model.transformer_impl = transformer_engine, but Transformer Engine with CUDA is not available "
            "here (install the GPU container, see containers/); use 'local' or 'auto' on CPU"
        )
    if impl == "local" and model_cfg.fp8 is not None:
        raise ConfigError(
            "model.fp8: needs Transformer Engine on a GPU; this run resolved to megatron-core's local layer "
            "spec (model.transformer_impl)"
        )
    return impl


def _rope_theta(hf: dict, source: str) -> float:
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise ConfigError(f"{source}: rope_type {kind!r} is not supported (only 'default')")
    theta = rope.get("rope_theta", hf.get("rope_theta"))
    if theta is None:
        raise ConfigError(f"{source}: no rope_theta (in rope_parameters or at the top level)")
    return float(theta)


def moe_token_dispatcher() -> str:
    """'alltoall' on GPU (megatron-core's choice for expert parallelism), 'allgather' on CPU.

    On CPU alltoall fails at expert-parallel size > 1: megatron-core converts the split sizes to host
    lists only for CUDA tensors, so gloo's all_to_all_single receives tensors and rejects them.
    """
    return "alltoall" if torch.cuda.is_available() else "allgather"


def _moe_fields(hf: dict, impl: str, parallel_cfg: ParallelConfig, source: str) -> dict:
    """TransformerConfig MoE fields for a Qwen3-MoE config; {} for dense families.

    Routing as in transformers: softmax over all experts, top-k, then (norm_topk_prob) renormalised
    over the k. megatron's top-k-then-softmax (`moe_router_pre_softmax=False`) is that renormalised
    form; softmax-then-top-k without renormalising is `moe_router_pre_softmax=True`. The load-balancing
    loss is on only where transformers adds it to the loss: `output_router_logits` true (coefficient
    `router_aux_loss_coef`). Every router gets megatron-core's `RouterReplay` (inactive until the RL
    stage replays the engine's routing through it: nemo_recipes.training.moe_routing).
    """
    if hf.get("model_type") not in MOE_FAMILIES:
        return {}
    sparse_step, dense_layers = hf.get("decoder_sparse_step", 1), hf.get("mlp_only_layers") or []
    if sparse_step != 1 or dense_layers:
        raise ConfigError(
            f"{source}: decoder_sparse_step {sparse_step} / mlp_only_layers {dense_layers}: dense "
            "layers inside an MoE model are not supported (needs decoder_sparse_step 1, mlp_only_layers [])"
        )
    if hf.get("shared_expert_intermediate_size"):
        raise ConfigError(
            f"{source}: shared_expert_intermediate_size {hf['shared_expert_intermediate_size']}: shared "
            "experts are not supported"
        )
    tp = parallel_cfg.tensor_model_parallel_size
    if hf["moe_intermediate_size"] % tp:  # expert tensor parallelism is megatron-core's default, = TP
        raise ConfigError(
            f"{source}: moe_intermediate_size {hf['moe_intermediate_size']} is not divisible by "
            f"parallel.tensor_model_parallel_size {tp}"
        )
    aux_loss_coeff = float(hf.get("router_aux_loss_coef", 0.0)) if hf.get("output_router_logits") else 0.0
    return dict(
        num_moe_experts=hf_num_experts(hf),
        moe_ffn_hidden_size=hf["moe_intermediate_size"],
        moe_router_topk=hf["num_experts_per_tok"],
        moe_router_score_function="softmax",
        moe_router_pre_softmax=not hf.get("norm_topk_prob", False),
        moe_router_load_balancing_type="aux_loss" if aux_loss_coeff > 0 else "none",
        moe_aux_loss_coeff=aux_loss_coeff,
        moe_token_dispatcher_type=moe_token_dispatcher(),
        moe_grouped_gemm=impl == "transformer_engine",
        moe_enable_routing_replay=True,
        expert_model_parallel_size=parallel_cfg.expert_model_parallel_size,
    )


def transformer_config(
    hf: dict, model_cfg: ModelConfig, parallel_cfg: ParallelConfig, impl: str, source: str = "model config"
) -> tuple[TransformerConfig, ArchSpec]:
    """Translate an HF config dict (read from `source`, named in errors) into megatron-core's config."""
    model_type = hf.get("model_type")
    if model_type not in FAMILIES:
        supported = sorted(FAMILIES)
        raise ConfigError(f"{source}: model_type {model_type!r} not supported (supported: {supported})")
    if hf.get("hidden_act", "silu") != "silu":
        raise ConfigError(f"{source}: hidden_act {hf['hidden_act']!r} not supported (silu only)")
    qk_norm, qkv_bias = FAMILIES[model_type]
    heads = hf["num_attention_heads"]
    bf16 = model_cfg.dtype == "bfloat16"
    cfg = TransformerConfig(
        num_layers=hf["num_hidden_layers"],
        hidden_size=hf["hidden_size"],
        ffn_hidden_size=hf["intermediate_size"],
        num_attention_heads=heads,
        num_query_groups=hf.get("num_key_value_heads", heads),
        kv_channels=hf.get("head_dim") or hf["hidden_size"] // heads,
        layernorm_epsilon=hf.get("rms_norm_eps", 1e-6),
        normalization="RMSNorm",
        qk_layernorm=qk_norm,
        add_qkv_bias=qkv_bias,
        add_bias_linear=False,
        gated_linear_unit=True,
        activation_func=F.silu,
        bias_activation_fusion=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        init_method_std=model_cfg.init_method_std,
        use_cpu_initialization=True,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        bf16=bf16,
        # bf16 would otherwise import a CUDA softmax kernel; TE fuses on its own.
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
        calculate_per_token_loss=True,
        tensor_model_parallel_size=parallel_cfg.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel_cfg.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=parallel_cfg.virtual_pipeline_model_parallel_size,
        context_parallel_size=parallel_cfg.context_parallel_size,
        sequence_parallel=parallel_cfg.sequence_parallel,
        pipeline_dtype=torch.bfloat16 if bf16 else torch.float32,
        # Interleaved PP=2 with batched p2p is silently wrong in megatron-core (Megatron-LM#750).
        batch_p2p_comm=parallel_cfg.virtual_pipeline_model_parallel_size is None,
        overlap_p2p_comm=parallel_cfg.virtual_pipeline_model_parallel_size is not None,
        recompute_granularity=model_cfg.recompute,
        recompute_method="uniform" if model_cfg.recompute == "full" else None,
        recompute_num_layers=1 if model_cfg.recompute == "full" else None,
        fp8=model_cfg.fp8,
        transformer_impl=impl,
        **_moe_fields(hf, impl, parallel_cfg, source),
    )
    arch = ArchSpec(
        model_type=model_type,
        vocab_size=hf["vocab_size"],
        max_position_embeddings=hf.get("max_position_embeddings", 4096),
        rotary_base=_rope_theta(hf, source),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
    )
    return cfg, arch


def layer_spec(cfg: TransformerConfig, impl: str) -> ModuleSpec:
    """Transformer Engine's layer (grouped-GEMM experts) or megatron-core's local one (SequentialMLP).

    The local layer's core attention is ours, `PackedDotProductAttention`: megatron's DotProductAttention
    unchanged on [b, s] batches, and thd-packed sequences (`PackedSeqParams`) as TE's attention takes them.
    Its norms are ours too, `SequenceParallelRMSNorm`: torch's RMSNorm as megatron's `WrappedTorchNorm`
    builds it, which also runs under sequence parallelism.
    """
    moe = {"num_experts": cfg.num_moe_experts, "moe_grouped_gemm": cfg.moe_grouped_gemm}
    if impl == "transformer_engine":
        return get_gpt_layer_with_transformer_engine_spec(qk_layernorm=cfg.qk_layernorm, **moe)
    spec = get_gpt_layer_local_spec(qk_layernorm=cfg.qk_layernorm, normalization="RMSNorm", **moe)
    layer, attention = spec.submodules, spec.submodules.self_attention.submodules  # a fresh spec
    attention.core_attention = PackedDotProductAttention
    layer.input_layernorm = layer.pre_mlp_layernorm = SequenceParallelRMSNorm
    if cfg.qk_layernorm:
        attention.q_layernorm = attention.k_layernorm = SequenceParallelRMSNorm
    return spec


def block_spec(
    cfg: TransformerConfig, impl: str, vp_stage: int | None
) -> ModuleSpec | TransformerBlockSubmodules:
    """The decoder of one model chunk: `layer_spec`'s layers; on the local spec, with our final norm
    (megatron's default there is `WrappedTorchNorm`, which refuses sequence parallelism)."""
    spec = layer_spec(cfg, impl)
    if impl == "transformer_engine":
        return spec
    layers = get_num_layers_to_build(cfg, vp_stage=vp_stage)
    return TransformerBlockSubmodules(layer_specs=[spec] * layers, layer_norm=SequenceParallelRMSNorm)


def build_gpt_chunks(cfg: TransformerConfig, arch: ArchSpec, impl: str) -> list[GPTModel]:
    """One GPTModel per virtual pipeline stage held by this rank (bare, not wrapped)."""
    num_chunks = cfg.virtual_pipeline_model_parallel_size or 1
    chunks = []
    for vp in range(num_chunks):
        vp_stage = vp if num_chunks > 1 else None
        chunk = GPTModel(
            config=cfg,
            transformer_layer_spec=block_spec(cfg, impl, vp_stage),
            vocab_size=arch.vocab_size,
            max_sequence_length=arch.max_position_embeddings,
            pre_process=parallel_state.is_pipeline_first_stage(ignore_virtual=False, vp_stage=vp_stage),
            post_process=parallel_state.is_pipeline_last_stage(ignore_virtual=False, vp_stage=vp_stage),
            share_embeddings_and_output_weights=arch.tie_word_embeddings,
            position_embedding_type="rope",
            rotary_base=int(arch.rotary_base),
            vp_stage=vp_stage,
        )
        chunk.model_type = ModelType.encoder_or_decoder
        chunks.append(chunk)
    return chunks


def wrap_for_training(
    chunks: list[torch.nn.Module], cfg: TransformerConfig, parallel_cfg: ParallelConfig
) -> list:
    """bf16 wrapper when asked, then megatron-core DDP (grad buckets, distributed optimizer)."""
    ddp_cfg = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=parallel_cfg.overlap_grad_reduce,
        overlap_param_gather=parallel_cfg.overlap_param_gather,
        use_distributed_optimizer=parallel_cfg.use_distributed_optimizer,
        check_for_nan_in_grad=True,
    )
    wrapped = []
    for i, chunk in enumerate(chunks):
        module = Float16Module(cfg, chunk) if cfg.bf16 else chunk
        ddp = DistributedDataParallel(
            config=cfg, ddp_config=ddp_cfg, module=module, disable_bucketing=(i > 0)
        )
        ddp.broadcast_params()
        wrapped.append(ddp)
    return wrapped


def build_model(
    model_cfg: ModelConfig, parallel_cfg: ParallelConfig, seed: int = 0
) -> tuple[list, TransformerConfig, ArchSpec]:
    """Model chunks ready for training on this rank (parallel state must be initialised).

    With `model.lora` the chunks are frozen and carry adapters (`nemo_recipes.model.lora`), whose
    initial A is drawn from `seed`; only the adapters get gradient buffers and optimizer state.
    """
    impl = resolve_transformer_impl(model_cfg)
    source = str(model_cfg.hf_config_file())
    cfg, arch = transformer_config(model_cfg.hf_config_dict(), model_cfg, parallel_cfg, impl, source)
    chunks = build_gpt_chunks(cfg, arch, impl)
    if model_cfg.lora is not None:
        chunks = apply_lora(chunks, model_cfg.lora, seed)
    return wrap_for_training(chunks, cfg, parallel_cfg), cfg, arch
