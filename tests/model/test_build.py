"""The one GPU switch: Transformer-Engine-only options fail clearly where TE is absent."""

from __future__ import annotations

import pytest
import torch

from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.model.build import resolve_transformer_impl, transformer_config

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU resolution")


def cfg(*sets: str) -> RunConfig:
    return load_config(RunConfig, None, list(sets))


def test_auto_resolves_to_the_local_spec_on_cpu() -> None:
    # its attention does context parallelism, its norms sequence parallelism
    for c in (cfg(), cfg("parallel.context_parallel_size=2"), cfg("parallel.sequence_parallel=true")):
        assert resolve_transformer_impl(c.model) == "local"


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        (["model.transformer_impl=transformer_engine"], "Transformer Engine with CUDA is not available"),
        (["model.fp8=hybrid"], "model.fp8: needs Transformer Engine"),
    ],
)
def test_te_only_options_fail_clearly(sets: list[str], named: str) -> None:
    c = cfg(*sets)
    with pytest.raises(ConfigError, match=named):
        resolve_transformer_impl(c.model)


@pytest.mark.parametrize(
    ("preset", "qk_norm", "qkv_bias", "tied"),
    [
        ("tiny-qwen3", True, False, True),
        ("tiny-qwen3-untied", True, False, False),
        ("tiny-qwen2", False, True, False),
        ("tiny-llama", False, False, False),
    ],
)
def test_family_flags_from_hf_config(preset: str, qk_norm: bool, qkv_bias: bool, tied: bool) -> None:
    c = cfg(f"model.hf_config={preset}")
    tc, arch = transformer_config(c.model.hf_config_dict(), c.model, c.parallel, "local")
    assert (tc.qk_layernorm, tc.add_qkv_bias, arch.tie_word_embeddings) == (qk_norm, qkv_bias, tied)
    assert tc.kv_channels == 32 and tc.num_query_groups == 2 and tc.gated_linear_unit


def test_unsupported_rope_scaling_is_refused() -> None:
    c = cfg()
    hf = dict(c.model.hf_config_dict(), rope_parameters={"rope_type": "llama3", "rope_theta": 5e5})
    with pytest.raises(ConfigError, match="rope_type 'llama3' is not supported"):
        transformer_config(hf, c.model, c.parallel, "local")
