"""On-policy check, one process or a torchrun job: the engine's logprobs are the trainer's (fp32).

Run through tests.rollout.onpolicy_worker. One engine serves every layout in turn (hosted by the
first rank of the model-parallel group). For each layout: build a seeded
tiny-qwen3, refit, generate at two temperatures, score the responses with `compute_logprobs`; then
perturb the trainer's weights (tied embedding / lm_head included), generate with the now stale engine
(must disagree), refit, generate again (must agree). Rank 0 writes a JSON report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch
import torch.distributed as dist
from megatron.core import parallel_state

from nemo_recipes.config import RunConfig
from nemo_recipes.config.generation import GenerationConfig
from nemo_recipes.config.model import ModelConfig, ParallelConfig
from nemo_recipes.data.rl_batch import RolloutSample, micro_batches
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.rollout.placement import hosts_engine, share_from_engine
from nemo_recipes.rollout.refit import refit_engine
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.training.logprobs import compute_logprobs, token_entropy, token_logprobs

PROMPT_LENGTHS = (5, 9, 12)
MAX_RESPONSE_TOKENS = 24
SEQ_LENGTH = 40
MICRO_BATCH_SIZE = 4
PAD_ID = 0
TEMPERATURES = (1.0, 0.7)


def sampling(temperature: float) -> GenerationConfig:
    return GenerationConfig(
        num_generations_per_prompt=4, temperature=temperature, max_response_tokens=MAX_RESPONSE_TOKENS
    )


def prompts() -> list[list[int]]:
    gen = torch.Generator().manual_seed(7)
    return [torch.randint(3, 2048, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]


def set_layout(tp: int, pp: int) -> ParallelConfig:
    """(Re-)initialise model parallel state; old subgroups are destroyed (their gloo threads pile up)."""
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
        for group in list(dist.distributed_c10d._world.pg_map):
            if group is not dist.GroupMember.WORLD:
                dist.destroy_process_group(group)
    parallel = ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    init_distributed(parallel, read_launch_env())
    seed_all(0)
    return parallel


def start_engine(work_dir: Path) -> VLLMEngine:
    return VLLMEngine.start(RunConfig(), work_dir)  # tiny-qwen3, float32, the default engine settings


def rollout(engine: VLLMEngine | None, temperature: float, seed: int) -> list:
    seeds = [1000 * seed + i for i in range(len(PROMPT_LENGTHS))]
    completions = engine.generate(prompts(), sampling(temperature), seeds) if engine else None
    return share_from_engine(completions)


def max_logprob_diff(model: list, groups: list, temperature: float) -> float | None:
    """max |trainer - engine| over response tokens (last pipeline stage; None elsewhere)."""
    samples = [
        RolloutSample(p, c.token_ids, c.logprobs, advantage=0.0, task="t")
        for p, group in zip(prompts(), groups, strict=True)
        for c in group
    ]
    fixed = parallel_state.get_pipeline_model_parallel_world_size() > 1
    batches = micro_batches(samples, MICRO_BATCH_SIZE * SEQ_LENGTH, PAD_ID, 0, 1, fixed)
    trainer = compute_logprobs(model, batches, temperature)
    if trainer is None:
        return None
    diffs = [(t - b.rollout_logprobs) * b.response_mask for t, b in zip(trainer, batches, strict=True)]
    return max(float(d.abs().max()) for d in diffs)


def vocab_parallel_errors(temperature: float = 0.7) -> dict:
    """token_logprobs (value, gradient) and token_entropy on this rank's vocab shard vs full-vocab torch."""
    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(2, 5, 2048, generator=gen) * 3).requires_grad_()
    labels = torch.randint(0, 2048, (2, 5), generator=gen)
    ref = torch.log_softmax(logits / temperature, dim=-1)
    ref_logprobs = ref.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ref_logprobs.sum().backward()
    ref_entropy = -(ref.exp() * ref).sum(-1).detach()
    width = 2048 // parallel_state.get_tensor_model_parallel_world_size()
    start = parallel_state.get_tensor_model_parallel_rank() * width
    shard = slice(start, start + width)
    mine = logits.detach()[..., shard].clone().requires_grad_()
    got = token_logprobs(mine, labels, temperature)
    got.sum().backward()
    return {
        "logprob_err": float((got.detach() - ref_logprobs.detach()).abs().max()),
        "logprob_grad_err": float((mine.grad - logits.grad[..., shard]).abs().max()),
        "entropy_err": float((token_entropy(mine.detach(), temperature) - ref_entropy).abs().max()),
    }


@torch.no_grad()
def perturb(model: list) -> None:
    """Change every weight by a function of its own value, so tied copies on PP stages stay equal."""
    for chunk in model:
        for param in chunk.parameters():
            param.add_(0.05 * torch.sin(1000.0 * param))


def run_layout(tp: int, pp: int, engine: VLLMEngine | None) -> dict:
    parallel = set_layout(tp, pp)
    model, _, _ = build_model(ModelConfig(), parallel)
    result: dict = {"tp": tp, "pp": pp, **vocab_parallel_errors()}
    result["refit_seconds"] = refit_engine(model, "qwen3", engine)
    rollouts = {t: rollout(engine, t, seed=11) for t in TEMPERATURES}
    for temperature, groups in rollouts.items():
        result[f"diff_t{temperature}"] = max_logprob_diff(model, groups, temperature)
    result["response_tokens"] = sum(len(c.token_ids) for g in rollouts[1.0] for c in g)
    perturb(model)
    result["diff_stale_engine"] = max_logprob_diff(model, rollout(engine, 1.0, seed=11), 1.0)
    result["refit_seconds_2"] = refit_engine(model, "qwen3", engine)
    after = rollout(engine, 1.0, seed=11)
    result["diff_after_refit"] = max_logprob_diff(model, after, 1.0)
    result["changed_by_refit"] = rollouts[1.0] != after
    result["same_seed_same_completions"] = rollout(engine, 1.0, seed=11) == after
    result["other_seed_differs"] = rollout(engine, 1.0, seed=12) != after
    return result


def gather_report(result: dict) -> dict:
    """Merge every rank's view: diffs come from the last pipeline stage."""
    views = [None] * dist.get_world_size()
    dist.all_gather_object(views, result)
    merged = dict(result)
    for view in views:
        merged.update({k: v for k, v in view.items() if v is not None and k.startswith("diff")})
        for key in ("logprob_err", "logprob_grad_err", "entropy_err"):
            merged[key] = max(merged[key], view[key])
    return merged


def main(out: Path, work_dir: Path, layouts: list[tuple[int, int]]) -> None:
    start = time.perf_counter()
    set_layout(*layouts[0])
    engine = start_engine(work_dir) if hosts_engine() else None
    report: dict = {"engine_start_seconds": time.perf_counter() - start}
    report["layouts"] = [gather_report(run_layout(tp, pp, engine)) for tp, pp in layouts]
    if dist.get_rank() == 0:
        report["total_seconds"] = time.perf_counter() - start
        out.write_text(json.dumps(report, indent=1))
    if engine:
        engine.shutdown()
    shutdown()
