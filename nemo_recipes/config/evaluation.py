"""The evaluation section (`redone eval`, the pipeline's evaluation units): what to score. Torch-free.

How responses are generated is `eval.generation`; the engine, task table, model and seed are the run's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from nemo_recipes.config.generation import EvalGenerationConfig
from nemo_recipes.config.loader import StrictModel

Suite = Literal["sns", "translation", "general"]


class EvalConfig(StrictModel):
    """What `redone eval` scores: held-out records of the run's task table, by suite."""

    data: list[str] = Field(default_factory=lambda: ["sns_demo/test.jsonl", "general/test.jsonl"])
    """Held-out task records (JSONL, the task record schema); shipped names resolve under assets/data."""
    on_bad_record: Literal["raise", "skip"] = "raise"
    """A malformed record stops the evaluation naming file:line (raise), or is counted and left out."""
    suites: list[Suite] = Field(default_factory=lambda: ["sns", "translation", "general"], min_length=1)
    """Suites to score (a task's suite: translation tasks, general-capability tasks, the rest SNS)."""
    tasks: list[str] = Field(default_factory=list)
    """Only these tasks (empty: every task of the selected suites that has records)."""
    generation: EvalGenerationConfig = Field(default_factory=EvalGenerationConfig)
    """Prompt and response budgets and sampling (default: one greedy response per item)."""
    batch_size: PositiveInt = 64
    """Prompts per generate call (and per flush of predictions.jsonl)."""
    bootstrap_samples: NonNegativeInt = 1000
    """Resamples behind the 95 % interval of every score (percentile bootstrap: each task's items drawn
    with replacement, every score recomputed; seeded by the run's `seed`; docs/eval.md); 0: none."""
    lm_eval_tasks: list[str] = Field(default_factory=list)
    """lm-evaluation-harness tasks added to the general suite (eval/lm_eval_suite.py); empty: none."""
    lm_eval_include_path: list[str] = Field(default_factory=list)
    """Directories of lm-eval task YAMLs (local data files); empty: the shipped assets/lm_eval."""
    lm_eval_limit: PositiveInt | None = None
    """Items per lm-eval task (the first N); None: all."""
    lm_eval_batch_size: PositiveInt = 8
    """Batch size of lm-eval's HF backend."""

    @field_validator("lm_eval_tasks", "lm_eval_include_path", mode="before")
    @classmethod
    def _one_or_list(cls, value):
        """`--set eval.lm_eval_tasks=a` is the list [a]."""
        return [value] if isinstance(value, str) else value
