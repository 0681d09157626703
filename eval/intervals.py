"""95 % bootstrap intervals of eval scores, and paired intervals of the difference between two runs.

**What is resampled.** One bootstrap replicate resamples the items of every task with replacement (n
draws from a task's n items; the items of a task are its records, keyed by record id) and recomputes
every score from the resampled items exactly as eval/scoring.py and eval/runner.py aggregate them:

- a task's score: the mean of its items' headline values (`item_scores` in the report);
- an SNS / general capability: the mean of its tasks' scores (`lm_eval`: of the lm-eval tasks');
- the SNS / general suite: the mean over its tasks (the lm-eval tasks with a score included);
- translation: per direction corpus BLEU and chrF++ from the summed per-sentence sufficient statistics
  of the resampled sentences (`segment_stats`; sacrebleu's bootstrap, the standard one for corpus
  metrics: no re-tokenizing, so a replicate costs a sum), and the suite's four-number mean of them.

The interval is the 2.5th and 97.5th percentiles of `samples` replicates (percentile bootstrap).
Each task draws from its own generator, seeded by (the run's `seed`, the task's name): intervals are
deterministic for a seed, and a task's interval does not depend on which other tasks were evaluated.
A task with one item, or whose items all score the same, has a zero-width interval `[score, score]`:
the bootstrap sees no variation there, which is not the same as a certain score.

**lm-eval tasks** have no per-item values in the report: a replicate draws such a task's score from a
normal around it with lm-eval's standard error of the headline metric (`score_stderr`), clipped to
0-100; without a standard error the task, its capability and the general suite get no interval.

**Paired differences** (`redone eval compare`): both runs are resampled with the same draws over the
same item keys, so an item's difficulty cancels out of the difference; a replicate's difference is
(B's recomputed score - A's). A task whose item ids differ between the runs gets no interval, nor
does anything averaging it. lm-eval tasks are drawn independently per run (no pairing: conservative).
An interval that excludes 0 means that at 95 % the difference is not resampling noise of these items.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nemo_recipes.config import RunConfig
from nemo_recipes.config.evaluation import EvalConfig
from nemo_recipes.tasks.rewards.bleu import BleuParams, bleu_from_stats
from nemo_recipes.tasks.rewards.chrf import ChrfParams, chrf_from_stats

CONFIDENCE = 0.95
"""Coverage of every interval: the 2.5th to the 97.5th percentile of the replicates."""
DEFAULT_SAMPLES: int = EvalConfig.model_fields["bootstrap_samples"].default
"""Resamples when a report does not say (compare of reports written without intervals)."""
DEFAULT_SEED: int = RunConfig.model_fields["seed"].default
"""Seed when a report does not say."""
METHOD = "percentile bootstrap: items resampled with replacement within each task (eval/intervals.py)"

Key = tuple[str, ...]
"""A score's address: (suite, "suite"), (suite, "capability", c), (suite, "task", t),
(suite, "direction", d, metric) or (suite, "lm_eval", t)."""
Replicates = np.ndarray | None
"""One value per resample; None: the score has no interval."""


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed % 2**32, seed // 2**32 % 2**32, zlib.crc32(name.encode())])


@dataclass(frozen=True)
class Resample:
    """The draws every score's replicates are computed from."""

    seed: int
    samples: int
    ids: dict[str, list[str]]
    """Per task, its item ids in the order of `counts`' columns."""
    counts: dict[str, np.ndarray]
    """Per task, (samples, n): how often each item is drawn in each replicate."""


def resample(ids: dict[str, Sequence[str]], seed: int, samples: int) -> Resample:
    """`samples` resamples of each task's items (with replacement, as many as it has)."""
    counts = {}
    for task, order in ids.items():
        n = len(order)
        draws = _rng(seed, task).integers(0, n, size=(samples, n))
        flat = (draws + n * np.arange(samples)[:, None]).ravel()
        counts[task] = np.bincount(flat, minlength=samples * n).reshape(samples, n)
    return Resample(seed, samples, {t: list(v) for t, v in ids.items()}, counts)


def item_ids(suites: dict[str, dict]) -> dict[str, list[str]]:
    """Per task with per-item values, its item ids (sorted: the report's order does not matter)."""
    return {
        task: sorted(entry["item_scores"])
        for result in suites.values()
        for task, entry in result.get("tasks", {}).items()
        if entry.get("item_scores")
    }


def _mean(reps: Sequence[Replicates]) -> Replicates:
    """The replicates of a mean of scores; None when one has none (or there are none)."""
    if not reps or any(r is None for r in reps):
        return None
    return np.mean(np.stack(reps), axis=0)


def _task_reps(task: str, entry: dict, rs: Resample) -> Replicates:
    values, order = entry.get("item_scores"), rs.ids.get(task)
    if not values or order is None:
        return None
    return rs.counts[task] @ np.array([values[i] for i in order], dtype=float) / len(order)


def _corpus_reps(direction: dict, metric: str, rs: Resample) -> Replicates:
    """Corpus BLEU or chrF++ of each replicate: its resampled sentences' summed statistics."""
    stats = direction.get("segment_stats")
    if not stats:
        return None
    by_task: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for key, row in stats.items():
        task, _, item = key.partition("/")
        by_task[task][item] = row[metric]
    total = None
    for task, rows in by_task.items():
        order = rs.ids.get(task)
        if order is None or not set(rows) <= set(order):
            return None
        width = len(next(iter(rows.values())))
        # items of the task outside this direction add nothing to its sums: zero rows
        matrix = np.array([rows.get(i, [0] * width) for i in order], dtype=float)
        summed = rs.counts[task] @ matrix
        total = summed if total is None else total + summed
    if metric == "bleu":
        params = BleuParams(**direction["bleu_params"])
        return np.array([100.0 * bleu_from_stats(np.rint(row), params) for row in total])
    params = ChrfParams(**direction["chrf_params"])
    return np.array([100.0 * chrf_from_stats(np.rint(row), params) for row in total])


def _lm_eval_reps(task: str, entry: dict, rs: Resample, stream: str) -> Replicates:
    score, stderr = entry.get("score"), entry.get("score_stderr")
    if score is None or stderr is None:
        return None
    draws = _rng(rs.seed, f"lm_eval/{task}{stream}").standard_normal(rs.samples)
    return np.clip(score + stderr * draws, 0.0, 100.0)


def replicates(suites: dict[str, dict], rs: Resample, stream: str = "") -> dict[Key, Replicates]:
    """Every score of a report's `suites`, recomputed on each resample of `rs` (see the module doc).
    `stream` names the draws of the lm-eval tasks (each run of a pair draws its own)."""
    out: dict[Key, Replicates] = {}
    for suite, result in suites.items():
        tasks = {t: _task_reps(t, entry, rs) for t, entry in result.get("tasks", {}).items()}
        out |= {(suite, "task", t): reps for t, reps in tasks.items()}
        if suite == "translation":
            four = []
            for direction, res in result.get("directions", {}).items():
                for metric in ("bleu", "chrf++"):
                    out[(suite, "direction", direction, metric)] = _corpus_reps(res, metric, rs)
                    four.append(out[(suite, "direction", direction, metric)])
            out[(suite, "suite")] = None if result.get("score") is None else _mean(four)
            continue
        by_capability: dict[str, list[Replicates]] = defaultdict(list)
        for task, entry in result.get("tasks", {}).items():
            by_capability[entry.get("capability", "")].append(tasks[task])
        scored = {
            t: e for t, e in result.get("lm_eval", {}).get("tasks", {}).items() if e.get("score") is not None
        }
        harness = [_lm_eval_reps(t, e, rs, stream) for t, e in scored.items()]
        out |= {(suite, "lm_eval", t): reps for t, reps in zip(scored, harness, strict=True)}
        out |= {(suite, "capability", c): _mean(reps) for c, reps in by_capability.items()}
        if harness:
            out[(suite, "capability", "lm_eval")] = _mean(harness)
        out[(suite, "suite")] = _mean(list(tasks.values()) + harness)
    return out


def point_scores(suites: dict[str, dict]) -> dict[Key, float | None]:
    """Every score of a report's `suites` under the keys `replicates` uses."""
    out: dict[Key, float | None] = {}
    for suite, result in suites.items():
        out[(suite, "suite")] = result.get("score")
        out |= {(suite, "capability", c): v for c, v in result.get("capabilities", {}).items()}
        out |= {(suite, "task", t): e.get("score") for t, e in result.get("tasks", {}).items()}
        for direction, res in result.get("directions", {}).items():
            out |= {(suite, "direction", direction, m): res.get(m) for m in ("bleu", "chrf++")}
        for t, e in result.get("lm_eval", {}).get("tasks", {}).items():
            if e.get("score") is not None:
                out[(suite, "lm_eval", t)] = e["score"]
    return out


def interval(reps: Replicates) -> list[float] | None:
    """[lo, hi]: the central CONFIDENCE share of the replicates; None without replicates."""
    if reps is None:
        return None
    tail = 100.0 * (1.0 - CONFIDENCE) / 2.0
    lo, hi = np.percentile(reps, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def add_intervals(suites: dict[str, dict], seed: int, samples: int) -> dict[str, Any]:
    """Write an `interval` next to every score of `suites` (in place): each suite's and task's,
    `capability_intervals` beside `capabilities`, each translation direction's `intervals` ({bleu,
    chrf++}), each lm-eval task's. Returns what the report records under `bootstrap`."""
    rs = resample(item_ids(suites), seed, samples)
    reps = replicates(suites, rs)
    for suite, result in suites.items():
        result["interval"] = interval(reps.get((suite, "suite")))
        if "capabilities" in result:
            result["capability_intervals"] = {
                c: interval(reps.get((suite, "capability", c))) for c in result["capabilities"]
            }
        for task, entry in result.get("tasks", {}).items():
            entry["interval"] = interval(reps.get((suite, "task", task)))
        for direction, res in result.get("directions", {}).items():
            res["intervals"] = {
                m: interval(reps.get((suite, "direction", direction, m))) for m in ("bleu", "chrf++")
            }
        for task, entry in result.get("lm_eval", {}).get("tasks", {}).items():
            entry["interval"] = interval(reps.get((suite, "lm_eval", task)))
    return {"samples": samples, "seed": seed, "confidence": CONFIDENCE, "method": METHOD}


def bootstrap_settings(report: dict) -> tuple[int, int]:
    """(seed, samples) a report was bootstrapped with; the run's seed and the default when it was not."""
    recorded = report.get("bootstrap") or {}
    seed = recorded.get("seed", report.get("config", {}).get("seed", DEFAULT_SEED))
    return seed, recorded.get("samples") or DEFAULT_SAMPLES


@dataclass(frozen=True)
class Difference:
    """B - A for one score, with its paired bootstrap interval (None: not computable)."""

    a: float
    b: float
    difference: float
    interval: list[float] | None

    @property
    def excludes_zero(self) -> bool:
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "difference": self.difference,
            "interval": self.interval,
            "excludes_zero": self.excludes_zero,
        }


def _paired(a: dict, b: dict, seed: int, samples: int) -> tuple[dict[Key, Replicates], ...]:
    """Both reports' replicates on the same draws of the item keys they share."""
    ids_a, ids_b = item_ids(a["suites"]), item_ids(b["suites"])
    rs = resample({t: ids for t, ids in ids_a.items() if ids_b.get(t) == ids}, seed, samples)
    return replicates(a["suites"], rs, "/a"), replicates(b["suites"], rs, "/b")


def paired_differences(a: dict, b: dict, seed: int, samples: int) -> dict[Key, Difference]:
    """Every score both reports have, B - A, with a paired bootstrap interval: the same draws of the
    same item keys for both (tasks whose item ids differ between the runs get none)."""
    reps_a, reps_b = _paired(a, b, seed, samples)
    points_a, points_b = point_scores(a["suites"]), point_scores(b["suites"])
    out = {}
    for key, pa in points_a.items():
        pb = points_b.get(key)
        if pa is None or pb is None:
            continue
        ra, rb = reps_a.get(key), reps_b.get(key)
        out[key] = Difference(pa, pb, pb - pa, None if ra is None or rb is None else interval(rb - ra))
    return out


def paired_task_mean_difference(
    a: dict, b: dict, tasks: Sequence[str], seed: int, samples: int
) -> Difference | None:
    """B - A of the mean score of `tasks` (each in whichever suite holds it), with a paired bootstrap
    interval; None when a report lacks one of the tasks' scores."""
    keys = [
        (suite, "task", t) for t in tasks for suite, res in a["suites"].items() if t in res.get("tasks", {})
    ]
    points_a, points_b = point_scores(a["suites"]), point_scores(b["suites"])
    if len(keys) != len(tasks) or any(points_a.get(k) is None or points_b.get(k) is None for k in keys):
        return None
    reps_a, reps_b = _paired(a, b, seed, samples)
    mean_a = float(np.mean([points_a[k] for k in keys]))
    mean_b = float(np.mean([points_b[k] for k in keys]))
    ra, rb = _mean([reps_a.get(k) for k in keys]), _mean([reps_b.get(k) for k in keys])
    return Difference(
        mean_a, mean_b, mean_b - mean_a, None if ra is None or rb is None else interval(rb - ra)
    )


def differences_json(diffs: dict[Key, Difference]) -> dict[str, dict]:
    """{suite: {score, capabilities: {c}, tasks: {t}, directions: {d: {metric}}, lm_eval_tasks: {t}}}."""
    out: dict[str, dict] = {}
    for key, diff in diffs.items():
        suite, kind, *rest = key
        entry = out.setdefault(suite, {})
        if kind == "suite":
            entry["score"] = diff.to_json()
        elif kind == "direction":
            entry.setdefault("directions", {}).setdefault(rest[0], {})[rest[1]] = diff.to_json()
        else:
            group = {"capability": "capabilities", "task": "tasks", "lm_eval": "lm_eval_tasks"}[kind]
            entry.setdefault(group, {})[rest[0]] = diff.to_json()
    return out
