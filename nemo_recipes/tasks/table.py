"""The task table: per task, its reward, eval metrics, prompt template and sampling weight.

A table is a YAML file (``tasks: {name: entry, ...}``) or a directory of them; a run merges its
``task_table`` with its ``general_task_table`` (a task named twice is an error). Entries are strict:
a misspelled key, an unknown reward kind or a bad value fails at load time naming the file, line and
key path. Records are checked against the table here (unknown task, answer not a label, missing test
code...). See ``docs/tasks.md``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, field_validator

from nemo_recipes.config.assets import ASSETS, resolve_asset
from nemo_recipes.config.loader import ConfigError, StrictModel, load_config
from nemo_recipes.records.chat import RecordError, RecordReadResult
from nemo_recipes.records.task import Language, TaskName, TaskRecord, iter_task_record_lines
from nemo_recipes.tasks.rewards import RewardSpec, check_reward_record


class TaskSpec(StrictModel):
    """One task: how its outputs are scored in training and in evaluation."""

    capability: str = Field(min_length=1)
    """Capability / category (information_extraction, semantic_matching, translation, general...)."""
    description: str = ""
    reward: RewardSpec
    metrics: dict[str, RewardSpec] = Field(default_factory=dict)
    """Named eval metrics; empty means one metric, ``reward``, equal to the training reward."""
    prompt_template: str | None = None
    """Wraps a record's ``question`` (the text ``{question}`` is replaced); null: the question as is."""
    sampling_weight: PositiveFloat = 1.0
    equivalent_at: float = Field(1.0, gt=0, le=1)
    """A response is equivalent to the reference when its reward reaches this (dynamic sampling)."""
    languages: list[Language] = Field(default_factory=list)
    """If given, a record's ``language`` must be one of these."""

    @field_validator("prompt_template")
    @classmethod
    def _has_placeholder(cls, template: str | None) -> str | None:
        if template is not None and template.count("{question}") != 1:
            raise ValueError("a prompt template must contain {question} exactly once")
        return template

    def eval_metrics(self) -> dict[str, RewardSpec]:
        return dict(self.metrics) if self.metrics else {"reward": self.reward}


class TaskTableFile(StrictModel):
    tasks: dict[TaskName, TaskSpec] = Field(min_length=1)


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class TaskTable:
    tasks: dict[str, TaskSpec]
    sources: dict[str, str] = field(default_factory=dict)  # task -> file it was defined in

    @property
    def names(self) -> list[str]:
        return sorted(self.tasks)

    def spec(self, task: str) -> TaskSpec:
        if task not in self.tasks:
            raise UnknownTaskError(self.unknown_message(task))
        return self.tasks[task]

    def unknown_message(self, task: str) -> str:
        """An unknown task named, with a did-you-mean and the known tasks."""
        hint = difflib.get_close_matches(task, self.names, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown task {task!r}{suggestion}; known tasks: {', '.join(self.names)}"

    def check_record(self, record: TaskRecord) -> list[tuple[str, str]]:
        """(field, problem) pairs for what the table requires of this record; empty when fine."""
        if record.task not in self.tasks:
            return [("task", self.unknown_message(record.task))]
        spec = self.tasks[record.task]
        problems = []
        if record.capability is not None and record.capability != spec.capability:
            problems.append(
                ("capability", f"{record.capability!r} differs from the task's {spec.capability!r}")
            )
        if spec.languages and record.language not in spec.languages:
            problems.append(("language", f"{record.language!r} is not one of the task's {spec.languages}"))
        for reward in [spec.reward, *spec.metrics.values()]:
            for problem in check_reward_record(reward, record):
                if problem not in problems:
                    problems.append(problem)
        return problems


def load_task_table(*sources: Path | str) -> TaskTable:
    """One table merged from YAML files, directories of them, or shipped names (``sns_demo``).

    A run passes its ``task_tables`` (``task_table``, then ``general_task_table``); a task defined
    twice is an error naming both files.
    """
    if not sources:
        raise ValueError("load_task_table needs at least one source")
    tasks: dict[str, TaskSpec] = {}
    file_of: dict[str, str] = {}
    for source in sources:
        resolved = _resolve(source)
        files = sorted(resolved.glob("*.yaml")) if resolved.is_dir() else [resolved]
        for file in files:
            for name, spec in load_config(TaskTableFile, file).tasks.items():
                if name in tasks:
                    raise ConfigError(
                        f"{file}: task {name!r} is already defined in {file_of[name]} (a run merges "
                        "task_table and general_task_table: set general_task_table: null when your "
                        "table defines its general tasks itself)"
                    )
                tasks[name], file_of[name] = spec, str(file)
    return TaskTable(tasks=tasks, sources=file_of)


def _resolve(path: Path | str) -> Path:
    """A YAML file or a directory holding task YAMLs, else a shipped table by name (a folder of data
    named like a shipped table, e.g. `general/`, is not a table)."""
    candidate, name = Path(path).expanduser(), str(path)
    shipped = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    if candidate.is_dir() and not any(candidate.glob("*.yaml")):
        if (ASSETS / "tasks" / shipped).is_file():
            return ASSETS / "tasks" / shipped
        raise ConfigError(f"{candidate}: no *.yaml task files in this directory")
    return candidate if candidate.exists() else resolve_asset(shipped, "tasks")


TaskReadResult = RecordReadResult[TaskRecord]
"""Task records read from a file, with their lines, and the errors of the lines skipped."""


def read_task_records(
    path: Path | str, table: TaskTable, on_error: Literal["raise", "skip"] = "raise"
) -> TaskReadResult:
    """Read a JSONL file of task records, checked against the schema and the task table.

    ``on_error="raise"`` raises :class:`~nemo_recipes.records.chat.RecordValidationError` (file, line, field)
    at the first bad line; ``"skip"`` drops bad lines and keeps their errors in the result.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    result = TaskReadResult()
    for line, record, errors in iter_task_record_lines(path):
        if record is not None:
            errors = [
                RecordError(str(path), line, where, problem) for where, problem in table.check_record(record)
            ]
        result.add(record, line, errors, on_error)
    return result
