"""The set-up the training stages share (SFT, GRPO), and how a stage's trained policy saves and ends.

A stage composes these steps and keeps its own loop: `launched` (stop-signal handlers, launch checks,
process groups, seeds), `build_policy` (model, optimizer, then resume or initial
weights), `run_log` (run-directory files and the metrics log), and `Policy.checkpoint_if_due` /
`stopped` / `finished` after each step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nemo_recipes.parallel.distributed import init_distributed, is_logging_rank, seed_all, shutdown

import torch
from megatron.core import parallel_state

from conversion.lora import check_resumable, load_lora_base
from conversion.weights import initialize_from
from nemo_recipes import preemption
from nemo_recipes.checkpoint.files import latest_checkpoint
from nemo_recipes.checkpoint.manager import TrainerState, current_layout, load_checkpoint, save_checkpoint
from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.training import CheckpointConfig, OptimizerConfig
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.metrics import MetricsLogger
from nemo_recipes.model.build import ArchSpec, build_model, resolve_transformer_impl
from nemo_recipes.run_dir import provenance, write_run_files
from nemo_recipes.training.optimizer import build_optimizer, position_schedule


@dataclass(frozen=True)
class StageOutcome:
    checkpoint: Path | None
    completed: bool
    """False when a stop signal ended the stage early (resume by running it again)."""
    steps: int


@contextlib.contextmanager
def launched(cfg: RunConfig, stage: Literal["sft", "grpo"]) -> Iterator[tuple[int, int]]:
    """This rank in the job, seeded: yields (data-parallel rank, size); tears the process groups down.

    The stop-signal handlers go in first (a signal during set-up must not kill the rank); the layout and
    the TE-only options are checked before any process group or model exists.
    """
    preemption.install_handlers()
    launch = read_launch_env()
    dp_size = check_launch(cfg, launch.world_size, stage)
    resolve_transformer_impl(cfg.model)
    init_distributed(cfg.parallel, launch)
    try:
        seed_all(cfg.seed)
        yield parallel_state.get_data_parallel_rank(), dp_size
    finally:
        shutdown()


def pad_token_id(tokenizer: Any) -> int:
    """What rows are padded with: the tokenizer's padding token, else its end-of-sequence token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@dataclass
class Policy:
    """The model this rank trains, its optimizer and learning-rate schedule, and where the stage stands."""

    model: list
    optimizer: Any
    scheduler: Any
    arch: ArchSpec
    state: TrainerState
    checkpoints: Path
    ckpt_cfg: CheckpointConfig
    resumed_from: Path | None
    """The checkpoint this run resumed (None: a fresh start)."""
    initialized_from: Path | None
    """The weights a fresh start loaded from `model.init_from` (None: resumed, or random weights)."""
    last_checkpoint: Path | None
    """The stage's newest checkpoint: the one resumed, then each one saved."""
    lora_record: dict[str, Any] | None = None
    """With model.lora: the adapters' settings and the frozen base (path, sha256) each checkpoint keeps."""

    def checkpoint_if_due(
        self, total_steps: int, extra_files: Callable[[], dict[str, bytes]] | None = None
    ) -> bool:
        """After a step (collective): save at the interval, at the last step or on a stop signal, with
        the files `extra_files` returns (called only when saving; global rank 0's are written).

        Returns whether a stop signal arrived (on any rank): the stage ends now.
        """
        stop = preemption.should_stop()
        step = self.state.step
        if stop or step % self.ckpt_cfg.save_interval_steps == 0 or step == total_steps:
            self.state.scheduler = self.scheduler.state_dict()
            self.last_checkpoint = save_checkpoint(
                self.checkpoints,
                self.model,
                self.optimizer,
                self.state,
                self.ckpt_cfg,
                self.lora_record,
                extra_files() if extra_files is not None else None,
            )
        return stop

    def stopped(self, stage: str) -> StageOutcome:
        """The outcome of a stage a stop signal ended (after its checkpoint), announced on the log."""
        if is_logging_rank():
            signal = preemption.received_signal()
            print(f"[{stage}] signal {signal}: saved {self.last_checkpoint}, exiting", flush=True)
        return StageOutcome(self.last_checkpoint, completed=False, steps=self.state.step)

    def finished(self) -> StageOutcome:
        """The outcome of a stage that ran all its steps (its last step always saves)."""
        return StageOutcome(self.last_checkpoint, completed=True, steps=self.state.step)


def build_policy(
    cfg: RunConfig,
    optimizer_cfg: OptimizerConfig,
    ckpt_cfg: CheckpointConfig,
    total_steps: int,
    updates_per_step: int = 1,
) -> Policy:
    """Model and optimizer on this rank (collective), resumed from the stage's latest checkpoint with
    `checkpoint.resume: auto`, else initialised from `model.init_from` when it is set. The schedule
    spans `total_steps` stage steps of `updates_per_step` optimizer updates each. With `model.lora`
    the base always comes from `model.init_from` and a checkpoint holds the adapters only."""
    model, _, arch = build_model(cfg.model, cfg.parallel, seed=cfg.seed)
    optimizer, scheduler = build_optimizer(model, optimizer_cfg, cfg.parallel, total_steps, updates_per_step)
    checkpoints = cfg.run_dir / "checkpoints"
    resumed_from = latest_checkpoint(checkpoints) if ckpt_cfg.resume == "auto" else None
    state = TrainerState(step=0, consumed_rows=0, scheduler={}, layout=current_layout())
    initialized_from, lora_record = None, None
    if cfg.model.lora is not None:
        lora_record = load_lora_base(cfg.model, model)
        initialized_from = Path(lora_record["base"]) if resumed_from is None else None
    if resumed_from is not None:
        if lora_record is not None:
            check_resumable(resumed_from, lora_record)
        state = load_checkpoint(resumed_from, model, optimizer, ckpt_cfg)
    elif cfg.model.init_from is not None and lora_record is None:
        initialized_from = initialize_from(cfg.model.init_from, model, cfg.model.hf_import_cache)
    position_schedule(scheduler, state.scheduler)
    return Policy(
        model,
        optimizer,
        scheduler,
        arch,
        state,
        checkpoints,
        ckpt_cfg,
        resumed_from,
        initialized_from,
        last_checkpoint=resumed_from,
        lora_record=lora_record,
    )


@contextlib.contextmanager
def run_log(cfg: RunConfig, stage: str, total_steps: int, start_step: int) -> Iterator[MetricsLogger | None]:
    """On the logging rank: writes the run directory's config and provenance, then yields the stage's
    metrics log (closed on exit). Yields None on the other ranks."""
    if not is_logging_rank():
        yield None
        return
    write_run_files(cfg.run_dir, cfg, provenance(cfg, torch.distributed.get_world_size(), current_layout()))
    logger = MetricsLogger(cfg.run_dir, cfg.logging, total_steps, start_step, name=stage)
    try:
        yield logger
    finally:
        logger.close()
