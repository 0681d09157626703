"""Everything `redone run` can check before any training starts, reported at once. Torch-free.

The base model exists and is a model; every task table loads; every data file exists and each of its
records passes the schema and names a task of its table; task names in weights, eval and reference
scores are known; the batch and model shapes fit the process count (`check_launch`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nemo_recipes.config import RunConfig, check_launch, resolve_asset
from nemo_recipes.config_loader import ConfigError
from nemo_recipes.records.chat import read_chat_records
from nemo_recipes.tasks import TaskTable, load_task_table, read_task_records
from nemo_recipes.tasks.table import UnknownTaskError


def _base_model(cfg: RunConfig) -> list[str]:
    base = cfg.model.init_from
    if base is None:
        return ["model.init_from: not set (the pipeline starts from a base model: HF dir or checkpoint)"]
    if not Path(base).exists():
        return [f"model.init_from: {base} does not exist"]
    from eval.model_source import check_model_source

    try:
        check_model_source(Path(base))
    except ConfigError as e:
        return [f"model.init_from: {e}"]
    return []


def _task_files(key: str, files: list[str], table: TaskTable) -> list[str]:
    problems: list[str] = []
    for name in files:
        _check(problems, key, lambda name=name: read_task_records(resolve_asset(name, "data"), table))
    return problems


def _task_names(key: str, names: list[str], table: TaskTable) -> list[str]:
    unknown = [n for n in names if n not in table.names]
    return [f"{key}: unknown tasks {unknown} (the task table has {table.names})"] if unknown else []


def _check(problems: list[str], what: str, fn: Callable[[], object]) -> object | None:
    try:
        return fn()
    except (UnknownTaskError, OSError, ValueError) as e:  # ConfigError, RecordValidationError too
        problems.append(f"{what}: {e}")
        return None


def preflight(cfg: RunConfig, world_size: int) -> None:
    """Raise one ConfigError listing every problem found, or return."""
    problems = _base_model(cfg)
    tables: dict[str, TaskTable] = {}
    for key, name in (
        ("grpo.task_table", cfg.grpo.task_table),
        ("eval.task_table", cfg.eval.task_table),
        ("sft_data.task_table", cfg.sft_data.task_table),
    ):
        table = _check(problems, key, lambda name=name: load_task_table(name))
        if table is not None:
            tables[key] = table
    if grpo := tables.get("grpo.task_table"):
        problems += _task_files("grpo.train_data", cfg.grpo.train_data, grpo)
        if cfg.pipeline.refine.train_data is not None:
            problems += _task_files("pipeline.refine.train_data", cfg.pipeline.refine.train_data, grpo)
        problems += _task_names("grpo.task_weights", list(cfg.grpo.task_weights), grpo)
    if ev := tables.get("eval.task_table"):
        problems += _task_files("eval.data", cfg.eval.data, ev)
        problems += _task_names("eval.tasks", cfg.eval.tasks, ev)
        problems += _task_names("diagnosis.reference_scores", list(cfg.diagnosis.reference_scores), ev)
    if data := tables.get("sft_data.task_table"):
        problems += _task_files("sft_data.sns_data", cfg.sft_data.sns_data, data)
        problems += _task_files("sft_data.general_data", cfg.sft_data.general_data, data)
    for name in cfg.sft.valid_data:
        _check(problems, "sft.valid_data", lambda name=name: read_chat_records(resolve_asset(name, "data")))
    if "train_data" in cfg.sft.model_fields_set:
        problems.append(
            "sft.train_data: stage 2 trains on the set built from the diagnosis (sft_data.*); remove "
            "sft.train_data from the recipe (more records go into sft_data.sns_data)"
        )
    for stage in ("grpo", "sft"):
        _check(problems, f"layout ({stage})", lambda stage=stage: check_launch(cfg, world_size, stage))
    if problems:
        raise ConfigError("the recipe cannot run:\n  - " + "\n  - ".join(problems))
