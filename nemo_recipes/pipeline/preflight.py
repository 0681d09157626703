"""Everything `redone run` can check before any training starts, reported at once. Torch-free.

The base model exists and is a model; the task table loads; every data file exists and each of its
records passes the schema and names a task of its table; task names in weights, eval and reference
scores are known; the batch and model shapes fit the process count (`check_launch`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from eval.model_source import check_model_source
from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.records.chat import read_chat_records
from nemo_recipes.tasks import TaskTable, load_task_table, read_task_records
from nemo_recipes.tasks.table import UnknownTaskError


def _base_model(cfg: RunConfig) -> list[str]:
    base = cfg.model.init_from
    if base is None:
        return ["model.init_from: not set (the pipeline starts from a base model: HF dir or checkpoint)"]
    if not Path(base).exists():
        return [f"model.init_from: {base} does not exist"]
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
    table = _check(problems, "task_table", lambda: load_task_table(cfg.task_table))
    if table is not None:
        for key, files in (
            ("grpo.train_data", cfg.grpo.train_data),
            ("pipeline.refine.train_data", cfg.pipeline.refine.train_data or []),
            ("eval.data", cfg.eval.data),
            ("sft_data.sns_data", cfg.sft_data.sns_data),
            ("sft_data.general_data", cfg.sft_data.general_data),
        ):
            problems += _task_files(key, files, table)
        problems += _task_names("grpo.task_weights", list(cfg.grpo.task_weights), table)
        problems += _task_names("eval.tasks", cfg.eval.tasks, table)
        problems += _task_names("diagnosis.reference_scores", list(cfg.diagnosis.reference_scores), table)
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
