"""The frozen reference policy of the RL stage's KL term: the starting weights, forward only."""

from __future__ import annotations

from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

from megatron.core.transformer.module import Float16Module

from conversion.weights import initialize_from
from nemo_recipes.config.model import ModelConfig, ParallelConfig
from nemo_recipes.model.build import build_gpt_chunks, resolve_transformer_impl, transformer_config


def build_reference(model_cfg: ModelConfig, parallel_cfg: ParallelConfig, init_from: Path) -> list:
    """The model of `model_cfg` loaded from `init_from`, with no gradients, grad buffers or optimizer.

    Sharded like the policy, so its logprobs come through the same pipeline schedule.
    """
    impl = resolve_transformer_impl(model_cfg)
    cfg, arch = transformer_config(model_cfg.hf_config_dict(), model_cfg, parallel_cfg, impl)
    chunks = [Float16Module(cfg, c) if cfg.bf16 else c for c in build_gpt_chunks(cfg, arch, impl)]
    initialize_from(init_from, chunks, model_cfg.hf_import_cache)
    for chunk in chunks:
        chunk.requires_grad_(False)
        chunk.eval()
    return chunks
