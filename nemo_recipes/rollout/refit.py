"""Refit: stream the trainer's current weights into the replica's rollout engine."""

from __future__ import annotations

import time

from conversion.weights import iter_hf_weights
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
