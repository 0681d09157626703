"""Eval reports: report.json, a Markdown summary and PNG plots, for one model or several side by side.

Scores show their 95 % bootstrap interval as `score [lo, hi]` when the report has one
(eval/intervals.py). `compare` takes reports in order (checkpoints of one run, the stages of a
pipeline, other models): a table of every suite and task score per report, the differences of each
report from the one before it (and of the last from the first) with paired bootstrap intervals
(`comparison.json` holds them too), a grouped bar chart of the task scores (`tasks.png`) and the suite
scores per report as lines with their intervals as bands (`seesaw.png`: in-domain vs general). A
`baseline` (a pipeline's SFT-only arm) is a side branch from the first report: a column of its own,
the last report compared with it, and on the seesaw plot a dashed line from the first report's scores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eval.intervals import (
    CONFIDENCE,
    Difference,
    Key,
    bootstrap_settings,
    differences_json,
    paired_differences,
)
from eval.scoring import DIRECTIONS, SUITES

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


def format_score(value: float | None, interval: Sequence[float] | None = None) -> str:
    """`52.0 [44.0, 60.0]`: a score and its interval (`52.0` without one, `-` without a score)."""
    if value is None or interval is None:
        return _fmt(value)
    return f"{value:.1f} [{interval[0]:.1f}, {interval[1]:.1f}]"


def _cells(reports: Sequence[dict], suite: str, score, interval) -> list[str]:
    """One cell per report: `score(result)` with `interval(result)`, from each report's `suite`."""
    cells = []
    for r in reports:
        result = r["suites"].get(suite, {})
        cells.append(format_score(score(result), interval(result)))
    return cells


def decoding(report: dict) -> str:
    """How a report's responses were decoded: `greedy`, or `avg@k, temperature t` (each item's value
    the mean over k sampled responses); `unknown` for a report without its config."""
    generation = report.get("config", {}).get("eval", {}).get("generation")
    if generation is None:
        return "unknown"
    k, temperature = generation["num_generations_per_prompt"], generation["temperature"]
    return "greedy" if temperature == 0 else f"avg@{k}, temperature {temperature:g}"


def markdown(reports: Sequence[dict], compared: Sequence[Compared] | None = None) -> str:
    """Suite scores, then per suite every task's score, one column per report (`score [lo, hi]` where
    the report has intervals); with several reports, their differences (`compared_pairs`)."""
    labels = [r["label"] for r in reports]
    head = "| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    decodings = {r["label"]: decoding(r) for r in reports}
    said = "; ".join(f"{label}: {how}" for label, how in decodings.items())
    if len(set(decodings.values())) > 1:
        said += " (**decoded differently**: a difference mixes the model and the decoding)"
    lines = ["# Evaluation", "", f"Decoding: {said}.", "", "## Suites (0-100)", "", head.rstrip("\n")]
    for suite in SUITES:
        row = _cells(reports, suite, lambda s: s.get("score"), lambda s: s.get("interval"))
        lines.append(f"| {SUITE_TITLES[suite]} | " + " | ".join(row) + " |")
    for suite in SUITES:
        tasks = sorted({t for r in reports for t in r["suites"].get(suite, {}).get("tasks", {})})
        if not tasks:
            continue
        lines += ["", f"## {SUITE_TITLES[suite]} tasks", "", head.rstrip("\n")]
        for task in tasks:
            row = _cells(
                reports,
                suite,
                lambda s, t=task: s.get("tasks", {}).get(t, {}).get("score"),
                lambda s, t=task: s.get("tasks", {}).get(t, {}).get("interval"),
            )
            lines.append(f"| {task} | " + " | ".join(row) + " |")
        capabilities = sorted(
            {c for r in reports for c in r["suites"].get(suite, {}).get("capabilities", {})}
        )
        for capability in capabilities:
            row = _cells(
                reports,
                suite,
                lambda s, c=capability: s.get("capabilities", {}).get(c),
                lambda s, c=capability: s.get("capability_intervals", {}).get(c),
            )
            lines.append(f"| capability: {capability} | " + " | ".join(row) + " |")
        if suite == "translation":
            for direction in DIRECTIONS:
                for metric in ("bleu", "chrf++"):
                    row = _cells(
                        reports,
                        suite,
                        lambda s, d=direction, m=metric: s.get("directions", {}).get(d, {}).get(m),
                        lambda s, d=direction, m=metric: (
                            s.get("directions", {}).get(d, {}).get("intervals", {}).get(m)
                        ),
                    )
                    lines.append(f"| {direction} {metric} (corpus) | " + " | ".join(row) + " |")
    if any(r.get("bootstrap") for r in reports):
        lines += ["", INTERVAL_NOTE]
    if len(reports) > 1:
        lines += difference_markdown(compared_pairs(reports) if compared is None else compared)
    lines += ["", "Models:", ""] + [f"- {r['label']}: `{r['model']}` ({_items(r)})" for r in reports]
    for r in reports:
        skipped = r.get("skipped_records", [])
        if skipped:
            lines += ["", f"Records skipped for {r['label']} (on_bad_record: skip):", ""]
            lines += [f"- {error}" for error in skipped]
    return "\n".join(lines) + "\n"


INTERVAL_NOTE = (
    f"`score [lo, hi]`: the {CONFIDENCE:.0%} bootstrap interval (each task's items resampled with "
    "replacement, every score recomputed; a zero-width interval: one item, or items that all scored "
    "the same). Details: docs/eval.md."
)


@dataclass(frozen=True)
class Compared:
    """Two reports' differences, B - A, with paired bootstrap intervals (A's seed and samples)."""

    a: str
    b: str
    seed: int
    samples: int
    diffs: dict[Key, Difference]

    def to_json(self) -> dict:
        bootstrap = {"seed": self.seed, "samples": self.samples, "confidence": CONFIDENCE, "paired": True}
        return {"a": self.a, "b": self.b, "bootstrap": bootstrap, "suites": differences_json(self.diffs)}


def compared_pairs(reports: Sequence[dict], baseline: dict | None = None) -> list[Compared]:
    """Each report against the one before it, the last against the first when there are more than
    two, and the last against `baseline` when given."""
    pairs = [(reports[i - 1], reports[i]) for i in range(1, len(reports))]
    pairs += [(reports[0], reports[-1])] if len(reports) > 2 else []
    pairs += [(baseline, reports[-1])] if baseline is not None else []
    out = []
    for a, b in pairs:
        seed, samples = bootstrap_settings(a)
        out.append(Compared(a["label"], b["label"], seed, samples, paired_differences(a, b, seed, samples)))
    return out


def _diff_cell(diff: Difference) -> str:
    if diff.interval is None:
        return f"{diff.difference:+.1f}"
    lo, hi = diff.interval
    return f"{diff.difference:+.1f} [{lo:+.1f}, {hi:+.1f}]" + (" *" if diff.excludes_zero else "")


def _diff_rows(diffs: dict[Key, Difference]) -> list[str]:
    """Table rows in the order of the score tables: suites, then per suite tasks, capabilities,
    lm-eval tasks and translation directions."""
    rows = []

    def row(name: str, diff: Difference) -> None:
        rows.append(f"| {name} | {_fmt(diff.a)} | {_fmt(diff.b)} | {_diff_cell(diff)} |")

    for suite in SUITES:
        if (suite, "suite") in diffs:
            row(SUITE_TITLES[suite], diffs[(suite, "suite")])
    for suite in SUITES:
        for kind, name in (("task", "{}"), ("capability", "capability: {}"), ("lm_eval", "lm-eval: {}")):
            for key in sorted(k for k in diffs if k[:2] == (suite, kind)):
                row(name.format(key[2]), diffs[key])
        for direction in DIRECTIONS:
            for metric in ("bleu", "chrf++"):
                if (key := (suite, "direction", direction, metric)) in diffs:
                    row(f"{direction} {metric} (corpus)", diffs[key])
    return rows


def difference_markdown(compared: Sequence[Compared]) -> list[str]:
    """Per compared pair, a table of A, B and B - A [lo, hi] for every shared score."""
    lines = [
        "",
        f"## Differences ({CONFIDENCE:.0%} paired bootstrap intervals)",
        "",
        "B - A, with the interval of the difference where both reports hold per-item values (the same "
        "resampled items for both runs). `*`: the interval excludes 0, a difference that resampling "
        "these items does not explain (docs/eval.md).",
    ]
    for pair in compared:
        lines += ["", f"### {pair.b} - {pair.a}", ""]
        lines += [f"| | {pair.a} | {pair.b} | difference |", "|---|---|---|---|"]
        lines += _diff_rows(pair.diffs)
    return lines


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


def plot_seesaw(reports: Sequence[dict], path: Path, baseline: dict | None = None) -> None:
    """Suite scores per report, in order: in-domain (SNS, translation) against general; a `baseline`
    as a dashed branch from the first report to a point of its own, with its interval as a bar."""
    plt = _pyplot()
    labels = [r["label"] for r in reports] + ([baseline["label"]] if baseline else [])
    x = list(range(len(labels)))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels)), 4.0))
    nan = float("nan")
    for suite in SUITES:
        values = [r["suites"].get(suite, {}).get("score") for r in reports]
        if any(v is not None for v in values):
            (line,) = ax.plot(
                x[: len(reports)],
                [nan if v is None else v for v in values],
                marker="o",
                label=SUITE_TITLES[suite],
            )
            intervals = [r["suites"].get(suite, {}).get("interval") for r in reports]
            if any(i is not None for i in intervals):  # the 95 % intervals as a band
                lo = [nan if i is None else i[0] for i in intervals]
                hi = [nan if i is None else i[1] for i in intervals]
                ax.fill_between(x[: len(reports)], lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            if baseline is not None:
                _plot_branch(ax, baseline["suites"].get(suite, {}), values[0], x[-1], line.get_color())
    ax.set_xticks(x)
    ax.set_xticklabels(labels)
    _save(plt, fig, ax, "suite score (0-100)", "In-domain vs general (the seesaw)", path)


def _plot_branch(ax, result: dict, start: float | None, x: int, color) -> None:
    """The baseline's suite score at `x`, dashed from the first report's (`start`), its interval a bar."""
    score = result.get("score")
    if score is None:
        return
    if start is not None:
        ax.plot([0, x], [start, score], linestyle="--", color=color, alpha=0.6)
    interval = result.get("interval")
    err = [[score - interval[0]], [interval[1] - score]] if interval else None
    ax.errorbar([x], [score], yerr=err, marker="s", color=color, capsize=3)


def write_report(out: Path, report: dict) -> None:
    """report.json, report.md and tasks.png of one evaluation."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(out / "report.md", markdown([report]))
    plot_tasks([report], out / "tasks.png")


def compare(reports: Sequence[dict], out: Path, baseline: dict | None = None) -> list[Compared]:
    """Side-by-side comparison.md, comparison.json (the paired differences), tasks.png and seesaw.png
    of several reports and an optional `baseline` branch; returns the compared pairs."""
    if not reports:
        raise ValueError("compare needs at least one report")
    out.mkdir(parents=True, exist_ok=True)
    everyone = [*reports, baseline] if baseline is not None else list(reports)
    compared = compared_pairs(reports, baseline)
    _atomic_write(out / "comparison.md", markdown(everyone, compared))
    doc = {"labels": [r["label"] for r in everyone], "differences": [c.to_json() for c in compared]}
    if baseline is not None:
        doc["baseline"] = baseline["label"]
    _atomic_write(out / "comparison.json", json.dumps(doc, indent=2) + "\n")
    plot_tasks(everyone, out / "tasks.png")
    plot_seesaw(reports, out / "seesaw.png", baseline)
    return compared
