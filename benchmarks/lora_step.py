"""LoRA against full fine-tuning of the same model, in one process: trainable parameters, optimizer
state, SFT step time and the rollout engine's refit time.

Two policies are built from the same weights: every weight trained (the reference), and the same
weights frozen with LoRA adapters (`model.lora`; rank 16 on all four roles unless the recipe or
`--set model.lora.*` says otherwise). Each takes the SFT stage's whole step on the same global batches,
the two interleaved step by step; the optimizer state (Adam's moments, and the fp32 master weights
under bf16) is counted after the first step. Then one real vLLM engine, started with LoRA support as
GRPO starts it, is refit alternately with every weight (what GRPO sends each step without LoRA, and
once with it) and with the adapters only (a PEFT directory loaded in place: each step with LoRA).
Prints a table and, last, `lora vs full: trainable <x>%, optimizer state <a> -> <b> bytes, step <r>x,
refit <q>x` (r, q: how many times faster LoRA is; below 1 it is slower). Usage (world size 1):

    python benchmarks/lora_step.py [RECIPE] [--set model.lora.rank=8 ...] [--steps 10] [--refits 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch

from nemo_recipes.checkpoint.manager import bare_chunks
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import load_config
from nemo_recipes.config.model import LoRAConfig
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.rollout.refit import refit_adapter, refit_engine
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.stages.sft import load_rows, record_table, train_step
from nemo_recipes.tokenizer.load import load_tokenizer
from nemo_recipes.training.optimizer import build_optimizer


def trainable_parameters(model: list) -> int:
    """Parameters the optimizer updates (those that require gradients)."""
    return sum(p.numel() for chunk in model for p in chunk.parameters() if p.requires_grad)


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of the optimizer's own tensors: Adam's per-parameter state, plus the fp32 master copies a
    mixed-precision optimizer keeps (after a step: torch Adam creates its state then)."""
    total = 0
    for leaf in getattr(optimizer, "chained_optimizers", [optimizer]):
        for state in leaf.optimizer.state.values():
            total += sum(t.numel() * t.element_size() for t in state.values() if torch.is_tensor(t))
        for name in ("fp32_from_float16_groups", "shard_fp32_from_float16_groups"):
            total += sum(p.numel() * p.element_size() for group in getattr(leaf, name, []) for p in group)
    return total


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe", nargs="?", help="a run recipe (default: the built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=10, help="timed SFT steps of each policy")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (and refits) first")
    parser.add_argument("--refits", type=int, default=10, help="timed refits of each kind")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lora-bench-"))
    cfg = load_config(RunConfig, args.recipe, [f"run_dir={work}", *args.overrides])
    lora = cfg.model.lora or LoRAConfig()
    configs = {
        "full": cfg.model.model_copy(update={"lora": None}),
        "lora": cfg.model.model_copy(update={"lora": lora}),
    }
    launch = read_launch_env()
    if launch.world_size != 1:
        raise SystemExit("benchmarks/lora_step.py runs in one process (world size 1)")
    sft = cfg.sft
    rows, _ = load_rows(sft.train_data, load_tokenizer(cfg.model), sft, record_table(cfg))
    init_distributed(cfg.parallel, launch)
    try:
        seed_all(cfg.seed)
        models, arch = {}, None
        for name, model_cfg in configs.items():
            models[name], _, arch = build_model(model_cfg, cfg.parallel, seed=cfg.seed)
        for full, adapted in zip(bare_chunks(models["full"]), bare_chunks(models["lora"]), strict=True):
            adapted.load_state_dict(full.state_dict())  # one base: LoRA's frozen weights are the full model's
        optimizers = {
            name: build_optimizer(m, sft.optimizer, cfg.parallel, 10_000) for name, m in models.items()
        }
        trainable = {name: trainable_parameters(m) for name, m in models.items()}

        steps: dict[str, list[float]] = {"full": [], "lora": []}
        state_bytes: dict[str, int] = {}
        for i in range(args.warmup + args.steps):
            for name in sorted(models, reverse=bool(i % 2)):  # alternate which goes first
                optimizer, scheduler = optimizers[name]
                seconds = timed(train_step, models[name], optimizer, scheduler, rows, i, sft, cfg.seed, 0, 1)
                if name not in state_bytes:  # after the first step
                    state_bytes[name] = optimizer_state_bytes(optimizer)
                if i >= args.warmup:
                    steps[name].append(seconds)

        engine = VLLMEngine.start(cfg.model_copy(update={"model": configs["lora"]}), work / "engine")
        refits: dict[str, list[float]] = {"full": [], "lora": []}
        kinds = {
            "full": lambda: refit_engine(models["full"], arch.model_type, engine),
            "lora": lambda: refit_adapter(models["lora"], lora, engine, work / "adapter", cfg.model.dtype),
        }
        try:
            for i in range(args.warmup + args.refits):
                for name in sorted(kinds, reverse=bool(i % 2)):
                    seconds = kinds[name]()
                    if i >= args.warmup:
                        refits[name].append(seconds)
        finally:
            engine.shutdown()

        step = {name: statistics.median(v) for name, v in steps.items()}
        refit = {name: statistics.median(v) for name, v in refits.items()}
        share = 100 * trainable["lora"] / trainable["full"]
        print(
            f"model={cfg.model.hf_config} dtype={cfg.model.dtype} lora: rank {lora.rank}, "
            f"alpha {lora.alpha:g} on {', '.join(lora.target_modules)}; seq={sft.seq_length} "
            f"global_batch={sft.global_batch_size} "
            f"micro_batch={sft.micro_batch_size} threads={torch.get_num_threads()}"
        )
        print(f"{'':26s}{'full':>14s}{'lora':>14s}")
        print(f"{'trainable parameters':26s}{trainable['full']:14,d}{trainable['lora']:14,d}")
        print(f"{'optimizer state bytes':26s}{state_bytes['full']:14,d}{state_bytes['lora']:14,d}")
        print(f"{'SFT step ms':26s}{step['full'] * 1e3:14.1f}{step['lora'] * 1e3:14.1f}")
        print(f"{'refit ms (vLLM)':26s}{refit['full'] * 1e3:14.1f}{refit['lora'] * 1e3:14.1f}")
        print(
            f"(medians of {args.steps} steps and {args.refits} refits each after {args.warmup} warm-up "
            "rounds, the two interleaved)"
        )
        print(
            f"lora vs full: trainable {share:.2f}%, optimizer state {state_bytes['full']} -> "
            f"{state_bytes['lora']} bytes, step {step['full'] / step['lora']:.2f}x, "
            f"refit {refit['full'] / refit['lora']:.2f}x"
        )
    finally:
        shutdown()


if __name__ == "__main__":
    main()
