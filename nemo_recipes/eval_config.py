"""The evaluation config (`redone eval`): what to score and how to generate. Torch-free."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from nemo_recipes.config_loader import StrictModel
from nemo_recipes.rl_config import RolloutEngineConfig

Suite = Literal["sns", "translation", "general"]


class EvalConfig(StrictModel):
    task_table: str = "sns_demo"
    """Task table: a shipped name, a YAML file or a directory (docs/tasks.md)."""
    data: list[str] = Field(default_factory=lambda: ["sns_demo/test.jsonl"])
    """Held-out task records (JSONL, the task record schema); shipped names resolve under assets/data."""
    on_bad_record: Literal["raise", "skip"] = "raise"
    suites: list[Suite] = Field(default_factory=lambda: ["sns", "translation", "general"], min_length=1)
    tasks: list[str] = Field(default_factory=list)
    """Only these tasks (empty: every task of the selected suites that has records)."""
    max_prompt_tokens: PositiveInt = 1024
    """A longer prompt is an error naming its record."""
    max_response_tokens: PositiveInt = 256
    temperature: float = Field(0.0, ge=0.0)
    """0: greedy decoding."""
    batch_size: PositiveInt = 64
    """Prompts per generate call (and per flush of predictions.jsonl)."""
    seed: int = 1234
    engine: RolloutEngineConfig = Field(default_factory=RolloutEngineConfig)
    hf_config: str | None = None
    tokenizer: str | None = None
    """For a checkpoint whose run records neither (see `redone convert mcore-to-hf`); else unused."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Engine dtype; auto: the model's config.json."""
    lm_eval_tasks: list[str] = Field(default_factory=list)
    """lm-evaluation-harness tasks added to the general suite (eval/lm_eval_suite.py); empty: none."""
    lm_eval_include_path: list[str] = Field(default_factory=list)
    """Directories of lm-eval task YAMLs (local data files); empty: the shipped assets/lm_eval."""
    lm_eval_limit: PositiveInt | None = None
    """Items per lm-eval task (the first N); None: all."""
    lm_eval_batch_size: PositiveInt = 8

    @field_validator("lm_eval_tasks", "lm_eval_include_path", mode="before")
    @classmethod
    def _one_or_list(cls, value):
        """`--set lm_eval_tasks=a` is the list [a]."""
        return [value] if isinstance(value, str) else value
