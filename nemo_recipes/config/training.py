"""What every training stage shares (optimizer, checkpoints, logging) and the SFT stage. Torch-free."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from nemo_recipes.config.loader import StrictModel


class OptimizerConfig(StrictModel):
    """AdamW through megatron-core's optimizer, and the learning-rate schedule."""

    lr: PositiveFloat = 5e-6
    """Peak learning rate (after the warm-up)."""
    min_lr: float = Field(0.0, ge=0.0)
    """Learning rate the cosine or linear decay ends at."""
    weight_decay: float = Field(0.1, ge=0.0)
    """AdamW decoupled weight decay (not applied to biases and norms)."""
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0)
    """AdamW first-moment decay."""
    adam_beta2: float = Field(0.95, ge=0.0, lt=1.0)
    """AdamW second-moment decay."""
    adam_eps: PositiveFloat = 1e-8
    """AdamW denominator epsilon."""
    clip_grad: float = Field(1.0, ge=0.0)
    """Global grad-norm clip; 0 disables."""
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"
    """Learning-rate schedule after the warm-up."""
    warmup_steps: int | None = Field(None, ge=0)
    """Linear warm-up length in the stage's steps (null: warmup_fraction of them); its first update
    already runs at peak lr / warm-up updates, never at 0."""
    warmup_fraction: float = Field(0.1, ge=0.0, le=1.0)
    """Used when warmup_steps is None: a fraction of the stage's steps."""

    def warmup_for(self, total_steps: int) -> int:
        return self.warmup_steps if self.warmup_steps is not None else int(self.warmup_fraction * total_steps)


class CheckpointConfig(StrictModel):
    save_interval_steps: PositiveInt = 100
    """Save every this many steps (and at the last step, and on a stop signal)."""
    keep_last: PositiveInt = 2
    """Checkpoints kept in run_dir/checkpoints (older ones are deleted after a save)."""
    resume: Literal["auto", "never"] = "auto"
    """auto: continue from the run directory's latest checkpoint if there is one."""
    optimizer_format: Literal["dp_reshardable", "fully_reshardable"] = "dp_reshardable"
    """Distributed-optimizer state layout on disk (see docs/checkpoints.md)."""


class LoggingConfig(StrictModel):
    log_interval_steps: PositiveInt = 1
    """Log metrics every this many steps."""
    tensorboard: bool = True
    """Write TensorBoard events to run_dir/tensorboard."""
    wandb_project: str | None = None
    """Log to Weights & Biases under this project (requires `wandb` installed)."""
    progress_bar: bool = True
    """Show a progress bar on the console (off in logs and pipelines)."""


class SFTConfig(StrictModel):
    """The SFT stage: data, batching, schedule."""

    train_data: list[str] = Field(default_factory=lambda: ["toy_chat/train.jsonl"])
    """JSONL record files (chat or task records: record_format); shipped names resolve under assets/data."""
    record_format: Literal["chat", "task"] = "chat"
    """What train_data and valid_data hold: chat records (docs/data-format.md), or task records of the
    run's task_table (docs/tasks.md), each rendered with its task's prompt_template as GRPO and eval
    render it, the answer as the assistant's turn."""
    valid_data: list[str] = Field(default_factory=lambda: ["toy_chat/valid.jsonl"])
    """Chat records for the validation loss (empty: none)."""
    on_bad_record: Literal["raise", "skip"] = "raise"
    """A malformed record stops the run naming file:line (raise), or is counted and left out (skip)."""
    seq_length: PositiveInt = 256
    """Tokens per row (a packed row holds several conversations)."""
    packing: bool = True
    """Pack conversations into rows of seq_length tokens (off: one conversation per row, padded)."""
    truncate: bool = False
    """Truncate conversations longer than seq_length (otherwise they are an error)."""
    micro_batch_size: PositiveInt = 2
    """Rows per forward/backward micro-batch."""
    global_batch_size: PositiveInt = 8
    """Rows (packed sequences) per optimizer step, over all data-parallel ranks."""
    train_steps: PositiveInt | None = None
    """Optimizer steps (null: epochs over the training rows)."""
    epochs: PositiveFloat | None = 2.0
    """Used when train_steps is None."""
    eval_interval_steps: PositiveInt = 50
    """Compute the validation loss every this many steps (and at the end)."""
    eval_max_rows: PositiveInt = 64
    """Validation rows used (the first N)."""
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> SFTConfig:
        if self.train_steps is None and self.epochs is None:
            raise ValueError("set sft.train_steps or sft.epochs")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a multiple of micro_batch_size "
                f"{self.micro_batch_size}"
            )
        return self
