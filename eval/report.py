"""Eval reports: report.json, a Markdown summary and PNG plots, for one model or several side by side.

`compare` takes reports in order (checkpoints of one run, the stages of a pipeline, other models):
a table of every suite and task score per report, a grouped bar chart of the task scores
(`tasks.png`) and the suite scores per report as lines (`seesaw.png`: in-domain vs general).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from eval.scoring import SUITES

SUITE_TITLES = {"sns": "SNS", "translation": "Translation", "general": "General"}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_report(path: Path) -> dict:
    """A report.json, or the eval directory holding one."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no report.json (run `redone eval` first)")
    return json.loads(file.read_text(encoding="utf-8"))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(reports: Sequence[dict]) -> str:
    """Suite scores, then per suite every task's score, one column per report."""
    labels = [r["label"] for r in reports]
    head = "| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    lines = ["# Evaluation", "", "## Suites (0-100)", "", head.rstrip("\n")]
    for suite in SUITES:
        row = [_fmt(r["suites"].get(suite, {}).get("score")) for r in reports]
        lines.append(f"| {SUITE_TITLES[suite]} | " + " | ".join(row) + " |")
    for suite in SUITES:
        tasks = sorted({t for r in reports for t in r["suites"].get(suite, {}).get("tasks", {})})
        if not tasks:
            continue
        lines += ["", f"## {SUITE_TITLES[suite]} tasks", "", head.rstrip("\n")]
        for task in tasks:
            row = [
                _fmt(r["suites"].get(suite, {}).get("tasks", {}).get(task, {}).get("score")) for r in reports
            ]
            lines.append(f"| {task} | " + " | ".join(row) + " |")
        capabilities = sorted(
            {c for r in reports for c in r["suites"].get(suite, {}).get("capabilities", {})}
        )
        for capability in capabilities:
            row = [_fmt(r["suites"].get(suite, {}).get("capabilities", {}).get(capability)) for r in reports]
            lines.append(f"| capability: {capability} | " + " | ".join(row) + " |")
        if suite == "translation":
            for direction in ("zh-en", "en-zh"):
                for metric in ("bleu", "chrf++"):
                    row = [
                        _fmt(r["suites"].get(suite, {}).get("directions", {}).get(direction, {}).get(metric))
                        for r in reports
                    ]
                    lines.append(f"| {direction} {metric} (corpus) | " + " | ".join(row) + " |")
    lines += ["", "Models:", ""] + [f"- {r['label']}: `{r['model']}` ({_items(r)})" for r in reports]
    for r in reports:
        skipped = r.get("skipped_records", [])
        if skipped:
            lines += ["", f"Records skipped for {r['label']} (on_bad_record: skip):", ""]
            lines += [f"- {error}" for error in skipped]
    return "\n".join(lines) + "\n"


def _items(report: dict) -> str:
    """`N items`, and how many bad records were skipped when any were."""
    skipped = len(report.get("skipped_records", []))
    return f"{report['items']} items" + (f", {skipped} bad records skipped" if skipped else "")


def _pyplot():
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, ax, ylabel: str, title: str, path: Path) -> None:
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tasks(reports: Sequence[dict], path: Path) -> None:
    """Grouped bars: every task's score, one bar per report."""
    plt = _pyplot()
    tasks = sorted({(s, t) for r in reports for s, res in r["suites"].items() for t in res["tasks"]})
    width = 0.8 / len(reports)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(tasks) * max(1, len(reports) / 2)), 4.5))
    for i, report in enumerate(reports):
        values = [report["suites"].get(s, {}).get("tasks", {}).get(t, {}).get("score", 0.0) for s, t in tasks]
        ax.bar([x + i * width for x in range(len(tasks))], values, width, label=report["label"])
    ax.set_xticks([x + width * (len(reports) - 1) / 2 for x in range(len(tasks))])
    ax.set_xticklabels([t for _, t in tasks], rotation=60, ha="right", fontsize=8)
    _save(plt, fig, ax, "score (0-100)", "Per-task scores", path)


def plot_seesaw(reports: Sequence[dict], path: Path) -> None:
    """Suite scores per report, in order: in-domain (SNS, translation) against general."""
    plt = _pyplot()
    labels = [r["label"] for r in reports]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels)), 4.0))
    for suite in SUITES:
        values = [r["suites"].get(suite, {}).get("score") for r in reports]
        if any(v is not None for v in values):
            ax.plot(
                labels,
                [float("nan") if v is None else v for v in values],
                marker="o",
                label=SUITE_TITLES[suite],
            )
    _save(plt, fig, ax, "suite score (0-100)", "In-domain vs general (the seesaw)", path)


def write_report(out: Path, report: dict) -> None:
    """report.json, report.md and tasks.png of one evaluation."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(out / "report.md", markdown([report]))
    plot_tasks([report], out / "tasks.png")


def compare(reports: Sequence[dict], out: Path) -> Path:
    """Side-by-side comparison.md, tasks.png and seesaw.png of several reports; returns the Markdown."""
    if not reports:
        raise ValueError("compare needs at least one report")
    out.mkdir(parents=True, exist_ok=True)
    md = out / "comparison.md"
    _atomic_write(md, markdown(reports))
    plot_tasks(reports, out / "tasks.png")
    plot_seesaw(reports, out / "seesaw.png")
    return md
