"""The pipeline's own config (`redone run`): which stages, how stage 3 weighs hard tasks. Torch-free.

Stages 1 and 3 take their RL settings from the `grpo` section (the paper runs both with the same DAPO
settings), stage 2 from `sft`, the diagnosis from `diagnosis`, stage 2's data from `sft_data`, every
evaluation from `eval`; this section holds only what belongs to the pipeline itself.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, PositiveFloat, PositiveInt

from nemo_recipes.config.loader import StrictModel

UnitName = Literal[
    "base_eval", "stage1_grpo", "diagnosis", "sft_data", "stage2_sft", "stage3_grpo", "baseline_sft", "final"
]
UNITS: tuple[UnitName, ...] = (
    "base_eval",
    "stage1_grpo",
    "diagnosis",
    "sft_data",
    "stage2_sft",
    "stage3_grpo",
    "baseline_sft",
    "final",
)
"""The pipeline's units in order; each leaves `run_dir/<unit>/manifest.json` when it finishes.
`baseline_sft` runs only with `pipeline.baseline_sft: true`."""
TrainingUnitName = Literal["stage1_grpo", "stage2_sft", "stage3_grpo", "baseline_sft"]
TRAINING_UNITS: tuple[TrainingUnitName, ...] = get_args(TrainingUnitName)
"""The units that train (`redone grpo` / `redone sft`), and may train LoRA adapters (`lora_units`)."""


class RefineConfig(StrictModel):
    """Stage 3 (refinement RL): stage 1's settings, its own length and data, weighted to hard tasks."""

    train_steps: PositiveInt | None = None
    """Stage 3's RL steps (null: grpo.train_steps)."""
    train_data: list[str] | None = None
    """Task records for stage 3 (null: grpo.train_data), SNS and general."""
    diagnosed_task_weight: PositiveFloat = 2.0
    """Sampling weight factor of the tasks the diagnosis selected."""
    pass_rate_boost: float = Field(1.0, ge=0.0)
    """Weight factor 1 + boost x (1 - pass rate) per task, from stage 1's last `pass_rate_window_steps`."""
    pass_rate_window_steps: PositiveInt = 10
    """Stage 1's last this many steps give each task's late pass rate."""


class PipelineConfig(StrictModel):
    """`redone run`: base model (model.init_from) -> RL -> diagnosis -> SFT data -> SFT -> RL -> report."""

    stop_after: UnitName | None = None
    """Stop after this unit (null: run them all)."""
    launcher: list[str] = Field(default_factory=list)
    """Prefix of the training stages' commands, which start every rank, e.g. [srun, --kill-on-bad-exit=1]
    inside an allocation (empty: a local process, or torchrun with `redone run --nproc N`)."""
    single_launcher: list[str] = Field(default_factory=list)
    """Prefix of the one-process commands (evaluation, diagnosis, SFT data, export), e.g.
    [srun, --nodes=1, --ntasks=1] to run them on a compute node (empty: a local process)."""
    command: list[str] = Field(default_factory=list)
    """How a launched command starts redone, e.g. [redone] in a container (empty: this Python)."""
    export_hf: bool = True
    """Write the final model as an HF directory (run_dir/final/hf)."""
    baseline_sft: bool = False
    """Also run the paper's SFT-only arm (unit baseline_sft, label `sft-only`): SFT from the same base on
    the SNS training data (`baseline_sft_data`) for as many training examples as the RL-first path used
    (stage 1's and stage 3's prompts plus stage 2's conversations), evaluated like the stages and
    compared with stage 3 in the final report."""
    baseline_sft_data: list[str] | None = None
    """The SFT-only arm's task records (null: sft_data.sns_data, stage 2's SNS pool)."""
    lora_units: list[TrainingUnitName] | None = None
    """The training units that train LoRA adapters with model.lora's settings (null: every training
    unit when model.lora is set, none without it); the others fine-tune every weight. A LoRA unit
    exports its checkpoint merged (`<unit>/merged`, an HF directory), which is what it evaluates and
    what the units after it start from (docs/lora.md)."""
    refine: RefineConfig = Field(default_factory=RefineConfig)


LAUNCH_KEYS = ("launcher", "single_launcher", "command")
"""Where the stages run, not what they compute: at their defaults in the units' configs and hashes, so
that a run started on one machine or in one job resumes on another."""
