"""How long a recipe's generation prompts are, in tokens of its tokenizer: `redone config --prompt-tokens`.

Users size `generation.max_prompt_tokens` (GRPO, evaluation, the stage-2 rehearsal) from this report.
Every record is rendered as those commands render it (`rl_prompts.prompt_token_ids`); a prompt over the
limit is counted and named here, not raised (`tokenize_prompts` refuses it when the command runs).
Torch-free given a tokenizer object (an HF tokenizer with a chat template).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nemo_recipes.config import RunConfig
from nemo_recipes.config.generation import GenerationConfig
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.data.rl_prompts import prompt_token_ids, read_prompt_records
from nemo_recipes.tasks import TaskRecord, TaskTable

RecordFilter = Callable[[TaskRecord], bool]
"""Which records of a data key a command generates for (evaluation: those of eval.suites / eval.tasks)."""


@dataclass(frozen=True)
class PromptSource:
    """A data key whose records become generation prompts, and the generation section that bounds them."""

    data_key: str
    """The config key naming the files: `grpo.train_data`, `eval.data`, ..."""
    files: list[str]
    generation_key: str
    """The section whose `max_prompt_tokens` applies: `grpo.generation`, `eval.generation`, ..."""
    generation: GenerationConfig
    on_bad_record: str
    used_by: str
    """Who generates from these prompts (the report says who would refuse an over-long one)."""
    keep: RecordFilter | None = None


def prompt_sources(
    cfg: RunConfig, commands: Sequence[str], evaluated: RecordFilter | None = None
) -> list[PromptSource]:
    """The data keys that the `commands` (`preflight.commands_of`) turn into generation prompts, each
    once: GRPO's train data (and stage 3's with `redone run`), the eval data (eval, diagnose), the
    rehearsal's general data (build-sft-data). `evaluated`: the records evaluation keeps."""
    grpo, ev, data = cfg.grpo, cfg.eval, cfg.sft_data
    rl = "GRPO (`redone grpo`, the RL stages of `redone run`)"

    def rl_source(key: str, files: list[str]) -> PromptSource:
        return PromptSource(key, files, "grpo.generation", grpo.generation, grpo.on_bad_record, rl)

    stage1 = [rl_source("grpo.train_data", grpo.train_data)]
    refine = cfg.pipeline.refine.train_data
    stage3 = [rl_source("pipeline.refine.train_data", refine)] if refine else []
    eval_source = PromptSource(
        data_key="eval.data",
        files=ev.data,
        generation_key="eval.generation",
        generation=ev.generation,
        on_bad_record=ev.on_bad_record,
        used_by="evaluation (`redone eval`, `redone diagnose`)",
        keep=evaluated,
    )
    rehearsal_source = PromptSource(
        data_key="sft_data.general_data",
        files=data.general_data,
        generation_key="sft_data.generation",
        generation=data.generation,
        on_bad_record="raise",  # the rehearsal reads its prompts so (build_sft_data)
        used_by="the stage-2 rehearsal (`redone build-sft-data`)",
    )
    evaluation, rehearsal = [eval_source], [rehearsal_source]
    by_command = {
        "grpo": stage1,
        "eval": evaluation,
        "diagnose": evaluation,
        "build-sft-data": rehearsal,
        "run": [*stage1, *stage3, *evaluation, *rehearsal],
    }
    sources = [source for command in commands for source in by_command.get(command, [])]
    return list({source.data_key: source for source in sources}.values())


def percentile(values: Sequence[int], q: float) -> int:
    """The nearest-rank percentile: the smallest value with at least q% of `values` at or below it."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    ordered = sorted(values)
    return ordered[math.ceil(q / 100 * len(ordered)) - 1]


@dataclass(frozen=True)
class FileLengths:
    """The prompt lengths of one file of a data key, in record order."""

    source: PromptSource
    file: str
    """The file as the config names it."""
    lengths: list[int]
    """Tokens of each prompt (the kept records)."""
    wheres: list[str]
    """file:line of each prompt."""
    skipped: int
    """Bad records dropped under on_bad_record: skip."""

    @property
    def max_prompt_tokens(self) -> int:
        return self.source.generation.max_prompt_tokens

    @property
    def over(self) -> list[tuple[str, int]]:
        """(file:line, tokens) of each prompt longer than max_prompt_tokens."""
        limit = self.max_prompt_tokens
        return [(where, n) for where, n in zip(self.wheres, self.lengths, strict=True) if n > limit]

    @property
    def longest(self) -> int | None:
        return max(self.lengths, default=None)


def file_prompt_lengths(source: PromptSource, file: str, table: TaskTable, tokenizer: Any) -> FileLengths:
    """Every record of `file` rendered as a generation prompt and counted."""
    read = read_prompt_records([file], table, source.on_bad_record, source.data_key)
    kept = [(r, where) for r, where in read.records if source.keep is None or source.keep(r)]
    lengths = [len(prompt_token_ids(record, table, tokenizer)) for record, _ in kept]
    return FileLengths(source, file, lengths, [where for _, where in kept], len(read.skipped))


def prompt_lengths(sources: Sequence[PromptSource], table: TaskTable, tokenizer: Any) -> list[FileLengths]:
    """Per data key and file, the lengths of its prompts."""
    return [file_prompt_lengths(s, file, table, tokenizer) for s in sources for file in s.files]


def model_window(cfg: RunConfig) -> int | None:
    """The model's `max_position_embeddings` (None: not stated, or its config does not read)."""
    try:
        positions = cfg.model.hf_config_dict().get("max_position_embeddings")
    except ConfigError:
        return None
    return positions if isinstance(positions, int) else None


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _advice(key: str, files: Sequence[FileLengths], window: int | None) -> str:
    """One line for a generation section: what max_prompt_tokens fits every prompt, and who refuses."""
    source = files[0].source
    generation = source.generation
    lengths = [n for f in files for n in f.lengths]
    if not lengths:
        return f"{key}: no prompts selected"
    needed = max(lengths)
    over = [o for f in files for o in f.over]
    response = generation.max_response_tokens
    row = f"rows are max_prompt_tokens + max_response_tokens ({needed} + {response} = {needed + response})"
    limit = generation.max_prompt_tokens
    if window is not None:
        fits = "within" if needed + response <= window else "more than"
        row += f", {fits} the model's max_position_embeddings {window}"
        if limit + response > window:  # GRPO's preflight refuses this; eval and rehearsal cap the prompt
            row += f" ({limit} + {response} set is more: prompts are capped at {window - response})"
    if not over:
        return f"{key}: max_prompt_tokens >= {needed} fits every prompt (set: {limit}); {row}"
    where, tokens = over[0]
    return (
        f"{key}: {len(over)} prompts exceed max_prompt_tokens {limit}: {source.used_by} would refuse "
        f"them, stopping with an error at the first ({where}: {tokens} tokens). "
        f"Set max_prompt_tokens >= {needed}; {row}"
    )


def format_report(files: Sequence[FileLengths], tokenizer_name: str, window: int | None) -> str:
    """The table (one row per data key and file) and one line per generation section."""
    if not files:
        return (
            "no generation prompts: the commands this recipe is written for generate from no task records\n"
        )
    header = ("data key", "file", "prompts", "p50", "p95", "max", "max_prompt_tokens", "over")
    rows = [header]
    for f in files:
        stats = [percentile(f.lengths, 50), percentile(f.lengths, 95), f.longest] if f.lengths else ["-"] * 3
        rows.append(
            (
                f.source.data_key,
                f.file,
                str(len(f.lengths)),
                *map(str, stats),
                str(f.max_prompt_tokens),
                str(len(f.over)),
            )
        )
    lines = [
        f"prompt tokens (tokenizer {tokenizer_name}; the task's prompt template, then the chat template "
        "with the generation prompt):",
        "",
        *_table(rows),
        "",
    ]
    if any(f.source.generation_key != "grpo.generation" for f in files):
        lines.append(
            "(evaluation and the rehearsal tokenize with the evaluated model's own tokenizer: the same one "
            "when that model was trained from this recipe's model)"
        )
    skipped = sum(f.skipped for f in files)
    if skipped:
        lines.append(f"({skipped} bad records skipped under on_bad_record: skip)")
    sections: dict[str, list[FileLengths]] = {}
    for f in files:
        sections.setdefault(f.source.generation_key, []).append(f)
    lines += [_advice(key, group, window) for key, group in sections.items()]
    return "\n".join(lines) + "\n"
