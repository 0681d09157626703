"""The one place that knows HF <-> megatron-core parameter names and layouts.

Each supported HF `model_type` maps to an `mbridge` bridge class (its declarative name tables, QKV
interleave, gate/up fusion, TP split/merge and PP broadcast). Models are always built by our own
builder (`nemo_recipes.model.build`); `bridge_for` adapts mbridge to them:
  * the TransformerConfig is the model's own (so the layer spec, RoPE from `rope_parameters`,
    `sequence_parallel` and `masked_softmax_fusion` are whatever our builder chose, never mbridge's);
  * megatron-core's local spec names its norms `input_layernorm` / `pre_mlp_layernorm`; mbridge's
    tables use the Transformer Engine fused names, so local names are translated (TE names pass).
    An MoE layer keeps its pre-MLP norm unfused under TE too, so there only `input_layernorm` moves;
  * the local spec holds experts in a SequentialMLP (`mlp.experts.local_experts.<i>.linear_fc1.weight`,
    <i> counted on this expert-parallel rank); mbridge knows TE's grouped names
    (`mlp.experts.linear_fc1.weight<i>`), so local expert names are renamed (global <i> on import,
    local on export, where mbridge gathers the expert-parallel ranks itself);
  * mbridge rewrites its class-level `_DIRECT_MAPPING` in place for tied models, which would leak
    `output_layer -> embed_tokens` into every later untied model of the same class in the process:
    the adapter keeps an instance-level copy instead.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core, which mbridge imports)

import torch
from mbridge.core.bridge import Bridge
from mbridge.core.parallel_states import ParallelStates
from mbridge.models.llama import LLaMABridge
from mbridge.models.qwen2 import Qwen2Bridge
from mbridge.models.qwen3 import Qwen3Bridge
from mbridge.models.qwen3moe import Qwen3MoEBridge

# HF model_type -> mbridge class holding its name tables. Adding a dense family: one line here and
# one in nemo_recipes/model/build.py FAMILIES.
BRIDGES: dict[str, type[Bridge]] = {
    "qwen3": Qwen3Bridge,
    "qwen3_moe": Qwen3MoEBridge,
    "qwen2": Qwen2Bridge,
    "llama": LLaMABridge,
}

# megatron-core local-spec name -> the Transformer Engine name mbridge's tables know.
LOCAL_TO_TE_NAMES = {
    ".input_layernorm.weight": ".self_attention.linear_qkv.layer_norm_weight",
    ".pre_mlp_layernorm.weight": ".mlp.linear_fc1.layer_norm_weight",
}
MOE_LOCAL_TO_TE_NAMES = {".input_layernorm.weight": ".self_attention.linear_qkv.layer_norm_weight"}
LOCAL_EXPERT = re.compile(r"\.mlp\.experts\.local_experts\.(\d+)\.(linear_fc[12])\.weight$")

DIRECT_NAMES = {
    "embedding.word_embeddings.weight": "model.embed_tokens.weight",
    "decoder.final_layernorm.weight": "model.norm.weight",
    "output_layer.weight": "lm_head.weight",
}

EMBED_NAME = "model.embed_tokens.weight"
LM_HEAD_NAME = "lm_head.weight"


def te_name(mcore_name: str, moe: bool = False) -> str:
    """The Transformer Engine spelling of a megatron-core norm name (in an MoE model if `moe`)."""
    for local, te in (MOE_LOCAL_TO_TE_NAMES if moe else LOCAL_TO_TE_NAMES).items():
        if mcore_name.endswith(local):
            return mcore_name[: -len(local)] + te
    return mcore_name


def grouped_expert_name(mcore_name: str, expert_offset: int = 0) -> str:
    """A SequentialMLP expert weight under its TE grouped-GEMM name; the index shifted by `expert_offset`."""
    match = LOCAL_EXPERT.search(mcore_name)
    if match is None:
        return mcore_name
    index, linear = int(match.group(1)) + expert_offset, match.group(2)
    return f"{mcore_name[: match.start()]}.mlp.experts.{linear}.weight{index}"


def bare_model(chunk: torch.nn.Module) -> torch.nn.Module:
    """The GPTModel inside DDP / Float16Module wrappers."""
    while hasattr(chunk, "module"):
        chunk = chunk.module
    return chunk


def _adapted(base: type[Bridge]) -> type[Bridge]:
    class Adapted(base):
        def __init__(self, hf_view: SimpleNamespace, transformer_cfg, tied: bool):
            self._transformer_cfg = transformer_cfg
            self._tied = tied
            super().__init__(
                hf_view,
                dtype=transformer_cfg.params_dtype,
                parallel_states=ParallelStates.get_parallel_state(),
            )

        def _build_config(self):
            return self._transformer_cfg

        def _adjust_mapping_for_shared_weights(self):
            output = EMBED_NAME if self._tied else LM_HEAD_NAME
            self._DIRECT_MAPPING = {**DIRECT_NAMES, "output_layer.weight": output}

        def _get_hf_shared_weight_keys(self) -> list[str]:
            return [EMBED_NAME] if self._tied else []

        def _weight_name_mapping_mcore_to_hf(self, mcore_weights_name: str) -> list[str]:
            moe = self._transformer_cfg.num_moe_experts is not None
            return super()._weight_name_mapping_mcore_to_hf(te_name(mcore_weights_name, moe))

        def _weight_name_mapping_mcore_local_to_global(self, model, consider_ep: bool = True) -> dict:
            names = super()._weight_name_mapping_mcore_local_to_global(model, consider_ep)
            experts = self._transformer_cfg.num_moe_experts or 0
            offset = self.mpu.ep_rank * experts // self.mpu.ep_size if consider_ep else 0
            return {local: grouped_expert_name(name, offset) for local, name in names.items()}

    Adapted.__name__ = Adapted.__qualname__ = f"Adapted{base.__name__}"
    return Adapted


ADAPTED = {model_type: _adapted(cls) for model_type, cls in BRIDGES.items()}


def bridge_for(model_chunks: list, model_type: str) -> Bridge:
    """An mbridge bridge bound to these (built, possibly wrapped) chunks and the current parallel state.

    The HF-side sizes mbridge needs come from the model's own TransformerConfig, so the mapping can
    never disagree with the model it maps.
    """
    if model_type not in ADAPTED:
        raise ValueError(f"model_type {model_type!r}: no mapping (supported: {sorted(ADAPTED)})")
    model = bare_model(model_chunks[0])
    cfg = model.config
    hf_view = SimpleNamespace(
        hidden_size=cfg.hidden_size,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_query_groups,
        head_dim=cfg.kv_channels,
        tie_word_embeddings=model.share_embeddings_and_output_weights,
    )
    return ADAPTED[model_type](hf_view, cfg, model.share_embeddings_and_output_weights)
