"""SFT step time against a bare megatron-core step on the same model and batch, in one process.

The reference is forward_backward_func + optimizer.step on pre-collated micro-batches; ours is the
whole SFT step of the stage loop (batch indices, collation, run_step with metric reduction, scheduler).
Prints both times, the ratio (goal <= 1.05) and tokens/s. Usage:

    python benchmarks/sft_step.py [--set model.hf_config=tiny-qwen3 ...] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch
from transformers import AutoTokenizer

from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import load_config
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.stages.sft import (
    global_batch_indices,
    load_rows,
    micro_batches,
    record_table,
    sft_forward_step,
    train_step,
)
from nemo_recipes.training.optimizer import build_optimizer


def bare_step(model, optimizer, batches, seq_length: int, mbs: int) -> None:
    from megatron.core.pipeline_parallel import get_forward_backward_func

    for chunk in model:
        chunk.zero_grad_buffer()
    optimizer.zero_grad()
    it = iter(batches)
    get_forward_backward_func()(
        forward_step_func=lambda data, m: sft_forward_step(next(data), m),
        data_iterator=it,
        model=model,
        num_microbatches=len(batches),
        seq_length=seq_length,
        micro_batch_size=mbs,
        forward_only=False,
    )
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config(RunConfig, None, args.overrides)
    sft = cfg.sft
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_asset(cfg.model.tokenizer, "tokenizer")))
    rows, _ = load_rows(sft.train_data, tokenizer, sft, record_table(cfg))
    init_distributed(cfg.parallel, read_launch_env())
    try:
        seed_all(cfg.seed)
        model, _, _ = build_model(cfg.model, cfg.parallel)
        optimizer, scheduler = build_optimizer(model, sft.optimizer, cfg.parallel, 10_000)
        fixed = micro_batches(
            rows,
            global_batch_indices(0, len(rows), sft.global_batch_size, cfg.seed),
            sft.micro_batch_size,
            0,
            1,
        )
        ours, bare = [], []
        for i in range(args.warmup + args.steps):
            # Interleave the two so drift in machine load hits both equally.
            t = time.perf_counter()
            bare_step(model, optimizer, fixed, sft.seq_length, sft.micro_batch_size)
            t_bare = time.perf_counter() - t
            t = time.perf_counter()
            train_step(model, optimizer, scheduler, rows, i, sft, cfg.seed, 0, 1)
            t_ours = time.perf_counter() - t
            if i >= args.warmup:
                ours.append(t_ours)
                bare.append(t_bare)
        tokens = sft.global_batch_size * sft.seq_length
        m_ours, m_bare = statistics.median(ours), statistics.median(bare)
        print(
            f"model={cfg.model.hf_config} dtype={cfg.model.dtype} seq={sft.seq_length} "
            f"global_batch={sft.global_batch_size} micro_batch={sft.micro_batch_size} "
            f"threads={torch.get_num_threads()}"
        )
        print(f"bare megatron-core step: {m_bare * 1e3:.1f} ms  ({tokens / m_bare:.0f} tokens/s)")
        print(f"redone SFT step:         {m_ours * 1e3:.1f} ms  ({tokens / m_ours:.0f} tokens/s)")
        print(f"ratio ours/bare: {m_ours / m_bare:.3f}  (median of {args.steps} steps each, interleaved)")
    finally:
        shutdown()


if __name__ == "__main__":
    main()
