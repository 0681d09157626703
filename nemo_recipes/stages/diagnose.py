"""The diagnosis after stage 1: score every task, name the weak ones, write down why.

`diagnose` is the rule (pure: task scores in, decisions out); `run_diagnose` evaluates the diagnosed
model (and the base model, when the regression rule or the report wants it) with `redone eval`'s code
and writes `diagnosis.json` and `diagnosis.md` under `run_dir/diagnosis/`.

Rules (any enabled one selects a task; scores on 0-100): below a target score; more than a margin
below the base model; among the k weakest; more than a gap below a reference score.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eval.report import load_report
from eval.runner import run_eval
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.stage2 import DiagnosisConfig


@dataclass(frozen=True)
class TaskScore:
    suite: str
    capability: str
    score: float


@dataclass
class TaskDecision:
    suite: str
    capability: str
    score: float
    base_score: float | None
    reference_score: float | None
    selected: bool = False
    reasons: list[str] = field(default_factory=list)


def task_scores(report: Mapping, suites: list[str]) -> dict[str, TaskScore]:
    """Task -> score of an eval report (report.json), for the tasks of `suites`."""
    out = {}
    for suite in suites:
        for task, result in report["suites"].get(suite, {}).get("tasks", {}).items():
            out[task] = TaskScore(suite, result["capability"], result["score"])
    return out


def diagnose(
    scores: Mapping[str, TaskScore], base: Mapping[str, TaskScore] | None, cfg: DiagnosisConfig
) -> dict[str, TaskDecision]:
    """Apply every enabled rule of `cfg` to the diagnosed model's task scores."""
    if cfg.regression_margin is not None and base is None:
        raise ConfigError("diagnosis.regression_margin needs diagnosis.base_model (scores to compare with)")
    decisions = {
        task: TaskDecision(
            s.suite,
            s.capability,
            s.score,
            base[task].score if base and task in base else None,
            cfg.reference_scores.get(task),
        )
        for task, s in sorted(scores.items())
    }

    def select(task: str, reason: str) -> None:
        decisions[task].selected = True
        decisions[task].reasons.append(reason)

    for task, d in decisions.items():
        if cfg.below_target is not None and d.score < cfg.below_target:
            select(task, f"below target: {d.score:.1f} < {cfg.below_target:.1f}")
        margin = cfg.regression_margin
        if margin is not None and d.base_score is not None and d.score < d.base_score - margin:
            select(task, f"regressed: {d.score:.1f} vs base {d.base_score:.1f} (margin {margin:.1f})")
        gap = None if d.reference_score is None else d.reference_score - d.score
        if cfg.reference_gap is not None and gap is not None and gap > cfg.reference_gap:
            select(task, f"gap to reference {gap:.1f} > {cfg.reference_gap:.1f} ({d.reference_score:.1f})")
    if cfg.k_weakest is not None:
        ranked = sorted(decisions, key=lambda t: (decisions[t].score, t))
        for rank, task in enumerate(ranked[: cfg.k_weakest], start=1):
            select(task, f"weakest #{rank} of {len(ranked)} ({decisions[task].score:.1f})")
    return decisions


def markdown(decisions: Mapping[str, TaskDecision]) -> str:
    selected = [t for t, d in decisions.items() if d.selected]
    lines = [
        "# Diagnosis",
        "",
        f"Selected for stage 2 ({len(selected)} of {len(decisions)}): {', '.join(selected) or 'none'}",
        "",
        "| task | capability | base | model | change | selected | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, d in decisions.items():
        base = "-" if d.base_score is None else f"{d.base_score:.1f}"
        change = "-" if d.base_score is None else f"{d.score - d.base_score:+.1f}"
        cells = [
            task,
            d.capability,
            base,
            f"{d.score:.1f}",
            change,
            "yes" if d.selected else "",
            "; ".join(d.reasons),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_diagnosis(
    out: Path, decisions: Mapping[str, TaskDecision], cfg: DiagnosisConfig, sources: dict
) -> Path:
    """diagnosis.json (decisions, rule, the reports used) and diagnosis.md; returns the JSON path."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "selected": [t for t, d in decisions.items() if d.selected],
        "tasks": {t: asdict(d) for t, d in decisions.items()},
        "rule": cfg.model_dump(mode="json"),
        "sources": sources,
    }
    path = out / "diagnosis.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "diagnosis.md").write_text(markdown(decisions), encoding="utf-8")
    return path


def _report(model: Path, report: Path | None, cfg: RunConfig, out: Path, label: str) -> dict:
    """`model`'s eval report: the given one, or a fresh evaluation under `out`."""
    if report is not None:
        try:
            return load_report(report)
        except FileNotFoundError as e:
            raise ConfigError(f"diagnosis.{label}_report: {e}") from e
    return run_eval(model, cfg, out, label=label)


def run_diagnose(cfg: RunConfig) -> Path:
    """Evaluate the diagnosed (and base) model, apply the rule, write the diagnosis; returns its JSON."""
    diag = cfg.diagnosis
    if diag.model is None:
        raise ConfigError("diagnosis.model is not set: the checkpoint (or HF directory) to diagnose")
    if diag.base_report is not None and diag.base_model is None:
        raise ConfigError("diagnosis.base_report is set but diagnosis.base_model is not")
    out = cfg.run_dir / "diagnosis"
    report = _report(diag.model, diag.model_report, cfg, out / "eval_model", "model")
    base_report = None
    if diag.base_model is not None:
        base_report = _report(diag.base_model, diag.base_report, cfg, out / "eval_base", "base")
    scores = task_scores(report, diag.suites)
    if not scores:
        raise ConfigError(f"the evaluation has no task of suites {diag.suites}: nothing to diagnose")
    base = task_scores(base_report, diag.suites) if base_report else None
    sources = {
        "model": str(diag.model),
        "base_model": str(diag.base_model) if diag.base_model else None,
        "model_report": str(diag.model_report) if diag.model_report else None,
        "base_report": str(diag.base_report) if diag.base_report else None,
    }
    return write_diagnosis(out, diagnose(scores, base, diag), diag, sources)
