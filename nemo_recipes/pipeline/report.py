"""The pipeline's final report: every task across the stages, the seesaw plot, what each unit did.

Writes into `run_dir/final/`: `comparison.md`, `tasks.png` and `seesaw.png` (eval.report.compare over
the base model and the three stages), `summary.json` (the scores by stage, for tools and tests) and
`report.md` (the stage table, the diagnosis, stage 3's weights, the comparison). Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.report import compare, load_report
from nemo_recipes.pipeline.manifest import read_manifest
from nemo_recipes.pipeline_config import UNITS

STAGE_LABELS = {
    "base_eval": "base",
    "stage1_grpo": "stage1 RL",
    "stage2_sft": "stage2 SFT",
    "stage3_grpo": "stage3 RL",
}
"""The evaluated units, in order, and their names in reports."""


def scores_by_stage(reports: dict[str, dict]) -> dict:
    """{"suites": {suite: {label: score}}, "tasks": {task: {label: score}}}."""
    suites: dict[str, dict] = {}
    tasks: dict[str, dict] = {}
    for label, report in reports.items():
        for suite, result in report["suites"].items():
            suites.setdefault(suite, {})[label] = result["score"]
            for task, r in result["tasks"].items():
                tasks.setdefault(task, {})[label] = r["score"]
    return {"suites": suites, "tasks": dict(sorted(tasks.items()))}


def format_scores(scores: dict[str, float | None]) -> str:
    """`sns 9.0, translation 3.8, general 0.0` (suites without a score left out)."""
    return ", ".join(f"{suite} {value:.1f}" for suite, value in scores.items() if value is not None)


def _stage_table(root: Path) -> list[str]:
    lines = ["| unit | seconds | attempts | checkpoint | scores |", "|---|---|---|---|---|"]
    for unit in UNITS[:-1]:
        manifest = read_manifest(root / unit)
        if manifest is None:
            continue
        out = manifest["outputs"]
        scores = format_scores(out.get("scores", {}))
        cells = [
            unit,
            f"{manifest['seconds']:.0f}",
            str(manifest["attempts"]),
            f"`{out['checkpoint']}`",
            scores,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_final_report(root: Path, out: Path) -> Path:
    """Write the final report of the pipeline run under `root`; returns report.md."""
    reports = {}
    for unit, label in STAGE_LABELS.items():
        report = load_report(root / unit / "eval")
        report["label"] = label
        reports[label] = report
    comparison = compare(list(reports.values()), out)
    summary = scores_by_stage(reports)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    diagnosis = json.loads((root / "diagnosis" / "diagnosis.json").read_text(encoding="utf-8"))
    weights = json.loads((root / "stage3_grpo" / "task_weights.json").read_text(encoding="utf-8"))
    stats = json.loads((root / "sft_data" / "stats.json").read_text(encoding="utf-8"))
    lines = [
        "# redone pipeline report",
        "",
        f"Run directory: `{root}`",
        "",
        "![in-domain vs general per stage](seesaw.png)",
        "",
        "## Units",
        "",
        *_stage_table(root),
        "",
        "## Diagnosis (after stage 1)",
        "",
        f"Selected for stage 2: {', '.join(diagnosis['selected']) or 'none'} "
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
        rate = "-" if w["pass_rate"] is None else f"{w['pass_rate']:.2f}"
        diagnosed = "yes" if w["diagnosed"] else ""
        lines.append(f"| {task} | {w['weight']:.2f} | {w['base_weight']:.2f} | {rate} | {diagnosed} |")
    lines += ["", comparison.read_text(encoding="utf-8").replace("# Evaluation", "## Scores by stage", 1)]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
