"""Qwen3-MoE in the builder: TransformerConfig fields from HF configs, the CPU layer spec, launch rules."""

from __future__ import annotations

import json

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import pytest
import torch
from megatron.core.transformer.moe.experts import SequentialMLP

from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.model.build import layer_spec, transformer_config

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU resolution")


def cfg(*sets: str) -> RunConfig:
    return load_config(RunConfig, None, ["model.hf_config=tiny-qwen3-moe", *sets])


def moe_config(c: RunConfig, **changes):
    return transformer_config({**c.model.hf_config_dict(), **changes}, c.model, c.parallel, "local")


def test_tiny_moe_routes_as_transformers_does() -> None:
    tc, arch = moe_config(cfg())
    assert (tc.num_moe_experts, tc.moe_ffn_hidden_size, tc.moe_router_topk) == (4, 64, 2)
    assert tc.moe_router_score_function == "softmax"
    assert tc.moe_router_pre_softmax is False  # norm_topk_prob: softmax over the top k
    assert tc.moe_router_load_balancing_type == "none"  # output_router_logits false: no aux loss
    assert tc.moe_shared_expert_intermediate_size is None
    assert arch.model_type == "qwen3_moe" and tc.qk_layernorm and not arch.tie_word_embeddings


def test_other_routing_and_aux_loss_follow_the_hf_config() -> None:
    tc, _ = moe_config(cfg(), norm_topk_prob=False, output_router_logits=True, router_aux_loss_coef=0.01)
    assert tc.moe_router_pre_softmax is True  # top-k of the softmax, not renormalised
    assert (tc.moe_router_load_balancing_type, tc.moe_aux_loss_coeff) == ("aux_loss", 0.01)


def test_transformers_5_expert_count_key_is_read() -> None:
    hf = cfg().model.hf_config_dict()
    hf["num_local_experts"] = hf.pop("num_experts")  # how transformers 5 saves the config
    tc, _ = transformer_config(hf, cfg().model, cfg().parallel, "local")
    assert tc.num_moe_experts == 4


def test_cpu_builds_sequential_experts_with_the_gloo_safe_dispatcher() -> None:
    c = cfg("parallel.expert_model_parallel_size=2")
    tc, _ = moe_config(c)
    assert tc.expert_model_parallel_size == 2 and not tc.moe_grouped_gemm
    assert tc.moe_token_dispatcher_type == "allgather"
    assert layer_spec(tc, "local").submodules.mlp.submodules.experts.module is SequentialMLP


def test_shipped_qwen3_30b_a3b_config() -> None:
    tc, arch = moe_config(cfg("model.hf_config=qwen3-30b-a3b"))
    assert (tc.num_moe_experts, tc.moe_router_topk, tc.moe_ffn_hidden_size) == (128, 8, 768)
    assert (tc.num_layers, tc.num_query_groups, arch.vocab_size) == (48, 4, 151936)


def test_expert_width_must_split_over_tensor_parallel() -> None:
    with pytest.raises(ConfigError, match=r"moe_intermediate_size 66 is not divisible by parallel\.tensor"):
        moe_config(cfg("parallel.tensor_model_parallel_size=4"), moe_intermediate_size=66)


def test_expert_parallel_launch_rules(tmp_path) -> None:
    assert check_launch(cfg("parallel.expert_model_parallel_size=2"), world_size=2) == 2
    dense = load_config(RunConfig, None, ["parallel.expert_model_parallel_size=2"])
    with pytest.raises(ConfigError, match=r"needs a mixture-of-experts model.*has num_experts None"):
        check_launch(dense, world_size=2)
    three = tmp_path / "config.json"
    three.write_text(json.dumps({**cfg().model.hf_config_dict(), "num_experts": 3}))
    odd = cfg(f"model.hf_config={three}", "parallel.expert_model_parallel_size=2")
    with pytest.raises(ConfigError, match=r"num_experts is divisible by it; .* has num_experts 3"):
        check_launch(odd, world_size=2)
