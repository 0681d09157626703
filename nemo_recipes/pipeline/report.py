"""The pipeline's final report: every task across the stages, the seesaw plot, what each unit did.

Writes into `run_dir/final/`: `comparison.md`, `comparison.json`, `tasks.png` and `seesaw.png`
(eval.report.compare over the base model and the three stages: scores with their 95 % intervals, each
stage's difference from the one before and the last from the base with paired bootstrap intervals),
`summary.json` (the scores by stage, for tools and tests) and `report.md` (the stage table with each
suite score's interval, the diagnosis, stage 3's weights, the comparison), from the eval reports and
the units' typed outputs (outputs.py). Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.report import compare, format_score, load_report
from nemo_recipes.config.pipeline import UNITS
from nemo_recipes.data.hard_tasks import TaskWeight
from nemo_recipes.pipeline.manifest import read_manifest
from nemo_recipes.pipeline.outputs import (
    DiagnosisOutputs,
    EvalUnitOutputs,
    SFTDataOutputs,
    SuiteScores,
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
"""The evaluated units, in order, and their names in reports."""


def scores_by_stage(scores: dict[str, dict[str, SuiteScores]]) -> dict:
    """{"suites": {suite: {label: score}}, "tasks": {task: {label: score}}} from each label's suites."""
    suites: dict[str, dict] = {}
    tasks: dict[str, dict] = {}
    for label, by_suite in scores.items():
        for suite, result in by_suite.items():
            suites.setdefault(suite, {})[label] = result.score
            for task, score in result.tasks.items():
                tasks.setdefault(task, {})[label] = score
    return {"suites": suites, "tasks": dict(sorted(tasks.items()))}


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
        outputs = read_outputs(root / unit, EvalUnitOutputs if unit in STAGE_LABELS else UnitOutputs)
        cells = [
            unit,
            f"{manifest['seconds']:.0f}",
            str(manifest["attempts"]),
            f"`{outputs.checkpoint}`",
            unit_scores(outputs, intervals.get(unit)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_final_report(root: Path, out: Path) -> Path:
    """Write the final report of the pipeline run under `root`; returns report.md."""
    reports, intervals = {}, {}
    for unit, label in STAGE_LABELS.items():
        report = load_report(root / unit / "eval")
        report["label"] = label
        reports[label] = report
        intervals[unit] = suite_intervals(report)
    comparison = compare(list(reports.values()), out)
    summary = scores_by_stage({label: suite_scores(report) for label, report in reports.items()})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    selected = read_outputs(root / "diagnosis", DiagnosisOutputs).selected
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
    lines += ["", comparison.read_text(encoding="utf-8").replace("# Evaluation", "## Scores by stage", 1)]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
