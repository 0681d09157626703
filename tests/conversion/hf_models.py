"""Tiny HF models for the conversion tests: built by transformers from the shipped configs, seeded."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from nemo_recipes.config import ASSETS

ARCHS = ("tiny-qwen3", "tiny-qwen3-untied", "tiny-qwen2", "tiny-llama")
DTYPES = ("float32", "bfloat16")


def make_hf_model(arch: str, out: Path, dtype: str, seed: int = 0) -> Path:
    """`arch` with seeded random weights, every tensor perturbed (norms too, so a swapped norm shows)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(ASSETS / "models" / arch)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.to(getattr(torch, dtype)).save_pretrained(out)
    for f in (ASSETS / "tokenizer" / "tiny").iterdir():
        shutil.copyfile(f, out / f.name)
    return out
