"""A seeded random-init model saved as a checkpoint: one starting point for every parallel layout.

megatron-core draws initial weights per pipeline stage, so the same seed gives different weights at
different PP sizes. Building once in one process and loading the checkpoint (`model.init_from`)
makes runs at any layout start from identical weights. The checkpoint carries the model's HF config
and tokenizer (`hf_source/`), so `redone eval` and `redone convert mcore-to-hf` need no flags for it.
"""

from __future__ import annotations

from pathlib import Path

from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

from nemo_recipes.checkpoint.manager import save_model_weights
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.model import ParallelConfig
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model


def init_model_checkpoint(cfg: RunConfig, out: Path) -> Path:
    launch = read_launch_env()
    if launch.world_size != 1:
        raise ConfigError(f"init-model runs in one process (world size {launch.world_size}): drop --nproc")
    single = ParallelConfig()
    init_distributed(single, launch)
    try:
        seed_all(cfg.seed)
        model, _, _ = build_model(cfg.model, single)
        tokenizer = resolve_asset(cfg.model.tokenizer, "tokenizer")
        save_model_weights(out, model, hf_source=(cfg.model.hf_config_file().parent, tokenizer))
    finally:
        shutdown()
    return out
