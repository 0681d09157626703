"""Task records -> prompts for the RL stage: the task's prompt template, the chat template, a length check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.rl import GRPOConfig
from nemo_recipes.data.chat_render import generation_prompt_ids
from nemo_recipes.data.task_sampler import TaskSampler
from nemo_recipes.tasks import TaskRecord, TaskTable, read_task_records


@dataclass(frozen=True)
class Prompt:
    """A task record ready for generation."""

    record: TaskRecord
    token_ids: list[int]
    where: str
    """file:line of the record."""


@dataclass(frozen=True)
class RecordSet:
    """Task records read and checked against the task table, each with its file:line."""

    records: list[tuple[TaskRecord, str]]
    skipped: list[str]
    """Errors of the records skipped under on_bad_record: skip."""


@dataclass(frozen=True)
class PromptSet:
    prompts: list[Prompt]
    skipped: list[str]
    """Errors of the records skipped under on_bad_record: skip."""


def read_prompt_records(
    files: Sequence[str], table: TaskTable, on_bad_record: str, data_key: str
) -> RecordSet:
    """Every record of `files`, checked against the task table (no tokenizer needed: a command checks
    its data with this before it writes or exports anything). `data_key` names the files' config key."""
    records, skipped = [], []
    for name in files:
        path = resolve_asset(name, "data")
        result = read_task_records(path, table, on_error=on_bad_record)
        skipped += [str(e) for e in result.errors]
        records += [
            (r, f"{path}:{line}") for r, line in zip(result.records, result.line_numbers, strict=True)
        ]
    if not records:
        raise ConfigError(f"{data_key} {list(files)}: no records")
    return RecordSet(records, skipped)


def prompt_token_ids(record: TaskRecord, table: TaskTable, tokenizer: Any) -> list[int]:
    """The record as the token ids a model is asked to continue: the task's prompt template, then the
    tokenizer's chat template with the generation prompt. The one rendering of GRPO, evaluation, the
    stage-2 rehearsal and `redone config --prompt-tokens`. Rendered as SFT renders its targets
    (`chat_render`: the same template variables, a non-thinking generation prompt), so these ids followed
    by the tokens SFT trains on for the record's answer are the SFT row's tokens."""
    messages = record.prompt_messages(table.spec(record.task).prompt_template)
    return generation_prompt_ids(tokenizer, [m.model_dump() for m in messages])


def tokenize_prompts(
    read: RecordSet, table: TaskTable, tokenizer: Any, max_prompt_tokens: int, data_key: str
) -> PromptSet:
    """Each record as a generation prompt (`prompt_token_ids`); a prompt longer than
    `max_prompt_tokens` is an error naming its record."""
    prompts = []
    for record, where in read.records:
        ids = prompt_token_ids(record, table, tokenizer)
        if len(ids) > max_prompt_tokens:
            raise ConfigError(
                f"{where}: the prompt has {len(ids)} tokens, more than "
                f"{data_key.split('.')[0]}.generation.max_prompt_tokens {max_prompt_tokens}"
            )
        prompts.append(Prompt(record=record, token_ids=ids, where=where))
    return PromptSet(prompts, read.skipped)


def load_prompts(
    files: Sequence[str],
    table: TaskTable,
    tokenizer: Any,
    max_prompt_tokens: int,
    on_bad_record: str,
    data_key: str,
) -> PromptSet:
    """Every record of `files` (checked against the task table) as a tokenized generation prompt.

    `data_key` is the config key that named the files (`grpo.train_data`, `eval.data`, ...): errors
    name it, and its section's `generation.max_prompt_tokens`.
    """
    read = read_prompt_records(files, table, on_bad_record, data_key)
    return tokenize_prompts(read, table, tokenizer, max_prompt_tokens, data_key)


def rl_prompt_stream(
    grpo: GRPOConfig, table: TaskTable, tokenizer: Any, seed: int
) -> tuple[PromptSet, TaskSampler]:
    """The RL stage's prompts (`grpo.train_data`) and the sampler that orders them (balanced over tasks
    by `grpo.task_weights`, else the table's weights): what the trainer and a rollout process share."""
    prompt_set = load_prompts(
        grpo.train_data,
        table,
        tokenizer,
        grpo.generation.max_prompt_tokens,
        grpo.on_bad_record,
        "grpo.train_data",
    )
    weights = {t: grpo.task_weights.get(t, table.spec(t).sampling_weight) for t in table.names}
    sampler = TaskSampler([p.record.task for p in prompt_set.prompts], weights, seed)
    return prompt_set, sampler
