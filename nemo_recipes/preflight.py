"""Everything a command can check before it imports a model library or writes a file, reported at once.

Torch-free. Per command (`CHECKS`): the model's config and tokenizer resolve; a starting model exists
and is a model; the task table loads; every data file exists and each record passes its schema and
names a task of the table (file:line); task names in weights, eval and reference scores are known;
batch and model shapes fit the process count (`check_launch`). `redone run` runs the checks of every
stage; `redone config` those of the sections its recipe sets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from nemo_recipes.checkpoint.files import check_model_source
from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.data.rl_prompts import read_prompt_records
from nemo_recipes.data.sft_records import read_sft_records
from nemo_recipes.tasks import TaskTable, load_task_table
from nemo_recipes.tasks.table import UnknownTaskError

Command = Literal["run", "sft", "grpo", "eval", "diagnose", "build-sft-data"]
Problems = list[str]


def _attempt(problems: Problems, what: str, fn: Callable[[], object]) -> object | None:
    """Run one check; its error (a config, record, missing-file or unknown-task error) becomes a problem."""
    try:
        return fn()
    except (UnknownTaskError, OSError, ValueError) as e:  # ConfigError, RecordValidationError too
        problems.append(f"{what}: {e}")
        return None


def _model_files(cfg: RunConfig) -> Problems:
    problems: Problems = []
    _attempt(problems, "model.hf_config", cfg.model.hf_config_dict)
    _attempt(problems, "model.tokenizer", lambda: resolve_asset(cfg.model.tokenizer, "tokenizer"))
    return problems


def _model_dir(key: str, path: Path | None, required: bool, why: str = "") -> Problems:
    if path is None:
        return [f"{key}: not set{why}"] if required else []
    if not Path(path).exists():
        return [f"{key}: {path} does not exist"]
    problems: Problems = []
    _attempt(problems, key, lambda: check_model_source(Path(path)))
    return problems


def _task_files(key: str, files: list[str], table: TaskTable, on_bad_record: str = "raise") -> Problems:
    problems: Problems = []
    for name in files:
        _attempt(problems, key, lambda name=name: read_prompt_records([name], table, on_bad_record, key))
    return problems


def _rehearsal_prompts(files: list[str], table: TaskTable) -> Problems:
    """Stage 2 rehearses general-capability tasks only: the general data must have some."""
    key, problems = "sft_data.general_data", []
    read = _attempt(problems, key, lambda: read_prompt_records(files, table, "raise", key))
    if problems or any(table.spec(record.task).capability == "general" for record, _ in read.records):
        return problems
    return [
        f"{key} {files}: no records of a general-capability task to rehearse (the shipped set is "
        "general/train.jsonl, its table general_task_table: general; or set sft_data.rehearsal_ratio: 0)"
    ]


def _task_names(key: str, names: list[str], table: TaskTable) -> Problems:
    return [f"{key}: {table.unknown_message(n)}" for n in names if n not in table.names]


def _table(cfg: RunConfig, problems: Problems) -> TaskTable | None:
    """The run's merged tables; when they do not load, each table is tried alone to name its key."""
    try:
        return load_task_table(*cfg.task_tables)
    except (OSError, ValueError) as merged:  # ConfigError too
        named: Problems = []
        for key, source in (("task_table", cfg.task_table), ("general_task_table", cfg.general_task_table)):
            if source is not None:
                _attempt(named, key, lambda source=source: load_task_table(source))
        problems += named or [f"task_table + general_task_table: {merged}"]  # each loads; together not
        return None


def _layout(cfg: RunConfig, world_size: int, stage: Literal["sft", "grpo"]) -> Problems:
    problems: Problems = []
    _attempt(problems, f"layout ({stage})", lambda: check_launch(cfg, world_size, stage))
    return problems


def _sft_files(cfg: RunConfig, key: str, files: list[str], table: TaskTable | None) -> Problems:
    sft, problems = cfg.sft, []

    def read(name: str) -> object:
        return read_sft_records(resolve_asset(name, "data"), sft.record_format, sft.on_bad_record, table)

    for name in files:
        _attempt(problems, key, lambda name=name: read(name))
    return problems


def check_sft(cfg: RunConfig, world_size: int, in_pipeline: bool = False) -> Problems:
    """The SFT stage's records (task records: with the task table); in the pipeline stage 2's training
    set is built by an earlier unit, so only the validation records are there to check."""
    problems = [*_model_files(cfg), *_model_dir("model.init_from", cfg.model.init_from, required=False)]
    table = _table(cfg, problems) if cfg.sft.record_format == "task" else None
    if cfg.sft.record_format == "chat" or table is not None:
        if not in_pipeline:
            problems += _sft_files(cfg, "sft.train_data", cfg.sft.train_data, table)
        problems += _sft_files(cfg, "sft.valid_data", cfg.sft.valid_data, table)
    return problems + _layout(cfg, world_size, "sft")


def check_grpo(cfg: RunConfig, world_size: int) -> Problems:
    grpo = cfg.grpo
    problems = [*_model_files(cfg), *_model_dir("model.init_from", cfg.model.init_from, required=False)]
    if (table := _table(cfg, problems)) is not None:
        problems += _task_files("grpo.train_data", grpo.train_data, table, grpo.on_bad_record)
        problems += _task_names("grpo.task_weights", list(grpo.task_weights), table)
    return problems + _layout(cfg, world_size, "grpo")


def check_eval(cfg: RunConfig, model: Path | None) -> Problems:
    """The evaluated model (when given), the task table, every eval record, the task names."""
    problems = _model_dir("the model to evaluate", model, required=False)
    if (table := _table(cfg, problems)) is not None:
        problems += _task_files("eval.data", cfg.eval.data, table, cfg.eval.on_bad_record)
        problems += _task_names("eval.tasks", cfg.eval.tasks, table)
        problems += _task_names("diagnosis.reference_scores", list(cfg.diagnosis.reference_scores), table)
    return problems


def check_diagnose(cfg: RunConfig) -> Problems:
    diagnosis = cfg.diagnosis
    problems = []
    for key, path in (
        ("diagnosis.model_report", diagnosis.model_report),
        ("diagnosis.base_report", diagnosis.base_report),
    ):
        if path is not None and not Path(path).exists():
            problems.append(f"{key}: {path} does not exist")
    if diagnosis.model_report is None:
        problems += _model_dir(
            "diagnosis.model", diagnosis.model, required=True, why=" (the model diagnosed)"
        )
    if diagnosis.base_report is None:
        problems += _model_dir("diagnosis.base_model", diagnosis.base_model, required=False)
    return problems + check_eval(cfg, None)


def check_sft_data(cfg: RunConfig, in_pipeline: bool = False) -> Problems:
    """Stage 2's sources; in the pipeline the diagnosis and rehearsal model come from earlier units."""
    data = cfg.sft_data
    problems: Problems = []
    if (table := _table(cfg, problems)) is not None:
        problems += _task_files("sft_data.sns_data", data.sns_data, table)
        if data.rehearsal_ratio > 0:  # rehearsal off: its data is not read
            problems += _rehearsal_prompts(data.general_data, table)
    if not in_pipeline:
        diagnosis = data.diagnosis or cfg.run_dir / "diagnosis" / "diagnosis.json"
        if not Path(diagnosis).is_file():
            problems.append(f"sft_data.diagnosis: {diagnosis} does not exist (run `redone diagnose` first)")
        if data.rehearsal_ratio > 0:
            why = " (rehearsal_ratio > 0: stage 1's checkpoint answers the general prompts)"
            problems += _model_dir("sft_data.rehearsal_model", data.rehearsal_model, required=True, why=why)
    return problems


def check_run(cfg: RunConfig, world_size: int) -> Problems:
    """The whole pipeline: a base model, every stage's data and shapes (stage 2 trains on built data)."""
    why = " (the pipeline starts from a base model: HF dir or checkpoint)"
    problems = [*_model_files(cfg), *_model_dir("model.init_from", cfg.model.init_from, True, why)]
    if (table := _table(cfg, problems)) is not None:
        for key, files in (
            ("grpo.train_data", cfg.grpo.train_data),
            ("pipeline.refine.train_data", cfg.pipeline.refine.train_data or []),
            ("pipeline.baseline_sft_data", cfg.pipeline.baseline_sft_data or []),
        ):
            problems += _task_files(key, files, table, cfg.grpo.on_bad_record)
        problems += _task_names("grpo.task_weights", list(cfg.grpo.task_weights), table)
    problems += check_eval(cfg, None) + check_sft_data(cfg, in_pipeline=True)
    problems += check_sft(cfg, world_size, in_pipeline=True)
    if "train_data" in cfg.sft.model_fields_set:
        problems.append(
            "sft.train_data: stage 2 trains on the set built from the diagnosis (sft_data.*); remove "
            "sft.train_data from the recipe (more records go into sft_data.sns_data)"
        )
    if cfg.sft.record_format != "chat":
        problems.append(
            f"sft.record_format: {cfg.sft.record_format}: stage 2 trains on the chat records it builds "
            "(sft_data.sns_data holds your task records); remove sft.record_format from the recipe"
        )
    return problems + _lora_units(cfg) + _layout(cfg, world_size, "grpo")


def _lora_units(cfg: RunConfig) -> Problems:
    """`pipeline.lora_units` takes its settings from model.lora and names units that run."""
    units, problems = cfg.pipeline.lora_units, []
    if units and cfg.model.lora is None:
        problems.append(
            f"pipeline.lora_units {units}: needs model.lora, the adapters' settings (`model.lora: {{}}` "
            "for the defaults)"
        )
    if units and "baseline_sft" in units and not cfg.pipeline.baseline_sft:
        problems.append(
            "pipeline.lora_units names baseline_sft, which runs only with pipeline.baseline_sft: true"
        )
    return problems


def preflight(cfg: RunConfig, world_size: int, *commands: Command, model: Path | None = None) -> None:
    """Raise one ConfigError listing every problem the `commands` would meet, or return. `model`: the
    model `redone eval` evaluates."""
    checks: dict[Command, Callable[[], Problems]] = {
        "run": lambda: check_run(cfg, world_size),
        "sft": lambda: check_sft(cfg, world_size),
        "grpo": lambda: check_grpo(cfg, world_size),
        "eval": lambda: check_eval(cfg, model),
        "diagnose": lambda: check_diagnose(cfg),
        "build-sft-data": lambda: check_sft_data(cfg),
    }
    found = [problem for command in commands for problem in checks[command]()]
    problems = list(dict.fromkeys(found))  # a problem two checks find is listed once
    if problems:
        raise ConfigError(f"the recipe cannot run ({', '.join(commands)}):\n  - " + "\n  - ".join(problems))


SECTION_COMMANDS: dict[str, Command] = {
    "pipeline": "run",
    "sft": "sft",
    "grpo": "grpo",
    "eval": "eval",
    "diagnosis": "diagnose",
    "sft_data": "build-sft-data",
}
"""`redone config RECIPE` checks the commands whose sections the recipe sets (`pipeline`: the whole run)."""


def commands_of(cfg: RunConfig) -> list[Command]:
    """The commands a recipe is written for, from the sections it sets (none: SFT, the default stage)."""
    commands = [command for section, command in SECTION_COMMANDS.items() if section in cfg.model_fields_set]
    return ["run"] if "run" in commands else commands or ["sft"]
