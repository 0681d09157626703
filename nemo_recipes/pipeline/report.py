"""The pipeline's final report: every task across the stages, the seesaw plot, what each unit did.

Writes into `run_dir/final/`: `comparison.md`, `comparison.json`, `tasks.png` and `seesaw.png`
(eval.report.compare over the base model and the three stages, and the SFT-only arm when it ran:
scores with their 95 % intervals, each stage's difference from the one before, the last from the base
and from the SFT-only arm with paired bootstrap intervals), `summary.json` (the scores and intervals by
stage, the recipe's claims, for tools and tests) and `report.md` (the stage table with each suite
score's interval, the claims, the diagnosis, stage 3's weights, the comparison), from the eval reports
and the units' typed outputs (outputs.py). Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.report import compare, format_score, load_report
from nemo_recipes.checkpoint.files import LORA_FILE, read_lora_record
from nemo_recipes.config.pipeline import TRAINING_UNITS, UNITS
from nemo_recipes.data.hard_tasks import TaskWeight
from nemo_recipes.pipeline.claims import BASELINE, check_claims, versus_baseline
from nemo_recipes.pipeline.errors import PipelineError
from nemo_recipes.pipeline.manifest import read_manifest
from nemo_recipes.pipeline.outputs import (
    DiagnosisOutputs,
    EvalUnitOutputs,
    SFTDataOutputs,
    TrainingOutputs,
    UnitOutputs,
    read_outputs,
    suite_scores,
)

STAGE_LABELS = {
    "base_eval": "base",
    "stage1_grpo": "stage1 RL",
    "stage2_sft": "stage2 SFT",
    "stage3_grpo": "stage3 RL",
}
"""The RL-first path's evaluated units, in order, and their names in reports."""
BASELINE_UNIT = "baseline_sft"
EVALUATED = STAGE_LABELS | {BASELINE_UNIT: BASELINE}
"""Every evaluated unit: the path and the SFT-only arm (when it ran)."""


def scores_by_stage(reports: dict[str, dict]) -> dict:
    """{"suites": {suite: {label: score}}, "tasks": {task: {label: score}}, "intervals": {suite:
    {label: [lo, hi] or None}}} from each label's eval report."""
    suites: dict[str, dict] = {}
    tasks: dict[str, dict] = {}
    intervals: dict[str, dict] = {}
    for label, report in reports.items():
        for suite, result in suite_scores(report).items():
            suites.setdefault(suite, {})[label] = result.score
            intervals.setdefault(suite, {})[label] = report["suites"][suite].get("interval")
            for task, score in result.tasks.items():
                tasks.setdefault(task, {})[label] = score
    return {"suites": suites, "tasks": dict(sorted(tasks.items())), "intervals": intervals}


def format_scores(
    scores: dict[str, float | None], intervals: dict[str, list[float] | None] | None = None
) -> str:
    """`sns 9.0, translation 3.8, general 0.0` (suites without a score left out), each with its 95 %
    interval when `intervals` (suite -> [lo, hi], an eval report's) gives one: `sns 9.0 [7.5, 10.4]`."""
    intervals = intervals or {}
    return ", ".join(
        f"{suite} {format_score(value, intervals.get(suite))}"
        for suite, value in scores.items()
        if value is not None
    )


def unit_scores(outputs: UnitOutputs, intervals: dict[str, list[float] | None] | None = None) -> str:
    """An evaluated unit's suite scores (`format_scores`); '' for the other units."""
    return format_scores(outputs.scores, intervals) if isinstance(outputs, EvalUnitOutputs) else ""


def suite_intervals(report: dict) -> dict[str, list[float] | None]:
    """Suite -> the 95 % interval of its score in an eval report (None where it has none)."""
    return {suite: result.get("interval") for suite, result in report["suites"].items()}


def _stage_table(root: Path, intervals: dict[str, dict[str, list[float] | None]]) -> list[str]:
    """One row per finished unit; `intervals`: the evaluated units' suite intervals."""
    lines = ["| unit | seconds | attempts | checkpoint | scores |", "|---|---|---|---|---|"]
    for unit in UNITS[:-1]:
        manifest = read_manifest(root / unit)
        if manifest is None:
            continue
        outputs = read_outputs(root / unit, EvalUnitOutputs if unit in EVALUATED else UnitOutputs)
        cells = [
            unit,
            f"{manifest['seconds']:.0f}",
            str(manifest["attempts"]),
            f"`{outputs.checkpoint}`",
            unit_scores(outputs, intervals.get(unit)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def training_method(outputs: TrainingOutputs) -> str:
    """How a training unit trained: `LoRA rank r, alpha a on <targets>; base <path> (sha256 <12
    chars>)` from its checkpoint's LoRA record, or `full fine-tune`."""
    record = read_lora_record(outputs.trained)
    if record is None:
        if outputs.adapters is not None:
            raise PipelineError(f"{outputs.adapters}: a LoRA unit's checkpoint without its {LORA_FILE}")
        return "full fine-tune"
    lora = record["lora"]
    return (
        f"LoRA rank {lora['rank']}, alpha {lora['alpha']:g} on {', '.join(lora['target_modules'])}; "
        f"base {record['base']} (sha256 {record['base_sha256'][:12]})"
    )


def _training_lines(root: Path) -> list[str]:
    """`- <unit>: <training_method>` per finished training unit."""
    return [
        f"- {unit}: {training_method(read_outputs(root / unit, TrainingOutputs))}"
        for unit in TRAINING_UNITS
        if read_manifest(root / unit) is not None
    ]


def evaluated_reports(root: Path) -> dict[str, dict]:
    """Label -> eval report of every evaluated unit of the run under `root` (the SFT-only arm's only
    when it finished)."""
    reports = {}
    for unit, label in EVALUATED.items():
        if unit == BASELINE_UNIT and read_manifest(root / unit) is None:
            continue
        reports[label] = load_report(root / unit / "eval") | {"label": label}
    return reports


def _baseline_lines(root: Path, reports: dict[str, dict]) -> list[str]:
    """The SFT-only comparison in words, with the example budgets both arms trained on."""
    sentence = versus_baseline(reports)
    if sentence is None:
        return []
    budget = json.loads((root / BASELINE_UNIT / "example_budget.json").read_text(encoding="utf-8"))
    seen = read_outputs(root / BASELINE_UNIT, TrainingOutputs).training.get("conversations_seen")
    rl_first = budget["rl_first"]
    return [
        "",
        f"{sentence}.",
        "",
        f"Example budget: RL-first {sum(rl_first.values())} ("
        + ", ".join(f"{unit} {n}" for unit, n in rl_first.items())
        + f"; a prompt or a conversation counts as one); SFT-only {seen} conversations drawn from "
        f"{budget['baseline_records']} SNS records.",
    ]


def write_final_report(root: Path, out: Path) -> Path:
    """Write the final report of the pipeline run under `root`; returns report.md."""
    reports = evaluated_reports(root)
    intervals = {
        unit: suite_intervals(reports[label]) for unit, label in EVALUATED.items() if label in reports
    }
    path = [reports[label] for label in STAGE_LABELS.values()]
    compare(path, out, reports.get(BASELINE))
    selected = read_outputs(root / "diagnosis", DiagnosisOutputs).selected
    claims = check_claims(reports, selected)
    summary = scores_by_stage(reports) | {"claims": [c.to_json() for c in claims]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    stats = read_outputs(root / "sft_data", SFTDataOutputs).stats
    weights_file = root / "stage3_grpo" / "task_weights.json"
    weights = {t: TaskWeight(**w) for t, w in json.loads(weights_file.read_text(encoding="utf-8")).items()}
    lines = [
        "# redone pipeline report",
        "",
        f"Run directory: `{root}`",
        "",
        "![in-domain vs general per stage](seesaw.png)",
        "",
        "## Units",
        "",
        *_stage_table(root, intervals),
        "",
        "## How each stage trained",
        "",
        *_training_lines(root),
        "",
        "## The recipe's claims (paired 95 % intervals)",
        "",
        *(f"- {claim.line()}" for claim in claims),
        *_baseline_lines(root, reports),
        "",
        "## Diagnosis (after stage 1)",
        "",
        f"Selected for stage 2: {', '.join(selected) or 'none'} "
        f"(details: `{root / 'diagnosis' / 'diagnosis.md'}`)",
        "",
        f"Stage 2 data: {stats['total']} records, {stats['targeted']['records']} from the selected tasks, "
        f"rehearsal share {stats['rehearsal_share']:.3f}.",
        "",
        "## Stage 3 task weights",
        "",
        "| task | weight | stage 1 weight | stage 1 pass rate | diagnosed |",
        "|---|---|---|---|---|",
    ]
    for task, w in weights.items():
        rate = "-" if w.pass_rate is None else f"{w.pass_rate:.2f}"
        diagnosed = "yes" if w.diagnosed else ""
        lines.append(f"| {task} | {w.weight:.2f} | {w.base_weight:.2f} | {rate} | {diagnosed} |")
    comparison = (out / "comparison.md").read_text(encoding="utf-8")
    lines += ["", comparison.replace("# Evaluation", "## Scores by stage", 1)]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
