"""Scores of the three suites from predictions: pure functions, the same metric code as the rewards.

Suites are decided by a task's `capability` in the task table: `translation` -> the translation suite,
`general` -> the general suite, anything else -> the SNS suite. Every score is on a 0-100 scale.

- SNS and general: a task's score is the mean over its items of its headline metric (the training
  reward, or the first of the table's `metrics`), every metric is reported; a capability's score is
  the mean of its tasks' scores, the suite's the mean over tasks.
- Translation: corpus-level BLEU and chrF++ (sacrebleu) per direction, with the parameters of the
  task's `bleu` and `chrf` metrics (tokenizer: `zh` for Chinese targets); the suite score is the
  mean of the four numbers zh->en BLEU, zh->en chrF++, en->zh BLEU, en->zh chrF++ (the paper's
  SNS-TransBench average; None when a direction has no items).
- An item with k responses (avg@k, `eval.generation.num_generations_per_prompt`): its metric values
  are the means over its responses; a translation direction's corpus holds every response (each
  against its item's reference), and an item's `segment_stats` are the sums over its responses.

Every task also keeps its items' headline values (`item_scores`, record id -> 0-100) and every
translation direction its sentences' corpus BLEU / chrF++ sufficient statistics (`segment_stats`,
`task/id` -> {bleu, chrf++}, with the metrics' parameters): what the bootstrap intervals of
eval/intervals.py resample, in one run's report and paired across two (`redone eval compare`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from nemo_recipes.tasks import TaskRecord, TaskTable
from nemo_recipes.tasks.registry import evaluate
from nemo_recipes.tasks.rewards.bleu import corpus_bleu, corpus_bleu_stats
from nemo_recipes.tasks.rewards.chrf import corpus_chrf, corpus_chrf_stats
from nemo_recipes.tasks.text import extract_answer

SUITES = ("sns", "translation", "general")
DIRECTIONS = ("zh-en", "en-zh")


@dataclass(frozen=True)
class Item:
    """One evaluation item with the model's responses (one, or k for avg@k)."""

    record: TaskRecord
    responses: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.responses:
            raise ValueError(f"evaluation item {self.record.id!r} (task {self.record.task}) has no response")


def suite_of(table: TaskTable, task: str) -> str:
    capability = table.spec(task).capability
    return capability if capability in ("translation", "general") else "sns"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def task_scores(table: TaskTable, items: Sequence[Item]) -> dict[str, dict]:
    """Per task: `score` (headline metric, 0-100), `metrics` (every metric's mean), `n`, `capability`,
    `item_scores` (record id -> the item's headline value, 0-100; their mean is `score`)."""
    by_task: dict[str, list[dict[str, float]]] = defaultdict(list)
    ids: dict[str, list[str]] = defaultdict(list)
    for item in items:
        per_response = [evaluate(table, item.record.task, r, item.record) for r in item.responses]
        by_task[item.record.task].append(
            {name: _mean([results[name].score for results in per_response]) for name in per_response[0]}
        )
        ids[item.record.task].append(item.record.id)
    out = {}
    for task, rows in sorted(by_task.items()):
        metrics = {name: 100.0 * _mean([row[name] for row in rows]) for name in rows[0]}
        headline = next(iter(metrics))
        out[task] = {
            "score": metrics[headline],
            "metrics": metrics,
            "n": len(rows),
            "capability": table.spec(task).capability,
            "item_scores": {i: 100.0 * row[headline] for i, row in zip(ids[task], rows, strict=True)},
        }
    return out


def averaged_suite(table: TaskTable, items: Sequence[Item]) -> dict:
    """The SNS or general suite: task scores, capability means and the mean over tasks."""
    tasks = task_scores(table, items)
    by_capability: dict[str, list[float]] = defaultdict(list)
    for result in tasks.values():
        by_capability[result["capability"]].append(result["score"])
    return {
        "score": _mean([t["score"] for t in tasks.values()]),
        "capabilities": {c: _mean(v) for c, v in sorted(by_capability.items())},
        "tasks": tasks,
    }


def _corpus_metric(table: TaskTable, tasks: set[str], kind: str):
    """The `kind` (bleu / chrf) eval metric the translation tasks of one direction share."""
    found = {}
    for task in sorted(tasks):
        metrics = [m for m in table.spec(task).eval_metrics().values() if m.kind == kind]
        if not metrics:
            raise ValueError(f"translation task {task}: the task table gives it no {kind} metric")
        found[task] = metrics[0]
    if len({m.model_dump_json() for m in found.values()}) > 1:
        raise ValueError(
            f"translation tasks {sorted(tasks)} of one direction disagree on their {kind} metric"
        )
    return next(iter(found.values()))


def translation_suite(table: TaskTable, items: Sequence[Item]) -> dict:
    """Corpus BLEU and chrF++ per direction, their four-number average, and per-task item scores."""
    by_direction: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        if item.record.language not in DIRECTIONS:
            raise ValueError(
                f"translation item {item.record.id!r} (task {item.record.task}) has language "
                f"{item.record.language!r}; expected one of {DIRECTIONS}"
            )
        by_direction[item.record.language].append(item)
    directions = {}
    for direction, members in sorted(by_direction.items()):
        tasks = {i.record.task for i in members}
        bleu, chrf = _corpus_metric(table, tasks, "bleu"), _corpus_metric(table, tasks, "chrf")
        refs = [i.record.answer_text for i in members for _ in i.responses]
        bleu_hyps, chrf_hyps = _hypotheses(members, bleu), _hypotheses(members, chrf)
        keys = [f"{i.record.task}/{i.record.id}" for i in members]
        bleu_stats = _per_item(corpus_bleu_stats(bleu_hyps, refs, bleu), members)
        chrf_stats = _per_item(corpus_chrf_stats(chrf_hyps, refs, chrf), members)
        directions[direction] = {
            "bleu": 100.0 * corpus_bleu(bleu_hyps, refs, bleu),
            "chrf++": 100.0 * corpus_chrf(chrf_hyps, refs, chrf),
            "n": len(members),
            "bleu_params": bleu.model_dump(mode="json"),
            "chrf_params": chrf.model_dump(mode="json"),
            "segment_stats": {
                key: {"bleu": b, "chrf++": c} for key, b, c in zip(keys, bleu_stats, chrf_stats, strict=True)
            },
        }
    missing = [d for d in DIRECTIONS if d not in directions]
    four = [directions[d][m] for d in DIRECTIONS if d in directions for m in ("bleu", "chrf++")]
    return {
        "score": _mean(four) if not missing else None,
        "missing_directions": missing,
        "directions": directions,
        "tasks": task_scores(table, items),
    }


def _hypotheses(items: Sequence[Item], params) -> list[str]:
    """Every response of every item, in order, as the metric reads it (its extraction rule); an empty
    extraction scores as ''."""
    return [extract_answer(r, params.extract) or "" for i in items for r in i.responses]


def _per_item(stats: Sequence[list[int]], items: Sequence[Item]) -> list[list[int]]:
    """Per-response sufficient statistics (in `_hypotheses` order) summed over each item's responses."""
    out, start = [], 0
    for item in items:
        rows = stats[start : start + len(item.responses)]
        out.append([sum(column) for column in zip(*rows, strict=True)])
        start += len(item.responses)
    return out


def score_suites(table: TaskTable, items: Sequence[Item], suites: Sequence[str]) -> dict[str, dict]:
    """Every requested suite that has items: {suite: result}."""
    grouped: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        grouped[suite_of(table, item.record.task)].append(item)
    out = {}
    for suite in suites:
        if not grouped.get(suite):
            continue
        members = grouped[suite]
        out[suite] = (
            translation_suite(table, members) if suite == "translation" else averaged_suite(table, members)
        )
    return out
