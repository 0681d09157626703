"""The run's tokenizer: `model.tokenizer`, a shipped name or an HF tokenizer directory. Torch-free."""

from __future__ import annotations

from typing import Any

from transformers import AutoTokenizer

from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.model import ModelConfig


def load_tokenizer(model_cfg: ModelConfig) -> Any:
    """The model's tokenizer: a shipped one by name, or an HF tokenizer directory."""
    return AutoTokenizer.from_pretrained(str(resolve_asset(model_cfg.tokenizer, "tokenizer")))
