"""`redone config RECIPE --prompt-tokens`: prompt lengths counted as GRPO and eval tokenize them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.data.prompt_lengths import (
    format_report,
    percentile,
    prompt_lengths,
    prompt_sources,
)
from nemo_recipes.data.rl_prompts import prompt_token_ids, read_prompt_records, tokenize_prompts
from nemo_recipes.preflight import commands_of
from nemo_recipes.tasks import load_task_table
from tests.conftest import REPO, run_cli

GRPO_TINY = REPO / "nemo_recipes" / "recipes" / "grpo_tiny.yaml"


def test_percentile_is_the_nearest_rank() -> None:
    values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]
    assert percentile(values, 50) == 5  # the 5th of 10 sorted values
    assert percentile(values, 95) == 10  # rank ceil(9.5) = 10
    assert percentile(values, 10) == 1
    assert percentile(values, 100) == 10
    assert percentile([7], 50) == percentile([7], 95) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_counts_are_the_lengths_grpo_tokenizes(shipped_tokenizer) -> None:
    """The same records, the same tokenizer and table: the counted lengths are the ids GRPO generates from."""
    table = load_task_table("sns_demo")
    cfg = load_config(RunConfig, None, ["grpo.train_data=[sns_demo/train.jsonl]"])
    (source,) = prompt_sources(cfg, ["grpo"])
    (counted,) = prompt_lengths([source], table, shipped_tokenizer)

    read = read_prompt_records(["sns_demo/train.jsonl"], table, "raise", "grpo.train_data")
    prompts = tokenize_prompts(read, table, shipped_tokenizer, 10**6, "grpo.train_data").prompts
    assert counted.lengths == [len(p.token_ids) for p in prompts]
    assert counted.wheres == [p.where for p in prompts]
    assert len(counted.lengths) == len(read.records) > 100
    assert all(prompt_token_ids(p.record, table, shipped_tokenizer) == p.token_ids for p in prompts[:20])
    assert counted.longest == max(len(p.token_ids) for p in prompts)


def test_the_sources_are_the_data_keys_of_the_recipes_commands(tmp_path: Path) -> None:
    cfg = load_config(RunConfig, GRPO_TINY)
    assert [s.data_key for s in prompt_sources(cfg, commands_of(cfg))] == ["grpo.train_data"]
    assert prompt_sources(cfg, ["sft"]) == []
    assert format_report([], "tiny", None).startswith("no generation prompts")

    recipe = REPO / "nemo_recipes" / "recipes" / "pipeline_tiny.yaml"
    cfg = load_config(RunConfig, recipe, ["pipeline.refine.train_data=[toy_rl/train.jsonl]"])
    sources = prompt_sources(cfg, commands_of(cfg))
    assert [(s.data_key, s.generation_key) for s in sources] == [
        ("grpo.train_data", "grpo.generation"),
        ("pipeline.refine.train_data", "grpo.generation"),  # stage 3 is GRPO with its own data
        ("eval.data", "eval.generation"),
        ("sft_data.general_data", "sft_data.generation"),
    ]
    assert [s.data_key for s in prompt_sources(cfg, ["eval", "diagnose"])] == ["eval.data"]


def test_evaluation_counts_the_records_it_selects(shipped_tokenizer) -> None:
    table = load_task_table("sns_demo")
    cfg = load_config(RunConfig, None, ["eval.data=[sns_demo/train.jsonl]"])
    (source,) = prompt_sources(cfg, ["eval"], evaluated=lambda r: r.task == "sns_ner")
    (counted,) = prompt_lengths([source], table, shipped_tokenizer)
    read = read_prompt_records(["sns_demo/train.jsonl"], table, "raise", "eval.data")
    assert len(counted.lengths) == sum(r.task == "sns_ner" for r, _ in read.records) > 0


def toy_lengths(tokenizer, limit: int) -> tuple[list[int], str]:
    """The toy RL prompts' lengths, as GRPO tokenizes them, and GRPO's error at `limit` ('' if none)."""
    table = load_task_table("toy_rl")
    read = read_prompt_records(["toy_rl/train.jsonl"], table, "raise", "grpo.train_data")
    lengths = [len(p.token_ids) for p in tokenize_prompts(read, table, tokenizer, 10**6, "x").prompts]
    try:
        tokenize_prompts(read, table, tokenizer, limit, "grpo.train_data")
    except ConfigError as e:
        return lengths, str(e)
    return lengths, ""


def report_row(stdout: str, data_key: str) -> dict[str, str]:
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("data key"))
    row = next(line for line in lines if line.startswith(data_key + " "))
    names = re.split(r"\s{2,}", header.strip())
    return dict(zip(names, re.split(r"\s{2,}", row.strip()), strict=True))


def test_config_prompt_tokens_reports_the_shipped_recipe(shipped_tokenizer) -> None:
    limit = yaml.safe_load(GRPO_TINY.read_text())["grpo"]["generation"]["max_prompt_tokens"]
    lengths, grpo_error = toy_lengths(shipped_tokenizer, limit)
    assert grpo_error == ""
    proc = run_cli(["config", str(GRPO_TINY.relative_to(REPO)), "--prompt-tokens"])
    row = report_row(proc.stdout, "grpo.train_data")
    assert row["file"] == "toy_rl/train.jsonl"
    assert row["prompts"] == str(len(lengths))
    assert row["max"] == str(max(lengths))
    assert row["max_prompt_tokens"] == str(limit)
    assert row["over"] == str(sum(n > limit for n in lengths)) == "0"
    assert f"grpo.generation: max_prompt_tokens >= {max(lengths)} fits every prompt" in proc.stdout


def test_prompts_over_the_limit_are_reported_not_raised(tmp_path: Path, shipped_tokenizer) -> None:
    """A recipe whose limit is below its longest prompt: a report (exit 0) counting what GRPO refuses."""
    lengths, _ = toy_lengths(shipped_tokenizer, 10**6)
    limit = max(lengths) - 1
    over = sum(n > limit for n in lengths)
    _, grpo_error = toy_lengths(shipped_tokenizer, limit)
    assert over > 0 and "more than grpo.generation.max_prompt_tokens" in grpo_error  # GRPO refuses them

    recipe = yaml.safe_load(GRPO_TINY.read_text())
    recipe["grpo"]["generation"]["max_prompt_tokens"] = limit
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = run_cli(["config", str(path), "--prompt-tokens"])  # fails the test unless it exits 0
    row = report_row(proc.stdout, "grpo.train_data")
    assert (row["max"], row["max_prompt_tokens"], row["over"]) == (str(max(lengths)), str(limit), str(over))
    first = grpo_error.split(": the prompt")[0]  # file:line GRPO stops at
    assert f"{over} prompts exceed max_prompt_tokens {limit}" in proc.stdout
    assert f"would refuse them, stopping with an error at the first ({first}:" in proc.stdout
    assert f"Set max_prompt_tokens >= {max(lengths)}" in proc.stdout
