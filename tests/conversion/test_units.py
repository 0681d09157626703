"""Pure pieces of the conversion package: name translation, tables, logits comparison, shard writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conversion.hf_config import (
    MOE_MODEL_TYPES,
    SUPPORTED_MODEL_TYPES,
    ConversionError,
    check_layout,
    check_supported,
)
from conversion.hf_io import INDEX_FILE, expected_hf_shapes, read_hf_tensors, write_safetensors_shards
from conversion.mapping import BRIDGES, grouped_expert_name, te_name
from conversion.verify import compare_logits
from nemo_recipes.config.assets import ASSETS
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.model import ModelConfig, ParallelConfig
from nemo_recipes.model.build import FAMILIES, MOE_FAMILIES, transformer_config

TINY_MOE = ASSETS / "models" / "tiny-qwen3-moe" / "config.json"


def test_every_supported_family_has_a_mapping_and_a_builder() -> None:
    assert set(SUPPORTED_MODEL_TYPES) == set(BRIDGES) == set(FAMILIES)
    assert set(MOE_MODEL_TYPES) == set(MOE_FAMILIES)


def test_local_spec_norm_names_are_translated_to_te_names() -> None:
    layer = "decoder.layers.3."
    assert te_name(layer + "input_layernorm.weight") == layer + "self_attention.linear_qkv.layer_norm_weight"
    assert te_name(layer + "pre_mlp_layernorm.weight") == layer + "mlp.linear_fc1.layer_norm_weight"
    assert te_name(layer + "mlp.linear_fc1.weight") == layer + "mlp.linear_fc1.weight"


def test_moe_local_names_are_translated_to_te_names() -> None:
    layer = "decoder.layers.3."
    # an MoE layer keeps its pre-MLP norm unfused under TE too: only the input norm moves
    assert te_name(layer + "input_layernorm.weight", moe=True) == te_name(layer + "input_layernorm.weight")
    assert te_name(layer + "pre_mlp_layernorm.weight", moe=True) == layer + "pre_mlp_layernorm.weight"
    local = layer + "mlp.experts.local_experts.1.linear_fc2.weight"
    assert grouped_expert_name(local) == layer + "mlp.experts.linear_fc2.weight1"
    assert grouped_expert_name(local, expert_offset=2) == layer + "mlp.experts.linear_fc2.weight3"
    te = layer + "mlp.experts.linear_fc1.weight1"  # TE grouped names pass unchanged
    assert grouped_expert_name(te, expert_offset=2) == te
    assert grouped_expert_name(layer + "mlp.router.weight", expert_offset=2) == layer + "mlp.router.weight"


def test_expected_moe_names_are_the_saved_per_expert_ones() -> None:
    shapes = expected_hf_shapes(TINY_MOE.parent)
    experts = {n for n in shapes if ".mlp.experts." in n}
    assert len(experts) == 4 * 4 * 3  # layers x experts x (gate, up, down)
    assert shapes["model.layers.3.mlp.experts.3.gate_proj.weight"] == (64, 128)
    assert shapes["model.layers.3.mlp.experts.3.down_proj.weight"] == (128, 64)
    assert shapes["model.layers.0.mlp.gate.weight"] == (4, 128)


def test_compare_logits_by_hand() -> None:
    ref = [torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]])]
    got = [torch.tensor([[0.0, 1.5, 2.0], [3.0, 0.0, 3.5]])]  # row 2: top-1 flips to index 2
    report = compare_logits(ref, got)
    assert report.max_abs_diff == 3.5
    assert report.mean_abs_diff == pytest.approx(4.0 / 6)
    assert report.top1_agreement == 0.5
    assert not report.passed(max_abs_diff=4.0, min_top1_agreement=0.9)
    assert report.passed(max_abs_diff=4.0, min_top1_agreement=0.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "mixtral"}, "model_type 'mixtral'"),
        ({"use_sliding_window": True}, "use_sliding_window=true is not supported"),
        ({"model_type": "llama", "attention_bias": True}, "attention_bias=true"),
    ],
)
def test_unsupported_configs_are_named(change: dict, message: str) -> None:
    hf = {"model_type": "qwen3", **change}
    with pytest.raises(ConversionError, match=message):
        check_supported(hf, Path("x/config.json"))


MOE_REFUSED = [
    ({"mlp_only_layers": [1]}, "dense layers inside an MoE model are not supported"),
    ({"decoder_sparse_step": 2}, "dense layers inside an MoE model are not supported"),
    ({"shared_expert_intermediate_size": 256}, "shared experts are not supported"),
]


@pytest.mark.parametrize(("change", "message"), MOE_REFUSED)
def test_unsupported_moe_options_are_refused_by_conversion_and_builder(change: dict, message: str) -> None:
    hf = {**json.loads(TINY_MOE.read_text()), **change}
    with pytest.raises(ConversionError, match=f"x/config.json: .*{message}"):
        check_supported(hf, Path("x/config.json"))
    with pytest.raises(ConfigError, match=f"x/config.json: .*{message}"):
        transformer_config(hf, ModelConfig(), ParallelConfig(), "local", "x/config.json")
    check_supported(json.loads(TINY_MOE.read_text()), TINY_MOE)  # the shipped config passes


def test_layout_must_divide_the_model() -> None:
    hf = {"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2048, "num_hidden_layers": 4}
    check_layout(hf, tp=2, pp=4, source=Path("c.json"))
    with pytest.raises(ConversionError, match="num_key_value_heads 2 is not divisible by --tp 4"):
        check_layout(hf, tp=4, pp=1, source=Path("c.json"))
    with pytest.raises(ConversionError, match="num_hidden_layers 4 is not divisible by --pp 3"):
        check_layout(hf, tp=1, pp=3, source=Path("c.json"))
    moe = {**hf, "model_type": "qwen3_moe", "moe_intermediate_size": 6}
    check_layout(moe, tp=2, pp=1, source=Path("c.json"))
    with pytest.raises(ConversionError, match="moe_intermediate_size 6 is not divisible by --tp 4"):
        check_layout({**moe, "num_key_value_heads": 4}, tp=4, pp=1, source=Path("c.json"))


def test_shards_respect_the_size_limit_and_index_every_tensor(tmp_path: Path) -> None:
    tensors = [(f"t{i}", torch.full((256,), float(i))) for i in range(5)]  # 1 KiB each
    weight_map = write_safetensors_shards(iter(tensors), tmp_path, max_shard_bytes=2048)
    files = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert files == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert index["weight_map"] == weight_map and index["metadata"]["total_size"] == 5 * 1024
    back = dict(read_hf_tensors(tmp_path))
    assert all(torch.equal(back[n], t) for n, t in tensors)
