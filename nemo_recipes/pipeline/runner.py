"""`redone run`: the recipe's stages in order, each a unit with its own directory and manifest.

base_eval -> stage1_grpo -> diagnosis -> sft_data -> stage2_sft -> stage3_grpo -> [baseline_sft] -> final.

`baseline_sft` (with `pipeline.baseline_sft: true`) is the paper's SFT-only arm: SFT from the base on
the SNS training data for the RL-first path's example budget, evaluated like the stages.

A unit writes the config it runs with (`stage.yaml`, `eval.yaml`: rerun any of them alone with
`redone grpo|sft|diagnose|build-sft-data|eval`), runs its commands as child processes (output in
`log.txt`) and writes `manifest.json` last. A unit with a manifest is finished and skipped; one
without resumes: training from its latest checkpoint, evaluation from its saved predictions. A unit
whose config changed since it ran is an error naming the keys (`--from UNIT` redoes it and what
follows). A stop signal is passed on to the running child, which checkpoints; the pipeline then
exits 3 and the same command resumes it. `UNIT_TABLE` names each unit's planner and the type of the
outputs its manifest holds (outputs.py), which later units and the report read back.

A training unit trains LoRA adapters when `pipeline.lora_units` says so (model.lora's settings); it
then exports its checkpoint merged (`<unit>/merged`, `redone convert mcore-to-hf`), evaluates that and
hands it on as the next unit's `model.init_from`.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.report import load_report
from nemo_recipes.checkpoint.files import latest_checkpoint
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError, config_hash
from nemo_recipes.config.pipeline import LAUNCH_KEYS, UNITS, UnitName
from nemo_recipes.data.hard_tasks import hard_task_weights, late_pass_rates
from nemo_recipes.data.rl_prompts import read_prompt_records
from nemo_recipes.metrics import summarize_metrics
from nemo_recipes.pipeline.child_process import STOPPED, ChildRunner
from nemo_recipes.pipeline.errors import PipelineError
from nemo_recipes.pipeline.manifest import changed_keys, file_digest, read_manifest, write_manifest
from nemo_recipes.pipeline.outputs import (
    DiagnosisOutputs,
    EvalUnitOutputs,
    FinalOutputs,
    SFTDataOutputs,
    T,
    TrainingOutputs,
    UnitOutputs,
    read_outputs,
    suite_scores,
)
from nemo_recipes.pipeline.plan import PLAN_FILE, Command, Plan
from nemo_recipes.pipeline.report import EVALUATED, unit_scores, write_final_report
from nemo_recipes.preflight import preflight
from nemo_recipes.tasks import load_task_table


@dataclass
class Pipeline:
    cfg: RunConfig
    root: Path
    nproc: int = 1
    verbose: bool = False
    children: ChildRunner = field(init=False)

    def __post_init__(self) -> None:
        self.children = ChildRunner(self.verbose)

    def dir(self, unit: str) -> Path:
        return self.root / unit

    def outputs(self, unit: UnitName, kind: type[T]) -> T:
        """A finished unit's outputs: read as its type in UNIT_TABLE, which must be `kind` or a subclass."""
        outputs = read_outputs(self.dir(unit), UNIT_TABLE[unit].outputs)
        if not isinstance(outputs, kind):
            raise TypeError(f"{unit}'s outputs are {type(outputs).__name__}, not {kind.__name__}")
        return outputs

    def checkpoint(self, unit: UnitName) -> Path:
        return self.outputs(unit, UnitOutputs).checkpoint

    # -- units ------------------------------------------------------------------------------------

    def eval_config(self) -> dict:
        """The evaluation units' run config: the recipe's sections evaluation reads (EVAL_KEYS: its eval
        section, task table, engine, seed, and the model naming the architecture and tokenizer of a
        checkpoint that records neither), the rest at defaults, so that a change to training alone
        leaves the evaluations' config hashes as they were."""
        tree = self.cfg.model_dump(mode="json")
        tree["model"]["lora"] = None  # a LoRA checkpoint is evaluated with its own settings (lora.json)
        return RunConfig.model_validate({key: tree[key] for key in EVAL_KEYS}).model_dump(mode="json")

    def eval_command(self, unit: str, model: Callable[[], Path]) -> Command:
        out = self.dir(unit)
        return Command(
            lambda: [
                *("eval", str(model()), "--config", str(out / "eval.yaml"), "--out", str(out / "eval")),
                *("--label", EVALUATED[unit], "--no-progress"),
            ]
        )

    def stage_config(self, run_dir: Path, **updates: Any) -> dict:
        """The run config of one unit: the recipe with the unit's run_dir and `updates` (dotted keys)."""
        tree = self.cfg.model_dump(mode="json")
        tree["run_dir"] = str(run_dir)
        for key in LAUNCH_KEYS:
            del tree["pipeline"][key]
        del tree["pipeline"]["lora_units"]  # a unit's own model.lora says whether it trains adapters
        for dotted, value in updates.items():
            node = tree
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node[key]
            node[leaf] = value
        return RunConfig.model_validate(tree).model_dump(mode="json")

    def plan_base_eval(self) -> Plan:
        base = Path(self.cfg.model.init_from)
        return Plan(
            {"eval.yaml": self.eval_config()},
            [self.eval_command("base_eval", lambda: base)],
            base,
            self.cfg.eval.data,
            lambda: self.eval_outputs("base_eval", base),
        )

    def plan_training(self, unit: str, command: str, parent: Path, data: list[str], **updates) -> Plan:
        """Train from `parent`, then evaluate. A LoRA unit (`trains_lora`) exports its adapters merged
        into `<unit>/merged` (an HF directory) in between: its model, evaluated and handed on."""
        out, lora = self.dir(unit), self.trains_lora(unit)
        stage = self.stage_config(
            out, **{"model.init_from": str(parent), **({} if lora else {"model.lora": None}), **updates}
        )
        merged = out / "merged"

        def model() -> Path:
            return merged if lora else self.final_checkpoint(unit)

        def export() -> list[str] | None:
            if (merged / "config.json").is_file():  # published atomically
                return None
            checkpoint = str(self.final_checkpoint(unit))
            return ["convert", "mcore-to-hf", checkpoint, str(merged), "--dtype", self.cfg.model.dtype]

        train = Command(lambda: [command, str(out / "stage.yaml")], training=True)
        return Plan(
            {"stage.yaml": stage, "eval.yaml": self.eval_config()},
            [train, *([Command(export)] if lora else []), self.eval_command(unit, model)],
            parent,
            data,
            lambda: TrainingOutputs(
                **asdict(self.eval_outputs(unit, model())),
                training=summarize_metrics(out / "metrics.jsonl"),
                adapters=self.final_checkpoint(unit) if lora else None,
            ),
        )

    def trains_lora(self, unit: str) -> bool:
        """Whether a training unit trains LoRA adapters: those `pipeline.lora_units` names, every one
        when it is null and model.lora is set, none without model.lora."""
        units = self.cfg.pipeline.lora_units
        return self.cfg.model.lora is not None and (units is None or unit in units)

    def final_checkpoint(self, unit: str) -> Path:
        checkpoint = latest_checkpoint(self.dir(unit) / "checkpoints")
        if checkpoint is None:
            raise PipelineError(f"{unit}: the stage finished without a checkpoint")
        return checkpoint

    def eval_outputs(self, unit: UnitName, checkpoint: Path) -> EvalUnitOutputs:
        report = self.dir(unit) / "eval" / "report.json"
        scores = {suite: s.score for suite, s in suite_scores(load_report(report)).items()}
        return EvalUnitOutputs(checkpoint, report, scores)

    def plan_stage1_grpo(self) -> Plan:
        base = self.checkpoint("base_eval")
        return self.plan_training("stage1_grpo", "grpo", base, self.cfg.grpo.train_data)

    def plan_diagnosis(self) -> Plan:
        stage1 = self.outputs("stage1_grpo", TrainingOutputs)
        base = self.outputs("base_eval", EvalUnitOutputs)
        stage = self.stage_config(
            self.root,
            **{
                "diagnosis.model": str(stage1.checkpoint),
                "diagnosis.base_model": str(base.checkpoint),
                "diagnosis.model_report": str(stage1.eval_report),
                "diagnosis.base_report": str(base.eval_report),
            },
        )
        diagnosis = self.dir("diagnosis") / "diagnosis.json"

        def outputs() -> DiagnosisOutputs:
            selected = json.loads(diagnosis.read_text(encoding="utf-8"))["selected"]
            return DiagnosisOutputs(stage1.checkpoint, diagnosis, selected)

        return Plan(
            {"stage.yaml": stage},
            [Command(lambda: ["diagnose", str(self.dir("diagnosis") / "stage.yaml")])],
            stage1.checkpoint,
            [],
            outputs,
        )

    def plan_sft_data(self) -> Plan:
        stage1 = self.checkpoint("stage1_grpo")
        stage = self.stage_config(
            self.root,
            **{
                "sft_data.diagnosis": str(self.outputs("diagnosis", DiagnosisOutputs).diagnosis),
                "sft_data.rehearsal_model": str(stage1),
            },
        )
        out = self.dir("sft_data")

        def outputs() -> SFTDataOutputs:
            stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
            return SFTDataOutputs(stage1, out / "train.jsonl", file_digest(out / "train.jsonl"), stats)

        data = self.cfg.sft_data.sns_data + self.cfg.sft_data.general_data
        return Plan(
            {"stage.yaml": stage},
            [Command(lambda: ["build-sft-data", str(out / "stage.yaml")])],
            stage1,
            data,
            outputs,
        )

    def plan_stage2_sft(self) -> Plan:
        train = str(self.outputs("sft_data", SFTDataOutputs).train)
        return self.plan_training(
            "stage2_sft", "sft", self.checkpoint("stage1_grpo"), [train], **{"sft.train_data": [train]}
        )

    def plan_stage3_grpo(self) -> Plan:
        refine = self.cfg.pipeline.refine
        data = refine.train_data or self.cfg.grpo.train_data
        weights = self.stage3_weights(data)
        plan = self.plan_training(
            "stage3_grpo",
            "grpo",
            self.checkpoint("stage2_sft"),
            data,
            **{
                "grpo.train_steps": refine.train_steps or self.cfg.grpo.train_steps,
                "grpo.train_data": data,
                "grpo.task_weights": {t: w["weight"] for t, w in weights.items()},
            },
        )
        plan.files["task_weights.json"] = weights
        return plan

    def stage3_weights(self, data: list[str]) -> dict[str, dict]:
        """Stage 3's task weights, tilted toward what the diagnosis and stage 1's pass rates call hard:
        one for each task that has records in stage 3's data (no other task can be drawn)."""
        grpo = self.cfg.grpo
        table = load_task_table(*self.cfg.task_tables)
        key = "pipeline.refine.train_data" if self.cfg.pipeline.refine.train_data else "grpo.train_data"
        read = read_prompt_records(data, table, grpo.on_bad_record, key)
        tasks = sorted({record.task for record, _ in read.records})
        base = {t: grpo.task_weights.get(t, table.spec(t).sampling_weight) for t in tasks}
        rates = late_pass_rates(
            self.dir("stage1_grpo") / "metrics.jsonl", self.cfg.pipeline.refine.pass_rate_window_steps
        )
        selected = self.outputs("diagnosis", DiagnosisOutputs).selected
        weights = hard_task_weights(tasks, base, selected, rates, self.cfg.pipeline.refine)
        return {t: asdict(w) for t, w in weights.items()}

    def example_budget(self) -> dict[str, int]:
        """The training examples of the RL-first path: stage 1's and stage 3's prompts (steps x
        prompts_per_step, the stages ran to their end) and stage 2's conversations (its metrics)."""
        grpo, refine = self.cfg.grpo, self.cfg.pipeline.refine
        stage2 = self.outputs("stage2_sft", TrainingOutputs).training
        if "conversations_seen" not in stage2:
            raise PipelineError(
                "stage2_sft's metrics do not count its conversations: rerun it (--from stage2_sft)"
            )
        return {
            "stage1_grpo": grpo.train_steps * grpo.prompts_per_step,
            "stage2_sft": int(stage2["conversations_seen"]),
            "stage3_grpo": (refine.train_steps or grpo.train_steps) * grpo.prompts_per_step,
        }

    def plan_baseline_sft(self) -> Plan:
        """SFT-only: the base, SFT on the SNS task records for as many examples as the RL-first path
        (epochs = budget / records, so that it sees about as many conversations)."""
        data = self.cfg.pipeline.baseline_sft_data or self.cfg.sft_data.sns_data
        key = "pipeline.baseline_sft_data" if self.cfg.pipeline.baseline_sft_data else "sft_data.sns_data"
        table = load_task_table(*self.cfg.task_tables)
        records = len(read_prompt_records(data, table, self.cfg.sft.on_bad_record, key).records)
        budget = self.example_budget()
        plan = self.plan_training(
            "baseline_sft",
            "sft",
            self.checkpoint("base_eval"),
            data,
            **{
                "sft.train_data": data,
                "sft.record_format": "task",
                "sft.valid_data": [],
                "sft.train_steps": None,
                "sft.epochs": sum(budget.values()) / records,
            },
        )
        plan.files["example_budget.json"] = {"rl_first": budget, "baseline_records": records}
        return plan

    def plan_final(self) -> Plan:
        trained = self.outputs("stage3_grpo", TrainingOutputs)
        stage3 = trained.checkpoint
        hf = self.dir("final") / "hf"

        def export() -> list[str] | None:  # stage 3's own checkpoint: LoRA adapters are merged
            if not self.cfg.pipeline.export_hf or (hf / "config.json").is_file():  # published atomically
                return None
            return ["convert", "mcore-to-hf", str(trained.trained), str(hf), "--dtype", self.cfg.model.dtype]

        commands = [Command(export)]

        def outputs() -> FinalOutputs:
            report = write_final_report(self.root, self.dir("final"))
            return FinalOutputs(
                stage3,
                hf_dir=hf if self.cfg.pipeline.export_hf else None,
                report=report,
            )

        return Plan({}, commands, stage3, [], outputs)

    # -- running ----------------------------------------------------------------------------------

    def plan(self, unit: UnitName) -> Plan:
        return UNIT_TABLE[unit].plan(self)

    def run(self, redo_from: str | None = None) -> int:
        """Run every unfinished unit in order; 0 when done, STOPPED after a stop signal."""
        if redo_from is not None:
            self.set_aside(redo_from)
        parent_manifest = None
        for unit in UNIT_TABLE:
            if not self.enabled(unit):
                continue
            finished = read_manifest(self.dir(unit))
            plan = self.plan(unit)
            digest = config_hash(plan.files)
            if finished is not None:
                self.check_unchanged(unit, finished["config_hash"], plan, digest)
                self.say(f"{unit}: finished earlier, skipped")
            else:
                attempted = self.recorded_files(unit)
                self.check_unchanged(unit, attempted and attempted["config_hash"], plan, digest)
                if self.run_unit(unit, plan, digest, parent_manifest) == STOPPED:
                    self.say(f"{unit}: stopped ({self.children.stopped[0]}); the same command resumes")
                    return STOPPED
            parent_manifest = unit
            if unit == self.cfg.pipeline.stop_after:
                self.say(f"stopped after {unit} (pipeline.stop_after)")
                return 0
        self.say(f"report: {self.dir('final') / 'report.md'}")
        return 0

    def enabled(self, unit: UnitName) -> bool:
        """Every unit runs but the SFT-only arm, which runs with `pipeline.baseline_sft: true`."""
        return unit != "baseline_sft" or self.cfg.pipeline.baseline_sft

    def recorded_files(self, unit: str) -> dict | None:
        """The config files an interrupted attempt of `unit` wrote, as a pseudo-manifest (or None)."""
        recorded = self.dir(unit) / PLAN_FILE
        return json.loads(recorded.read_text(encoding="utf-8")) if recorded.is_file() else None

    def check_unchanged(self, unit: str, recorded_hash: str | None, plan: Plan, digest: str) -> None:
        """The unit ran (or started) with `recorded_hash`: it must be what it would run with now."""
        if recorded_hash is None or recorded_hash == digest:
            return
        recorded = self.recorded_files(unit)
        keys = changed_keys(recorded["files"], plan.files) if recorded else ["(config files missing)"]
        raise ConfigError(
            f"{unit}: its config changed since it ran ({', '.join(keys[:12])}); "
            f"rerun with `--from {unit}` to redo it and the units after it"
        )

    def run_unit(self, unit: str, plan: Plan, digest: str, parent: str | None) -> int:
        out = self.dir(unit)
        out.mkdir(parents=True, exist_ok=True)
        plan.write_files(out, digest)
        started, clock = datetime.now(UTC).isoformat(timespec="seconds"), time.perf_counter()
        self.say(f"{unit}: running (log: {out / 'log.txt'})")
        with open(out / "log.txt", "a", encoding="utf-8") as log:
            log.write(f"{ATTEMPT_MARK} {started}\n")
        commands = []
        for command in plan.commands:
            argv = command.argv()
            if argv is None:
                continue
            commands.append(argv)
            code = self.children.run(self.child_command(argv, command.training), out / "log.txt")
            if self.children.stopped:
                return STOPPED
            if code != 0:
                raise PipelineError(
                    f"{unit}: `redone {' '.join(argv)}` exited {code}; its log {out / 'log.txt'} ends:\n"
                    + _tail(out / "log.txt")
                )
        parent_dir = self.dir(parent) if parent else None
        outputs = plan.outputs()
        manifest = {
            "unit": unit,
            "commands": [["redone", *argv] for argv in commands],
            "config_hash": digest,
            "config_files": sorted(plan.files),
            "data": {name: file_digest(resolve_asset(name, "data")) for name in plan.data},
            "parent": parent,
            "parent_manifest_sha256": file_digest(parent_dir / "manifest.json") if parent_dir else None,
            "parent_checkpoint": str(plan.parent_checkpoint) if plan.parent_checkpoint else None,
            "outputs": outputs.to_json(),
            "started": started,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - clock, 1),
            "attempts": self.count_attempts(out),
            "processes": self.nproc,
        }
        write_manifest(out, manifest)
        scores = unit_scores(outputs)
        self.say(f"{unit}: done in {manifest['seconds']:.0f} s" + (f" ({scores})" if scores else ""))
        return 0

    @staticmethod
    def count_attempts(out: Path) -> int:
        """Attempts at a unit: this one plus the interrupted ones before it (counted in log.txt)."""
        log = out / "log.txt"
        return log.read_text(encoding="utf-8", errors="replace").count(ATTEMPT_MARK) if log.exists() else 1

    def child_command(self, argv: list[str], training: bool) -> list[str]:
        launch = self.cfg.pipeline
        base = [*(launch.command or [sys.executable, "-m", "nemo_recipes.cli"]), *argv]
        if not training:
            return [*launch.single_launcher, *base]
        if launch.launcher:
            return [*launch.launcher, *base]  # it starts the ranks (`--nproc` is their number)
        return [*base, "--nproc", str(self.nproc)] if self.nproc > 1 else base

    def set_aside(self, unit: str) -> None:
        """Move `unit`'s directory and those after it to run_dir/replaced/<time>/ (nothing is deleted)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        for name in UNITS[UNITS.index(unit) :]:
            if self.dir(name).exists():
                dest = self.root / "replaced" / stamp / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(self.dir(name)), dest)
                self.say(f"{name}: set aside in {dest}")

    def say(self, text: str) -> None:
        print(f"[run] {text}", flush=True)


@dataclass(frozen=True)
class Unit:
    """A unit of the pipeline: how it plans its run, and the type of the outputs its manifest holds."""

    plan: Callable[[Pipeline], Plan]
    outputs: type[UnitOutputs]


UNIT_TABLE: dict[UnitName, Unit] = {
    "base_eval": Unit(Pipeline.plan_base_eval, EvalUnitOutputs),
    "stage1_grpo": Unit(Pipeline.plan_stage1_grpo, TrainingOutputs),
    "diagnosis": Unit(Pipeline.plan_diagnosis, DiagnosisOutputs),
    "sft_data": Unit(Pipeline.plan_sft_data, SFTDataOutputs),
    "stage2_sft": Unit(Pipeline.plan_stage2_sft, TrainingOutputs),
    "stage3_grpo": Unit(Pipeline.plan_stage3_grpo, TrainingOutputs),
    "baseline_sft": Unit(Pipeline.plan_baseline_sft, TrainingOutputs),
    "final": Unit(Pipeline.plan_final, FinalOutputs),
}
"""The units in the order they run: the order of config.pipeline.UNITS (a test checks that they agree)."""

ATTEMPT_MARK = "=== redone run:"
EVAL_KEYS = ("seed", "task_table", "general_task_table", "engine", "model", "eval")
"""The run config's sections `redone eval` reads."""


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in text)


def run_pipeline(cfg: RunConfig, nproc: int = 1, verbose: bool = False, redo_from: str | None = None) -> int:
    """Check the recipe, then run (or resume) the pipeline it describes; returns the exit code."""
    preflight(cfg, nproc, "run")
    root = cfg.run_dir.resolve()
    cfg = cfg.model_copy(deep=True, update={"run_dir": root})
    cfg.model.init_from = cfg.model.init_from.resolve()  # stage configs name it from any directory
    return Pipeline(cfg, root, nproc, verbose).run(redo_from)
