"""The RL stage (stages 1 and 3 of the recipe): DAPO-style GRPO with colocated vLLM rollouts.

`run_grpo(cfg)` is the whole loop: set up, resume, then per step: collect rollout groups (generate,
score, dynamic sampling), train on them (old logprobs, mini-batch updates), refit the engine, log,
checkpoint. Every step it calls is a shared component.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_recipes.parallel.distributed import (
    init_distributed,
    is_logging_rank,
    read_launch_env,
    seed_all,
    shutdown,
)

import torch
from transformers import AutoTokenizer

from conversion.weights import initialize_from
from nemo_recipes import preemption
from nemo_recipes.checkpoint.files import latest_checkpoint
from nemo_recipes.checkpoint.manager import (
    TrainerState,
    current_layout,
    load_checkpoint,
    save_checkpoint,
)
from nemo_recipes.config import RunConfig, check_launch, resolve_asset
from nemo_recipes.data.rl_prompts import Prompt, load_prompts
from nemo_recipes.data.task_sampler import TaskSampler
from nemo_recipes.metrics import MetricsLogger
from nemo_recipes.model.build import build_model, resolve_transformer_impl
from nemo_recipes.records.rollout import RolloutGroup
from nemo_recipes.rollout.groups import StepGroups, collect_step_groups
from nemo_recipes.rollout.placement import hosts_engine
from nemo_recipes.rollout.refit import refit_engine
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.run_dir import provenance, write_run_files
from nemo_recipes.stages.sft import StageOutcome
from nemo_recipes.tasks import TaskTable, load_task_table
from nemo_recipes.training.optimizer import build_optimizer
from nemo_recipes.training.policy_step import train_on_groups
from nemo_recipes.training.reference import build_reference
from nemo_recipes.training.step import StepResult


def run_grpo(cfg: RunConfig) -> StageOutcome:
    """Run (or resume) the GRPO stage described by `cfg` on this process's rank."""
    preemption.install_handlers()  # first: a stop signal during set-up must not kill the rank
    launch = read_launch_env()
    dp_size = check_launch(cfg, launch.world_size, "grpo")
    resolve_transformer_impl(cfg.model, cfg.parallel)
    init_distributed(cfg.parallel, launch)
    try:
        return _train(cfg, dp_size)
    finally:
        shutdown()


@dataclass
class RLSession:
    """Everything one rank needs for GRPO steps: data, policy, optimizer, reference, engine."""

    tokenizer: Any
    table: TaskTable
    prompts: list[Prompt]
    sampler: TaskSampler
    model: list
    optimizer: Any
    scheduler: Any
    model_type: str
    reference: list | None
    engine: VLLMEngine | None
    pad_id: int
    replica: tuple[int, int]
    """(data-parallel rank, data-parallel size)."""

    def collect(self, cfg: RunConfig, position: int) -> StepGroups:
        """The step's rollout groups, drawn from sampler position `position` (collective)."""
        return collect_step_groups(
            self.engine,
            self.prompts,
            self.sampler,
            position,
            cfg.grpo,
            self.table,
            self.tokenizer,
            cfg.seed,
            self.replica,
        )

    def train(self, cfg: RunConfig, groups: Sequence[RolloutGroup]) -> tuple[list[StepResult], float]:
        """The step's updates (the engine sleeps meanwhile); returns them and the logprob seconds."""
        if self.engine is not None:
            self.engine.sleep()
        out = train_on_groups(
            self.model,
            self.optimizer,
            self.scheduler,
            groups,
            cfg.grpo,
            self.pad_id,
            *self.replica,
            self.reference,
        )
        if self.engine is not None:
            self.engine.wake_up()
        return out

    def refit(self) -> float:
        """Push the policy's weights into the engine (collective); returns seconds."""
        return refit_engine(self.model, self.model_type, self.engine)


def start_session(cfg: RunConfig, dp_size: int) -> tuple[RLSession, TrainerState, Path | None]:
    """Build the session on this rank, resume or initialise the policy, start and refit the engine.

    Returns the session, the trainer state and the checkpoint resumed from (None: a fresh start).
    """
    from megatron.core import parallel_state

    grpo = cfg.grpo
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_asset(cfg.model.tokenizer, "tokenizer")))
    table = load_task_table(grpo.task_table)
    prompt_set = load_prompts(grpo.train_data, table, tokenizer, grpo.max_prompt_tokens, grpo.on_bad_record)
    weights = {t: grpo.task_weights.get(t, table.spec(t).sampling_weight) for t in table.names}
    sampler = TaskSampler([p.record.task for p in prompt_set.prompts], weights, cfg.seed)
    if is_logging_rank() and prompt_set.skipped:
        print(f"[grpo] skipped {len(prompt_set.skipped)} bad records (on_bad_record: skip)", flush=True)

    model, _, arch = build_model(cfg.model, cfg.parallel)
    optimizer, scheduler = build_optimizer(model, grpo.optimizer, cfg.parallel, grpo.train_steps)
    ckpt_root = cfg.run_dir / "checkpoints"
    resume_from = latest_checkpoint(ckpt_root) if grpo.checkpoint.resume == "auto" else None
    state = TrainerState(step=0, consumed_rows=0, scheduler={}, layout=current_layout())
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer, grpo.checkpoint)
        scheduler.load_state_dict(state.scheduler)
    elif cfg.model.init_from is not None:
        initialize_from(cfg.model.init_from, model, cfg.model.hf_import_cache)
    reference = None
    if grpo.loss.kl_coef > 0:
        reference = build_reference(cfg.model, cfg.parallel, cfg.model.init_from)

    engine = VLLMEngine.start(cfg, cfg.run_dir / "engine") if hosts_engine() else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    session = RLSession(
        tokenizer=tokenizer,
        table=table,
        prompts=prompt_set.prompts,
        sampler=sampler,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        model_type=arch.model_type,
        reference=reference,
        engine=engine,
        pad_id=pad_id,
        replica=(parallel_state.get_data_parallel_rank(), dp_size),
    )
    session.refit()
    return session, state, resume_from


def _train(cfg: RunConfig, dp_size: int) -> StageOutcome:
    grpo, run_dir = cfg.grpo, cfg.run_dir
    seed_all(cfg.seed)
    session, state, resume_from = start_session(cfg, dp_size)
    logger = None
    if is_logging_rank():
        write_run_files(run_dir, cfg, provenance(cfg, torch.distributed.get_world_size(), current_layout()))
        logger = MetricsLogger(run_dir, cfg.logging, grpo.train_steps, state.step, name="grpo")
        print(
            f"[grpo] {len(session.prompts)} prompts over {len(session.sampler.tasks)} tasks, "
            f"{grpo.train_steps} steps, resume from {resume_from or 'scratch'}",
            flush=True,
        )

    try:
        return _loop(cfg, session, state, resume_from, logger)
    finally:
        if session.engine is not None:
            session.engine.shutdown()
        if logger:
            logger.close()


def _loop(
    cfg: RunConfig, session: RLSession, state: TrainerState, resume_from: Path | None, logger
) -> StageOutcome:
    grpo, ckpt_root = cfg.grpo, cfg.run_dir / "checkpoints"
    last_ckpt = resume_from
    while state.step < grpo.train_steps:
        start = time.perf_counter()
        collected = session.collect(cfg, state.consumed_rows)
        generate_seconds = time.perf_counter() - start
        results, logprob_seconds = session.train(cfg, collected.groups)
        refit_seconds = session.refit()
        state.step += 1
        state.consumed_rows = collected.next_position
        timings = {
            "generate_seconds": generate_seconds,
            "logprob_seconds": logprob_seconds,
            "train_seconds": sum(r.seconds for r in results),
            "refit_seconds": refit_seconds,
            "step_seconds": time.perf_counter() - start,
        }
        if logger and state.step % cfg.logging.log_interval_steps == 0:
            logger.log(state.step, step_metrics(collected, results, session.optimizer, timings))
        stop = preemption.should_stop()
        if stop or state.step % grpo.checkpoint.save_interval_steps == 0 or state.step == grpo.train_steps:
            state.scheduler = session.scheduler.state_dict()
            last_ckpt = save_checkpoint(ckpt_root, session.model, session.optimizer, state, grpo.checkpoint)
        if stop:
            if logger:
                print(f"[grpo] signal {preemption.received_signal()}: saved {last_ckpt}, exiting", flush=True)
            return StageOutcome(last_ckpt, completed=False, steps=state.step)
    return StageOutcome(last_ckpt or latest_checkpoint(ckpt_root), completed=True, steps=state.step)


def step_metrics(
    collected: StepGroups, results: Sequence[StepResult], optimizer, timings: dict[str, float]
) -> dict[str, float]:
    """What one step logs: rewards (overall and per task), lengths, sampling counts, loss terms, time."""
    groups = collected.groups
    responses = sum(len(g.completions) for g in groups)
    generated_tokens = sum(len(c.token_ids) for g in groups for c in g.completions)
    metrics = {
        **reward_metrics(groups),
        "groups_drawn": collected.drawn,
        "generation_rounds": collected.rounds,
        "groups_filtered_fraction": sum(collected.uninformative_by_task.values()) / collected.drawn,
        "groups_filled_uninformative": collected.filled_uninformative,
        "response_tokens_mean": generated_tokens / responses,
        "truncated_fraction": sum(c.finish_reason == "length" for g in groups for c in g.completions)
        / responses,
        "rollout_tokens_per_s": generated_tokens / max(timings["generate_seconds"], 1e-9),
        "lr": optimizer.param_groups[0]["lr"],
        "grad_norm": results[-1].grad_norm,
        "updates_skipped": sum(r.update_skipped for r in results),
        **timings,
    }
    for task, drawn in collected.drawn_by_task.items():
        metrics[f"task/{task}/groups_filtered_fraction"] = (
            collected.uninformative_by_task.get(task, 0) / drawn
        )
    for name in results[0].sums:
        num = sum(r.sums[name][0] for r in results)
        den = sum(r.sums[name][1] for r in results)
        if den > 0:
            metrics[name] = num / den
    return metrics


def reward_metrics(groups: Sequence[RolloutGroup]) -> dict[str, float]:
    """Mean task reward, pass rate and response length, overall and per task (`task/<name>/...`)."""
    by_task: dict[str, list[RolloutGroup]] = defaultdict(list)
    for g in groups:
        by_task[g.task].append(g)
    out = {}
    for prefix, members in [("", groups), *((f"task/{t}/", m) for t, m in sorted(by_task.items()))]:
        rewards = [r for g in members for r in g.rewards]
        passed = [e for g in members for e in g.equivalent]
        lengths = [len(c.token_ids) for g in members for c in g.completions]
        out[f"{prefix}reward_mean"] = sum(rewards) / len(rewards)
        out[f"{prefix}pass_rate"] = sum(passed) / len(passed)
        if prefix:
            out[f"{prefix}response_tokens_mean"] = sum(lengths) / len(lengths)
    return out
