"""One GRPO step, phase by phase, against a bare vLLM `generate` of the same prompts, in one process.

The reference is the engine's own generate call for the step's prompts (same seeds, n samples each);
ours is the stage's rollout collection (the same generation plus decoding, reward scoring and the
cross-rank gather). Then the trainer phases of the same step: old logprobs, the updates, and the
refit of the engine. Dynamic sampling is off so both sides do the same generation work. Prints median
milliseconds per phase, the collection/generate ratio, the share of each phase in the step and
rollout tokens/s. Usage (world size 1):

    python benchmarks/grpo_step.py [RECIPE] [--set grpo.prompts_per_step=8 ...] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch

from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.loader import load_config
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.rollout.generate import sample_seed
from nemo_recipes.stages.grpo import start_session


def timed(fn, *args):
    """(seconds, result) of fn(*args)."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe", nargs="?", default="nemo_recipes/recipes/grpo_tiny.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="grpo-bench-")
    fixed = [f"run_dir={work}", "grpo.dynamic_sampling.enabled=false", "grpo.checkpoint.resume=never"]
    cfg = load_config(RunConfig, args.recipe, [*fixed, *args.overrides])
    launch = read_launch_env()
    if launch.world_size != 1:
        raise SystemExit("benchmarks/grpo_step.py runs in one process (world size 1)")
    check_launch(cfg, 1, "grpo")
    init_distributed(cfg.parallel, launch)
    try:
        seed_all(cfg.seed)
        session = start_session(cfg, (0, 1))
        names = ("generate (bare vLLM)", "collect (ours)", "old logprobs", "updates", "refit")
        phases: dict[str, list[float]] = {name: [] for name in names}
        tokens: list[int] = []
        position = 0
        for step in range(args.warmup + args.steps):
            count = cfg.grpo.prompts_per_step
            prompts = [session.prompts[i].token_ids for i in session.sampler.draw(position, count)]
            seeds = [sample_seed(cfg.seed, p) for p in range(position, position + count)]
            # Alternate which side goes first: the second one finds the prompts in vLLM's prefix cache.
            if step % 2:
                t_collect, collected = timed(session.collect, cfg, position)
                t_bare, _ = timed(session.engine.generate, prompts, cfg.grpo.generation, seeds)
            else:
                t_bare, _ = timed(session.engine.generate, prompts, cfg.grpo.generation, seeds)
                t_collect, collected = timed(session.collect, cfg, position)
            position = collected.next_position
            t_train, (_, t_logprobs) = timed(session.train, cfg, collected.groups)
            t_refit = session.refit()
            if step >= args.warmup:
                for name, value in zip(
                    names, (t_bare, t_collect, t_logprobs, t_train - t_logprobs, t_refit), strict=True
                ):
                    phases[name].append(value)
                tokens.append(sum(len(c.token_ids) for g in collected.groups for c in g.completions))
        med = {name: statistics.median(values) for name, values in phases.items()}
        step_s = sum(med[name] for name in names[1:])
        g = cfg.grpo
        print(
            f"model={cfg.model.hf_config} dtype={cfg.model.dtype} prompts/step={g.prompts_per_step} "
            f"n={g.generation.num_generations_per_prompt} max_response={g.generation.max_response_tokens} "
            f"threads={torch.get_num_threads()}"
        )
        for name, value in med.items():
            share = "" if name.startswith("generate") else f"  ({value / step_s:.0%} of the step)"
            print(f"{name:22s} {value * 1e3:8.1f} ms{share}")
        print(f"ratio collect/bare generate: {med['collect (ours)'] / med['generate (bare vLLM)']:.3f}")
        print(f"ratio refit/updates:         {med['refit'] / med['updates']:.3f}")
        print(f"rollout tokens/s (ours):     {statistics.median(tokens) / med['collect (ours)']:.0f}")
        print(f"(median of {args.steps} steps after {args.warmup} warm-up steps)")
        session.engine.shutdown()
    finally:
        shutdown()


if __name__ == "__main__":
    main()
