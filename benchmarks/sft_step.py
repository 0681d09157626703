"""SFT step time against a bare megatron-core step on the same model and batch, in one process.

The reference is forward_backward_func + optimizer.step on pre-collated micro-batches; ours is the
whole SFT step of the stage loop (batch indices, collation, run_step with metric reduction, scheduler).
Prints both times, the ratio (goal <= 1.05) and tokens/s. Usage:

    python benchmarks/sft_step.py [--set model.hf_config=tiny-qwen3 ...] [--steps 20]

With `--length-mix sns` it compares instead one pass over the same conversations of SNS-like lengths
(benchmarks/length_mix.py, scaled to `sft.seq_length`; random token ids, the answer trained) packed
(`sft.packing: true`: several per row) and padded (one per row), in the same process, alternating. Its
last line reads `packed vs padded: <X>x faster, computed/real tokens <A> -> <B>`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch
from length_mix import sns_lengths
from transformers import AutoTokenizer

from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import load_config
from nemo_recipes.data.sft_dataset import TokenizedChat, pack_sequences, unpacked_rows
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.stages.sft import (
    METRICS,
    global_batch_indices,
    load_rows,
    micro_batches,
    record_table,
    sft_forward_step,
    step_shape,
    train_step,
)
from nemo_recipes.training.optimizer import build_optimizer
from nemo_recipes.training.step import run_step


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


def sns_conversations(count: int, seq_length: int, seed: int) -> list[TokenizedChat]:
    """Conversations of SNS-like lengths (prompt then trained answer) that fit `seq_length`."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        prompt, answer = sns_lengths(rng, seq_length * 3 // 4, seq_length // 4)
        ids = [rng.randrange(3, 2000) for _ in range(prompt + answer)]
        out.append(TokenizedChat(ids, [False] * prompt + [True] * answer))
    return out


def packed_vs_padded(cfg: RunConfig, count: int, steps: int, warmup: int) -> None:
    """One pass (one optimizer step) over the same conversations, packed rows vs one per row."""
    sft = cfg.sft
    examples = sns_conversations(count, sft.seq_length, cfg.seed)
    real = sum(len(e.input_ids) for e in examples)
    layouts = {
        "padded": unpacked_rows(examples, sft.seq_length),
        "packed": pack_sequences(examples, sft.seq_length),
    }
    init_distributed(cfg.parallel, read_launch_env())
    try:
        seed_all(cfg.seed)
        model, _, _ = build_model(cfg.model, cfg.parallel)
        optimizer, scheduler = build_optimizer(model, sft.optimizer, cfg.parallel, 10_000)
        batches = {
            name: micro_batches(rows, range(len(rows)), sft.micro_batch_size, 0, 1)
            for name, rows in layouts.items()
        }
        seconds: dict[str, list[float]] = {"padded": [], "packed": []}
        for step in range(warmup + steps):
            for name in sorted(batches, key=lambda n: (n == "packed") == bool(step % 2)):  # alternate
                start = time.perf_counter()
                run_step(
                    model, batches[name], sft_forward_step, *step_shape(sft), METRICS, optimizer, scheduler
                )
                if step >= warmup:
                    seconds[name].append(time.perf_counter() - start)
        med = {name: statistics.median(values) for name, values in seconds.items()}
        computed = {name: len(rows) * sft.seq_length for name, rows in layouts.items()}
        print(
            f"model={cfg.model.hf_config} seq={sft.seq_length} conversations={count} real tokens={real} "
            f"micro_batch={sft.micro_batch_size} threads={torch.get_num_threads()}"
        )
        for name in ("padded", "packed"):
            rows, rate = len(layouts[name]), real / med[name]
            print(f"{name:7s} {rows:5d} rows  {med[name] * 1e3:9.1f} ms  ({rate:.0f} real tokens/s)")
        print(f"(median of {steps} passes after {warmup} warm-up passes)")
        print(
            f"packed vs padded: {med['padded'] / med['packed']:.2f}x faster, computed/real tokens "
            f"{computed['padded'] / real:.2f} -> {computed['packed'] / real:.2f}"
        )
    finally:
        shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--length-mix", choices=["sns"], help="packed vs padded rows of the same conversations"
    )
    parser.add_argument("--conversations", type=int, default=256, help="with --length-mix: per pass")
    args = parser.parse_args()
    cfg = load_config(RunConfig, None, args.overrides)
    sft = cfg.sft
    if args.length_mix:
        packed_vs_padded(cfg, args.conversations, args.steps, args.warmup)
        return
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
            bare_step(model, optimizer, fixed, *step_shape(sft))
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
