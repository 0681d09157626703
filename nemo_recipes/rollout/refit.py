"""Refit: stream the trainer's current weights into the replica's rollout engine."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from conversion.lora import iter_peft_tensors, write_peft_adapter
from conversion.weights import iter_hf_weights
from nemo_recipes.config.model import LoRAConfig
from nemo_recipes.rollout.engine import RolloutEngine


def refit_engine(model_chunks: list, model_type: str, engine: RolloutEngine | None) -> float:
    """Push the trainer's weights into the replica's engine; returns seconds (collective).

    Every rank of the model-parallel group calls this (the TP/PP gathers behind `iter_hf_weights` are
    collective); the engine rank (nemo_recipes.rollout.placement) passes its engine, the others None.
    Tensors are streamed: the engine takes them as they are gathered, and no rank holds a second full
    copy of the model.
    """
    start = time.perf_counter()
    weights = iter_hf_weights(model_chunks, model_type, with_tied_lm_head=True)
    if engine is not None:
        engine.refit(weights)
    unread = sum(1 for _ in weights)  # other ranks: run the gathers; engine rank: must be none left
    if engine is not None and unread:
        raise RuntimeError(f"the engine's refit left {unread} weight tensors unread")
    return time.perf_counter() - start


def refit_adapter(
    model_chunks: list, lora: LoRAConfig, engine: RolloutEngine | None, adapter_dir: Path, dtype: str
) -> float:
    """Push the trainer's LoRA adapters (not the frozen base) into the replica's engine; returns
    seconds (collective over the model-parallel group, like `refit_engine`).

    The adapters are gathered over TP and PP (a few MB), written by the engine rank as a PEFT directory
    (in `dtype`, the policy's) and loaded by the engine in place of the previous adapter.
    """
    start = time.perf_counter()
    tensors = iter_peft_tensors(model_chunks)
    if engine is not None:
        write_peft_adapter(adapter_dir, tensors, lora, base="policy-base", dtype=getattr(torch, dtype))
        engine.refit_adapter(adapter_dir)
    else:
        for _ in tensors:
            pass
    return time.perf_counter() - start
