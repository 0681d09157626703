"""One GRPO step, phase by phase, against a bare vLLM `generate` of the same prompts, in one process.

The reference is the engine's own generate call for the step's prompts (same seeds, n samples each);
ours is the stage's rollout collection (the same generation plus decoding, reward scoring and the
cross-rank gather). Then the trainer phases of the same step: old logprobs, the updates, and the
refit of the engine. Dynamic sampling is off so both sides do the same generation work. Prints median
milliseconds per phase, the collection/generate ratio, the share of each phase in the step and
rollout tokens/s. Usage (world size 1):

    python benchmarks/grpo_step.py [RECIPE] [--set grpo.prompts_per_step=8 ...] [--steps 10]

With `--length-mix sns` it times the trainer phases only (old logprobs and the updates) on rollouts
of SNS-like lengths (mostly short prompts and label answers, a long tail of long prompts and long
generations, scaled to the recipe's max_prompt_tokens / max_response_tokens; random token ids: the
trainer's cost does not depend on them), in the same process twice per step: packed rows of at most
`grpo.max_tokens_per_micro_batch` real tokens (the stage's path) and one sequence per row padded to
max_prompt_tokens + max_response_tokens (the padded reference). Its last line reads
`packed vs padded: <X>x faster, computed/real tokens <A> -> <B>`.

With `--placement separate [--max-off-policy-steps K]` it runs the whole stage (`redone grpo`, one
trainer process) twice on the same recipe, data and seed: colocated synchronous, then with the engines
in a rollout process of their own, K steps off-policy (dynamic sampling off in both, so both generate
the same prompts). It prints each one's mean step time and the trainer's idle share (colocated: the
generation it waits through; separate: `trainer_wait_seconds`), the weight sync and engine pause, and
ends with `separate (max_off_policy_steps K) vs colocated synchronous: <X>x faster per step, trainer
idle <A> -> <B>`. On the demo recipe (the demo base answering the SNS demo tasks: mostly labels of a
few tokens, a tail of translations and rewrites to the response budget) it is the long-tailed mix of
real generation:

    python benchmarks/grpo_step.py nemo_recipes/recipes/demo.yaml --placement separate \
        --max-off-policy-steps 1 --set model.init_from=nemo_recipes/assets/models/demo-base \
        --set model.tokenizer=nemo_recipes/assets/models/demo-base --steps 8 --warmup 2
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch
from length_mix import sns_lengths

from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.loader import load_config
from nemo_recipes.data.rl_batch import collate_rollouts
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.records.rollout import Completion, RolloutGroup
from nemo_recipes.rollout.generate import sample_seed
from nemo_recipes.stages.grpo import start_session
from nemo_recipes.stages.setup import build_policy
from nemo_recipes.training.policy_step import mini_batches, rollout_samples, train_on_batches


def timed(fn, *args):
    """(seconds, result) of fn(*args)."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def sns_groups(cfg: RunConfig, rng: random.Random) -> list[RolloutGroup]:
    """One step's groups of SNS-like lengths (random ids and rewards, every group informative)."""
    g = cfg.grpo.generation
    groups = []
    for position in range(cfg.grpo.prompts_per_step):
        prompt, _ = sns_lengths(rng, g.max_prompt_tokens, g.max_response_tokens)
        completions = []
        for _ in range(g.num_generations_per_prompt):
            _, response = sns_lengths(rng, g.max_prompt_tokens, g.max_response_tokens)
            completions.append(
                Completion([rng.randrange(3, 2000) for _ in range(response)], [-1.0] * response, "stop")
            )
        rewards = [float(i % 2) for i in range(len(completions))]
        prompt_ids = [rng.randrange(3, 2000) for _ in range(prompt)]
        groups.append(
            RolloutGroup(position, "t", prompt_ids, completions, rewards, [r == 1.0 for r in rewards])
        )
    return groups


def trainer_phases(cfg: RunConfig, steps: int, warmup: int) -> None:
    """Old logprobs + updates of the same rollouts, packed (the stage's path) vs padded rows."""
    grpo, pad = cfg.grpo, 0
    policy = build_policy(cfg, grpo.optimizer, grpo.checkpoint, grpo.train_steps, grpo.mini_batches_per_step)
    rng = random.Random(cfg.seed)
    seconds: dict[str, list[float]] = {"padded": [], "packed": []}
    tokens = {"padded": [0, 0], "packed": [0, 0]}
    for step in range(warmup + steps):
        samples = rollout_samples(sns_groups(cfg, rng), grpo)
        per_mini = len(samples) // grpo.mini_batches_per_step
        layouts = {
            "padded": [
                [
                    collate_rollouts([s], pad, row_length=grpo.seq_length)
                    for s in samples[m * per_mini : (m + 1) * per_mini]
                ]
                for m in range(grpo.mini_batches_per_step)
            ],
            "packed": mini_batches(samples, grpo, pad, 0, 1),
        }
        for name in sorted(layouts, key=lambda n: (n == "packed") == bool(step % 2)):  # alternate the order
            elapsed, _ = timed(
                train_on_batches, policy.model, policy.optimizer, policy.scheduler, layouts[name], grpo
            )
            if step >= warmup:
                seconds[name].append(elapsed)
                rows = [b for mini in layouts[name] for b in mini]
                tokens[name][0] += sum(b.tokens.shape[1] for b in rows)
                tokens[name][1] += sum(b.real_tokens for b in rows)
    med = {name: statistics.median(values) for name, values in seconds.items()}
    ratio = {name: computed / real for name, (computed, real) in tokens.items()}
    g = grpo.generation
    print(
        f"model={cfg.model.hf_config} prompts/step={grpo.prompts_per_step} n={g.num_generations_per_prompt} "
        f"max_prompt={g.max_prompt_tokens} max_response={g.max_response_tokens} "
        f"budget={grpo.token_budget} threads={torch.get_num_threads()}"
    )
    real_per_step = tokens["packed"][1] / steps
    for name in ("padded", "packed"):
        rate = real_per_step / med[name]
        print(f"{name:7s} trainer phases {med[name] * 1e3:9.1f} ms  ({rate:.0f} real tokens/s)")
    print(f"(median of {steps} steps after {warmup} warm-up steps)")
    print(
        f"packed vs padded: {med['padded'] / med['packed']:.2f}x faster, computed/real tokens "
        f"{ratio['padded']:.2f} -> {ratio['packed']:.2f}"
    )


def placement_comparison(recipe: str, overrides: list[str], k: int, steps: int, warmup: int) -> None:
    """The stage itself (`redone grpo`, one trainer process) twice on the same data and settings:
    colocated synchronous, then separate with `k` steps off-policy; per-step times from its metrics."""
    work = Path(tempfile.mkdtemp(prefix="grpo-placement-"))
    runs = {"colocated": [], "separate": ["grpo.placement=separate", f"grpo.max_off_policy_steps={k}"]}
    rows = {}
    for name, placement in runs.items():
        sets = [
            *overrides,
            *placement,
            f"run_dir={work / name}",
            f"grpo.train_steps={warmup + steps}",
            f"grpo.checkpoint.save_interval_steps={warmup + steps}",
            "logging.tensorboard=false",
            "logging.progress_bar=false",
        ]
        command = [
            sys.executable,
            "-m",
            "nemo_recipes.cli",
            "grpo",
            recipe,
            *[a for s in sets for a in ("--set", s)],
        ]
        with (work / f"{name}.log").open("w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
        metrics = work / name / "metrics.jsonl"
        rows[name] = [json.loads(line) for line in metrics.read_text().splitlines()][warmup:]
    lengths = sorted(r["response_tokens_mean"] for r in rows["colocated"])
    truncated = statistics.mean(r["truncated_fraction"] for r in rows["colocated"])
    print(f"recipe={recipe} steps={steps} after {warmup} warm-up, one trainer process")
    print(
        f"response tokens (step means): min {lengths[0]:.1f}, median {statistics.median(lengths):.1f}, "
        f"max {lengths[-1]:.1f}; {truncated:.0%} of responses reach the budget"
    )
    idle_key = {"colocated": "generate_seconds", "separate": "trainer_wait_seconds"}
    seconds, idle = {}, {}
    for name, measured in rows.items():
        seconds[name] = sum(r["step_seconds"] for r in measured) / len(measured)
        idle[name] = sum(r[idle_key[name]] for r in measured) / sum(r["step_seconds"] for r in measured)
        extra = ""
        if name == "separate":
            pause = statistics.median(r["engine_pause_seconds"] for r in measured)
            sync = statistics.median(r["refit_seconds"] for r in measured)
            extra = f", weight sync {sync * 1e3:.0f} ms, engine pause {pause * 1e3:.0f} ms (medians)"
        print(f"{name:9s} {seconds[name] * 1e3:8.1f} ms/step, trainer idle {idle[name]:.0%}{extra}")
    print(f"(logs and metrics under {work})")
    print(
        f"separate (max_off_policy_steps {k}) vs colocated synchronous: "
        f"{seconds['colocated'] / seconds['separate']:.2f}x faster per step, "
        f"trainer idle {idle['colocated']:.0%} -> {idle['separate']:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe", nargs="?", default="nemo_recipes/recipes/grpo_tiny.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--length-mix", choices=["sns"], help="trainer phases only: packed vs padded")
    parser.add_argument(
        "--placement",
        choices=["separate"],
        help="the whole stage, separate placement vs colocated synchronous (see the module's docstring)",
    )
    parser.add_argument("--max-off-policy-steps", type=int, default=1, help="with --placement separate")
    args = parser.parse_args()
    fixed = ["grpo.dynamic_sampling.enabled=false", "grpo.checkpoint.resume=never"]
    if args.placement:
        placement_comparison(
            args.recipe, [*fixed, *args.overrides], args.max_off_policy_steps, args.steps, args.warmup
        )
        return
    work = tempfile.mkdtemp(prefix="grpo-bench-")
    fixed.append(f"run_dir={work}")
    cfg = load_config(RunConfig, args.recipe, [*fixed, *args.overrides])
    launch = read_launch_env()
    if launch.world_size != 1:
        raise SystemExit("benchmarks/grpo_step.py runs in one process (world size 1)")
    check_launch(cfg, 1, "grpo")
    init_distributed(cfg.parallel, launch)
    try:
        seed_all(cfg.seed)
        if args.length_mix:
            trainer_phases(cfg, args.steps, args.warmup)
            return
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
            t_train, (_, t_logprobs, _) = timed(session.train, cfg, collected.groups)
            t_refit = session.refit(cfg)
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
