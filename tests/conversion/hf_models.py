"""Tiny HF models for the conversion tests: built by transformers from the shipped configs, seeded."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from nemo_recipes.config.assets import ASSETS

ARCHS = ("tiny-qwen3", "tiny-qwen3-untied", "tiny-qwen2", "tiny-llama", "tiny-qwen3-moe")
"""Run at every TP/PP/VP layout, in both dtypes."""
DTYPES = ("float32", "bfloat16")
MOE_ARCHS = ("tiny-qwen3-moe", "tiny-qwen3-moe-softmax-topk")
"""Mixture-of-experts architectures run at the expert-parallel layouts (float32)."""
VARIANTS = {"tiny-qwen3-moe-softmax-topk": ("tiny-qwen3-moe", {"norm_topk_prob": False})}
"""Test-only architectures: a shipped config with fields changed. Here transformers' other Qwen3-MoE
routing (the top-k softmax probabilities, not renormalised over the k)."""
ALL_ARCHS = ARCHS + tuple(a for a in MOE_ARCHS if a not in ARCHS)


def make_hf_model(arch: str, out: Path, dtype: str, seed: int = 0) -> Path:
    """`arch` with seeded random weights, every tensor perturbed (norms too, so a swapped norm shows)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    base, changes = VARIANTS.get(arch, (arch, {}))
    config = AutoConfig.from_pretrained(ASSETS / "models" / base, **changes)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.to(getattr(torch, dtype)).save_pretrained(out)
    for f in (ASSETS / "tokenizer" / "tiny").iterdir():
        shutil.copyfile(f, out / f.name)
    return out
