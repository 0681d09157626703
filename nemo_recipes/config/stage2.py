"""Stage 2's inputs: the diagnosis (which tasks failed) and the data built for them. Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from nemo_recipes.config.generation import RehearsalGenerationConfig
from nemo_recipes.config.loader import StrictModel


class DiagnosisConfig(StrictModel):
    """Which tasks go into stage 2's failure bucket: any enabled rule selects a task (docs/diagnosis.md)."""

    model: Path | None = None
    """The model diagnosed (stage 1's checkpoint, or an HF directory)."""
    base_model: Path | None = None
    """The model before stage 1, for the regression rule (and the report)."""
    model_report: Path | None = None
    """An existing eval report (report.json or its directory) of `model`: used instead of evaluating."""
    base_report: Path | None = None
    """Likewise for `base_model`."""
    suites: list[Literal["sns", "translation", "general"]] = Field(
        default_factory=lambda: ["sns", "translation"], min_length=1
    )
    """Whose tasks can be selected (general tasks are rehearsal, not targets, by default)."""
    below_target: float | None = Field(None, ge=0, le=100)
    """Select a task scoring below this (0-100)."""
    regression_margin: float | None = Field(None, ge=0)
    """Select a task scoring more than this below the base model (needs base_model)."""
    k_weakest: PositiveInt | None = None
    """Select the k lowest-scoring tasks."""
    reference_scores: dict[str, float] = Field(default_factory=dict)
    """Scores to compare with (e.g. a stronger model's, 0-100), by task."""
    reference_gap: float | None = Field(None, ge=0)
    """Select a task scoring more than this below its reference score."""

    @model_validator(mode="after")
    def _some_rule(self) -> DiagnosisConfig:
        rules = (self.below_target, self.regression_margin, self.k_weakest, self.reference_gap)
        if all(r is None for r in rules):
            raise ValueError("no rule enabled: set below_target, regression_margin, k_weakest, reference_gap")
        if self.reference_gap is not None and not self.reference_scores:
            raise ValueError("reference_gap needs reference_scores")
        return self


class SFTDataConfig(StrictModel):
    """Stage 2's data: the failing tasks' records plus judged best-of-n rehearsal (docs/diagnosis.md)."""

    diagnosis: Path | None = None
    """diagnosis.json naming the failing tasks (default: run_dir/diagnosis/diagnosis.json)."""
    sns_data: list[str] = Field(default_factory=lambda: ["sns_demo/train.jsonl"])
    """Task records to draw the failing tasks' examples from (only their tasks are used)."""
    max_sns_records: PositiveInt | None = None
    """Cap on targeted records, split evenly over capabilities, then tasks (null: all of them)."""
    upweight: dict[str, PositiveInt] = Field(default_factory=dict)
    """meta key -> repeat count: records whose meta has that key truthy (rare cases) appear this often."""
    general_data: list[str] = Field(default_factory=lambda: ["general/train.jsonl"])
    """Task records of general-capability tasks (general_task_table's or task_table's): rehearsal prompts."""
    rehearsal_ratio: float = Field(0.0625, ge=0.0, lt=1.0)
    """Share of general rehearsal in the built set (the paper: about 6%)."""
    rehearsal_model: Path | None = None
    """The model that answers the rehearsal prompts (stage 1's checkpoint or an HF directory)."""
    generation: RehearsalGenerationConfig = Field(default_factory=RehearsalGenerationConfig)
    """How the rehearsal model answers: num_generations_per_prompt is the best-of-n (the paper: 8)."""
    min_judge_score: float = Field(0.0, ge=0.0, le=1.0)
    """A rehearsal prompt whose best answer scores below this is dropped (counted)."""
