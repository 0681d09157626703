"""The RL stage (stages 1 and 3 of the recipe): DAPO-style GRPO with vLLM rollouts.

`run_grpo(cfg)` is the whole stage: the shared set-up (`stages/setup.py`: launch, policy, run log),
the session (prompts, policy, reference, rollouts), then per step: take the step's rollout groups
(generated, scored, dynamically sampled), train on them (old logprobs, mini-batch updates), hand the
new weights to the engines, log, checkpoint. Every step it calls is a shared component.

Where rollouts come from is `grpo.placement`: colocated, each replica's engine generates the step
now, between trainings (`collect`, `refit`); separate, a rollout process of its own generates ahead
of the trainer within `grpo.max_off_policy_steps` (nemo_recipes.rollout.remote), and a checkpoint
keeps the rollouts generated for the steps it has not trained.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nemo_recipes.parallel.distributed import is_logging_rank

from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.data.rl_prompts import Prompt, rl_prompt_stream
from nemo_recipes.data.task_sampler import TaskSampler
from nemo_recipes.metrics import MetricsLogger
from nemo_recipes.records.rollout import RolloutGroup
from nemo_recipes.rollout.groups import StepGroups, collect_step_groups, replica_round
from nemo_recipes.rollout.placement import hosts_engine
from nemo_recipes.rollout.refit import refit_adapter, refit_engine
from nemo_recipes.rollout.remote import PENDING_FILE, RemoteRollouts, check_versions, read_pending
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.stages.setup import (
    Policy,
    StageOutcome,
    build_policy,
    launched,
    pad_token_id,
    run_log,
)
from nemo_recipes.tasks import TaskTable, load_task_table
from nemo_recipes.tokenizer.load import load_tokenizer
from nemo_recipes.training.policy_step import train_on_groups
from nemo_recipes.training.reference import build_reference
from nemo_recipes.training.step import StepResult


def run_grpo(cfg: RunConfig) -> StageOutcome:
    """Run (or resume) the GRPO stage described by `cfg` on this process's rank."""
    grpo = cfg.grpo
    with launched(cfg, "grpo") as replica:
        session = start_session(cfg, replica)
        policy = session.policy
        with run_log(cfg, "grpo", grpo.train_steps, policy.state.step) as logger:
            if logger:
                print(
                    f"[grpo] {len(session.prompts)} prompts over {len(session.sampler.tasks)} tasks, "
                    f"{grpo.train_steps} steps, resume from {policy.resumed_from or 'scratch'}",
                    flush=True,
                )
            try:
                return _train(cfg, session, logger)
            finally:
                session.close()


@dataclass
class RLSession:
    """Everything one rank needs for GRPO steps: data, policy, reference, and where rollouts come from
    (`engine`, colocated; `remote`, separate placement)."""

    tokenizer: Any
    table: TaskTable
    prompts: list[Prompt]
    sampler: TaskSampler
    policy: Policy
    reference: list | None
    engine: VLLMEngine | None
    pad_id: int
    replica: tuple[int, int]
    """(data-parallel rank, data-parallel size)."""
    remote: RemoteRollouts | None = None
    full_refit_seconds: float = 0.0
    """The engine's first refit, of every weight (with model.lora: the base, once; then adapters only)."""

    def collect(self, cfg: RunConfig, position: int) -> StepGroups:
        """Colocated: the step's rollout groups, generated now from sampler position `position` by the
        replicas' engines under the current weights (collective)."""
        generate_round = replica_round(
            self.engine, cfg.grpo, self.table, self.tokenizer, cfg.seed, self.replica
        )
        return collect_step_groups(
            generate_round, self.prompts, self.sampler, position, cfg.grpo, self.policy.state.step
        )

    def rollouts(self, cfg: RunConfig) -> tuple[StepGroups, dict[str, float]]:
        """The next step's rollout groups and the seconds they cost the trainer (collective): generated
        now (colocated), or taken from the rollout process (separate: `trainer_wait_seconds` is how
        long the trainer idled for them, the engine's own timings come along)."""
        state = self.policy.state
        if self.remote is None:
            start = time.perf_counter()
            collected = self.collect(cfg, state.consumed_rows)
            return collected, {"generate_seconds": time.perf_counter() - start}
        item, waited = self.remote.take(state.step)
        behind = check_versions(item.groups, state.step, cfg.grpo.max_off_policy_steps)
        return item.groups, {
            "trainer_wait_seconds": waited,
            "generate_seconds": item.timings["engine_generate_seconds"],
            "engine_wait_seconds": item.timings["engine_wait_seconds"],
            "engine_pause_seconds": item.timings["engine_pause_seconds"],
            "off_policy_steps_mean": sum(behind) / len(behind),
            "off_policy_steps_max": max(behind),
        }

    def train(
        self, cfg: RunConfig, groups: Sequence[RolloutGroup]
    ) -> tuple[list[StepResult], float, dict[str, float]]:
        """The step's updates (a colocated engine sleeps meanwhile); returns them, the logprob seconds
        and the mixture-of-experts routing metrics (empty for a dense model)."""
        if self.engine is not None:
            self.engine.sleep()
        out = train_on_groups(
            self.policy.model,
            self.policy.optimizer,
            self.policy.scheduler,
            groups,
            cfg.grpo,
            self.pad_id,
            *self.replica,
            self.reference,
            replay=cfg.routing_replay,
        )
        if self.engine is not None:
            self.engine.wake_up()
        return out

    def refit(self, cfg: RunConfig) -> float:
        """Hand the policy's weights to the engines (collective); returns seconds. Colocated: into the
        replica's engine (with model.lora only the adapters travel: the engine keeps the frozen base from
        its first refit); separate: published to the rollout process as the version of this step."""
        if self.remote is not None:
            return self.remote.publish(self.policy.model, self.policy.arch.model_type, self.policy.state.step)
        if cfg.model.lora is None:
            return refit_engine(self.policy.model, self.policy.arch.model_type, self.engine)
        adapter_dir = cfg.run_dir / "engine" / f"adapter-rank{self.replica[0]}"
        return refit_adapter(self.policy.model, cfg.model.lora, self.engine, adapter_dir, cfg.model.dtype)

    def checkpoint_files(self) -> dict[str, bytes]:
        """What a checkpoint keeps besides the policy: the rollouts generated for steps it has not
        trained (separate placement; waits for them)."""
        if self.remote is None:
            return {}
        return {PENDING_FILE: self.remote.pending(self.policy.state.step)}

    def close(self) -> None:
        """Stop the engines."""
        if self.engine is not None:
            self.engine.shutdown()
        if self.remote is not None:
            self.remote.close()


def start_session(cfg: RunConfig, replica: tuple[int, int]) -> RLSession:
    """Build the session on this rank: prompts and sampler, the policy (resumed or initialised), the
    reference when the loss has a KL term, and the rollouts' source: the colocated engine, refit with
    the policy's weights, or the rollout process, sent them as the current version."""
    grpo = cfg.grpo
    tokenizer = load_tokenizer(cfg.model)
    table = load_task_table(*cfg.task_tables)
    prompt_set, sampler = rl_prompt_stream(grpo, table, tokenizer, cfg.seed)
    if is_logging_rank() and prompt_set.skipped:
        print(f"[grpo] skipped {len(prompt_set.skipped)} bad records (on_bad_record: skip)", flush=True)

    policy = build_policy(cfg, grpo.optimizer, grpo.checkpoint, grpo.train_steps, grpo.mini_batches_per_step)
    pending = read_pending(policy.resumed_from)
    if pending and grpo.placement != "separate":
        raise ConfigError(
            f"{policy.resumed_from} holds rollouts generated ahead by a grpo.placement: separate run; "
            "resume it with placement: separate"
        )
    reference = None
    if grpo.loss.kl_coef > 0:
        reference = build_reference(cfg.model, cfg.parallel, cfg.model.init_from)
    separate = grpo.placement == "separate"
    engine = VLLMEngine.start(cfg, cfg.run_dir / "engine") if hosts_engine() and not separate else None
    session = RLSession(
        tokenizer=tokenizer,
        table=table,
        prompts=prompt_set.prompts,
        sampler=sampler,
        policy=policy,
        reference=reference,
        engine=engine,
        pad_id=pad_token_id(tokenizer),
        replica=replica,
    )
    if separate:
        session.remote = RemoteRollouts(cfg, policy.state.step, policy.state.consumed_rows, pending)
        session.full_refit_seconds = session.refit(cfg)
        return session
    session.full_refit_seconds = refit_engine(policy.model, policy.arch.model_type, engine)
    if cfg.model.lora is not None:
        session.refit(cfg)  # and the adapter on the base
    return session


def _train(cfg: RunConfig, session: RLSession, logger: MetricsLogger | None) -> StageOutcome:
    """The steps left: rollouts, train, refit, log, checkpoint; a stop signal ends it early."""
    grpo, policy = cfg.grpo, session.policy
    state = policy.state
    while state.step < grpo.train_steps:
        start = time.perf_counter()
        collected, rollout_timings = session.rollouts(cfg)
        results, logprob_seconds, routing = session.train(cfg, collected.groups)
        state.step += 1
        state.consumed_rows = collected.next_position
        refit_seconds = session.refit(cfg)
        timings = {
            **rollout_timings,
            "logprob_seconds": logprob_seconds,
            "train_seconds": sum(r.seconds for r in results),
            "refit_seconds": refit_seconds,
            "full_refit_seconds": session.full_refit_seconds,
            "step_seconds": time.perf_counter() - start,
        }
        if logger and state.step % cfg.logging.log_interval_steps == 0:
            logger.log(state.step, {**step_metrics(collected, results, policy.optimizer, timings), **routing})
        if policy.checkpoint_if_due(grpo.train_steps, session.checkpoint_files):
            return policy.stopped("grpo")
    return policy.finished()


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
        "lr": results[-1].lr if results else None,
        "grad_norm": results[-1].grad_norm if results else None,
        "updates_skipped": sum(r.update_skipped for r in results),
        **timings,
    }
    for task, drawn in collected.drawn_by_task.items():
        metrics[f"task/{task}/groups_filtered_fraction"] = (
            collected.uninformative_by_task.get(task, 0) / drawn
        )
    for name in results[0].sums if results else ():
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
