"""Where the MoE engine-vs-trainer logprob gap comes from (tiny-qwen3-moe, fp32, one process).

Run through tests.rollout.moe_gap_worker. An HF tiny-qwen3-moe (transformers' random init) is loaded
by the trainer and by a vLLM engine that reports its routing. The engine samples 3 prompts x 4
responses; the trainer scores them under its own routing and under the engine's (routing replay):
first as loaded, then after a refit of the same weights (the RL stage's path), then after each router
scale in `scales` (every router weight multiplied, then refit: small scales make near-ties), and last
with the trainer's routers alone nudged by 1e-3 of their spread (a stand-in for kernels that differ:
the engine and the trainer compute bitwise-equal router logits on this CPU, so nothing else makes
them disagree). Per
(token, MoE layer) it compares the trainer's top-k set with the engine's and, where they differ,
records the trainer's router-logit margin between its k-th and (k+1)-th expert (how close the choice
was to a tie). Writes a JSON report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch

from conversion.weights import load_hf_weights
from nemo_recipes.config.generation import EngineConfig, GenerationConfig
from nemo_recipes.config.model import ModelConfig, ParallelConfig
from nemo_recipes.data.rl_batch import RolloutSample, micro_batches
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.rollout.refit import refit_engine
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.training.logprobs import compute_logprobs
from nemo_recipes.training.moe_routing import RoutingStats, moe_routers
from tests.conversion.hf_models import make_hf_model

MODEL = "tiny-qwen3-moe"
PROMPT_LENGTHS = (5, 9, 12)
MAX_RESPONSE_TOKENS = 24
BUDGET = 4 * 40
PAD_ID = 0


def prompts() -> list[list[int]]:
    gen = torch.Generator().manual_seed(7)
    return [torch.randint(3, 2048, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]


def gaps(trainer: list[torch.Tensor], batches: list) -> dict[str, float]:
    pairs = zip(trainer, batches, strict=True)
    diffs = torch.cat([(t - b.rollout_logprobs).abs()[b.response_mask.bool()] for t, b in pairs])
    return {"mean_abs": float(diffs.mean()), "max_abs": float(diffs.max()), "tokens": diffs.numel()}


def router_margins(model: list, batches: list) -> list[dict]:
    """Per micro-batch and layer: the trainer's router logits (its own routing, forward only)."""
    captured: list[dict] = []
    hooks = []
    for chunk in model:
        for layer, router in moe_routers(chunk):

            def hook(module, inputs, outputs, layer=layer):
                logits = module.gating(inputs[0]).reshape(-1, module.config.num_moe_experts)
                captured.append({"layer": layer, "logits": logits.detach().clone()})

            hooks.append(router.register_forward_hook(hook))
    compute_logprobs(model, batches, 1.0)
    for h in hooks:
        h.remove()
    return captured


def diagnose(model: list, batches: list, topk: int) -> dict:
    """Disagreements between the trainer's and the engine's top-k, and how close to a tie they are."""
    captured = router_margins(model, batches)
    layers = len(captured) // len(batches)
    disagree, compared, margins, agree_margins = 0, 0, [], []
    for i, batch in enumerate(batches):
        for entry in captured[i * layers : (i + 1) * layers]:
            logits, layer = entry["logits"], entry["layer"]
            valid = batch.routed_tokens
            ranked = logits.sort(dim=-1, descending=True)
            margin = ranked.values[:, topk - 1] - ranked.values[:, topk]
            mine = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, ranked.indices[:, :topk], True)
            engine = torch.zeros_like(mine).scatter_(1, batch.routed_experts[:, layer], True)
            differs = (mine != engine).any(-1) & valid
            compared += int(valid.sum())
            disagree += int(differs.sum())
            margins += margin[differs].tolist()
            agree_margins += margin[valid & ~differs].tolist()
    agree_sorted = sorted(agree_margins)
    return {
        "token_layers_compared": compared,
        "token_layers_disagreeing": disagree,
        "disagreeing_margins_max": max(margins) if margins else None,
        "disagreeing_margins": sorted(margins)[:20],
        "agreeing_margin_p01": agree_sorted[len(agree_sorted) // 100] if agree_sorted else None,
        "agreeing_margin_median": agree_sorted[len(agree_sorted) // 2] if agree_sorted else None,
    }


@torch.no_grad()
def scale_routers(model: list, factor: float) -> None:
    for chunk in model:
        for _, router in moe_routers(chunk):
            router.weight.mul_(factor)


def score(engine: VLLMEngine, model: list, num_layers: int, num_experts: int, topk: int) -> dict:
    """Sample with the engine, score with the trainer: the gap with and without replay, agreement."""
    generation = GenerationConfig(num_generations_per_prompt=4, max_response_tokens=MAX_RESPONSE_TOKENS)
    groups = engine.generate(prompts(), generation, [11, 12, 13])
    samples = [
        RolloutSample(p, c.token_ids, c.logprobs, 0.0, "t", routed_experts=c.routed_experts)
        for p, group in zip(prompts(), groups, strict=True)
        for c in group
    ]
    batches = micro_batches(samples, BUDGET, PAD_ID, 0, 1)
    stats = RoutingStats(num_layers, num_experts)
    own = compute_logprobs(model, batches, 1.0, replay=False, stats=stats)
    replayed = compute_logprobs(model, batches, 1.0, replay=True)
    return {
        "without_replay": gaps(own, batches),
        "with_replay": gaps(replayed, batches),
        "routing_agreement": stats.metrics().get("routing_agreement"),
        **diagnose(model, batches, topk),
        "completions": [[c.token_ids for c in g] for g in groups],
    }


@torch.no_grad()
def nudge_routers(model: list, relative: float) -> list[torch.Tensor]:
    """Add seeded noise of `relative` x each router weight's std to the trainer's routers; returns the
    weights as they were."""
    gen = torch.Generator().manual_seed(5)
    saved = []
    for chunk in model:
        for _, router in moe_routers(chunk):
            saved.append(router.weight.detach().clone())
            noise = torch.randn(router.weight.shape, generator=gen) * router.weight.std() * relative
            router.weight.add_(noise)
    return saved


@torch.no_grad()
def restore_routers(model: list, saved: list[torch.Tensor]) -> None:
    routers = [router for chunk in model for _, router in moe_routers(chunk)]
    for router, weight in zip(routers, saved, strict=True):
        router.weight.copy_(weight)


def main(out: Path, work_dir: Path, scales: list[float]) -> None:
    start = time.perf_counter()
    hf_dir = make_hf_model(MODEL, work_dir / "hf", "float32")
    init_distributed(ParallelConfig(), read_launch_env())
    seed_all(0)
    model, cfg, _ = build_model(ModelConfig(hf_config=MODEL), ParallelConfig())
    load_hf_weights(model, hf_dir)
    engine = VLLMEngine(hf_dir, "float32", EngineConfig(), 512, load_weights=True, capture_routing=True)
    shape = (cfg.num_layers, cfg.num_moe_experts, cfg.moe_router_topk)
    report: dict = {"engine_start_seconds": time.perf_counter() - start}
    report["loaded"] = score(engine, model, *shape)
    report["refit_seconds"] = refit_engine(model, "qwen3_moe", engine)
    report["refit"] = score(engine, model, *shape)
    report["refit_changed_completions"] = report["refit"]["completions"] != report["loaded"]["completions"]
    report["scaled"] = []
    previous = 1.0
    for scale in scales:
        scale_routers(model, scale / previous)
        previous = scale
        refit_engine(model, "qwen3_moe", engine)
        report["scaled"].append({"router_scale": scale, **score(engine, model, *shape)})
    saved = nudge_routers(model, 1e-3)
    report["nudged"] = score(engine, model, *shape)
    restore_routers(model, saved)
    for run in [report["loaded"], report["refit"], *report["scaled"], report["nudged"]]:
        del run["completions"]
    report["total_seconds"] = time.perf_counter() - start
    out.write_text(json.dumps(report, indent=1))
    engine.shutdown()
    shutdown()
