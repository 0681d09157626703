"""Bootstrap intervals of eval scores (eval/intervals.py): they contain the score, are deterministic
per seed, follow score_suites' aggregation, and paired differences between two runs resample the
same items (a large difference excludes 0, identical runs give [0, 0]); `redone eval compare` shows
them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from eval.intervals import (
    Resample,
    add_intervals,
    item_ids,
    paired_differences,
    point_scores,
    replicates,
)
from eval.lm_eval_suite import convert_stderr
from eval.report import write_report
from eval.scoring import Item, score_suites
from nemo_recipes.tasks import TaskRecord, load_task_table
from tests.conftest import run_cli

SUITES = ["sns", "translation", "general"]


@pytest.fixture(scope="module")
def table():
    return load_task_table("sns_demo", "general")


def item(task: str, answer: str, response: str, n: int, language: str = "zh") -> Item:
    record = TaskRecord(
        id=f"{task}-{n}", task=task, language=language, split="test", question="q", answer=answer
    )
    return Item(record, (response,))


def taxonomy(correct: list[bool], task: str = "sns_taxonomy") -> list[Item]:
    """Exact-match items: 100 where `correct`, else 0."""
    return [item(task, "图书", "图书" if ok else "酒店", n) for n, ok in enumerate(correct)]


def translation() -> list[Item]:
    zh_en = [
        ("I recommend this hamburger to everyone.", "I recommend this burger to all."),
        ("The hotel was clean and quiet.", "The hotel was clean and quiet."),
        ("We went to the beach on Sunday.", "On Sunday we went to a beach."),
        ("This book is very good.", "The book is good."),
    ]
    en_zh = [
        ("明天和朋友一起去买斧头。", "明天和朋友去买斧头。"),
        ("这本书很好看。", "这本书好看。"),
        ("酒店很干净。", "酒店干净安静。"),
    ]
    out = [item("sns_translation_zh2en", r, h, n, "zh-en") for n, (r, h) in enumerate(zh_en)]
    return out + [item("sns_translation_en2zh", r, h, n, "en-zh") for n, (r, h) in enumerate(en_zh)]


def mixed() -> list[Item]:
    """SNS (two capabilities), translation (both directions) and general items."""
    return [
        *taxonomy([True, False, True, True, False, True]),
        item("sns_query_note_correlation", "2", "2", 0),
        item("sns_query_note_correlation", "1", "2", 1),
        item("sns_query_note_correlation", "0", "0", 2),
        *translation(),
        item("general_arithmetic", "2+2=4\nanswer: 4", "4", 0),
        item("general_arithmetic", "2+3=5\nanswer: 5", "6", 1),
        item("general_arithmetic", "1+1=2\nanswer: 2", "2", 2),
    ]


def scored(table, items: list[Item], seed: int = 1234, samples: int = 1000) -> dict:
    suites = score_suites(table, items, SUITES)
    add_intervals(suites, seed, samples)
    return suites


def intervals(suites: dict) -> dict:
    """Every interval of a report's suites, by where it sits."""
    out = {}
    for suite, result in suites.items():
        out[(suite,)] = result["interval"]
        out |= {(suite, c): v for c, v in result.get("capability_intervals", {}).items()}
        out |= {(suite, t): e["interval"] for t, e in result["tasks"].items()}
        for d, res in result.get("directions", {}).items():
            out |= {(suite, d, m): v for m, v in res["intervals"].items()}
    return out


def test_every_interval_contains_its_score_and_is_deterministic_per_seed(table) -> None:
    suites = scored(table, mixed())
    got = intervals(suites)
    points = point_scores(suites)
    assert len(got) == len(points) == 15  # 3 suites, 3 capabilities, 5 tasks, 2 directions x 2
    for key, score in points.items():
        lo, hi = {
            "suite": lambda k: got[(k[0],)],
            "capability": lambda k: got[(k[0], k[2])],
            "task": lambda k: got[(k[0], k[2])],
            "direction": lambda k: got[(k[0], k[2], k[3])],
        }[key[1]](key)
        assert lo <= score <= hi, key
    assert got[("sns", "sns_taxonomy")][0] < got[("sns", "sns_taxonomy")][1]  # not degenerate
    assert intervals(scored(table, mixed())) == got
    other = intervals(scored(table, mixed(), seed=7))
    assert other != got
    assert other[("sns",)] != got[("sns",)]
    assert other[("translation",)] != got[("translation",)]


def test_a_task_interval_does_not_depend_on_the_other_tasks(table) -> None:
    alone = scored(table, taxonomy([True, False, True, True, False, True]))
    assert (
        alone["sns"]["tasks"]["sns_taxonomy"]["interval"]
        == (scored(table, mixed())["sns"]["tasks"]["sns_taxonomy"]["interval"])
    )


def test_one_item_or_no_variance_gives_a_zero_width_interval(table) -> None:
    one = scored(table, taxonomy([False]))["sns"]
    assert one["tasks"]["sns_taxonomy"]["interval"] == [0.0, 0.0] and one["interval"] == [0.0, 0.0]
    same = scored(table, taxonomy([True] * 30))["sns"]
    assert same["tasks"]["sns_taxonomy"]["interval"] == [100.0, 100.0]


def test_resampling_every_item_once_recomputes_every_score(table) -> None:
    """Replicates are computed like score_suites: with each item drawn exactly once (the identity
    resample), every replicate equals the reported score, suites and corpus BLEU/chrF++ included."""
    suites = score_suites(table, mixed(), SUITES)
    ids = item_ids(suites)
    identity = Resample(0, 3, ids, {t: np.ones((3, len(v)), dtype=int) for t, v in ids.items()})
    reps = replicates(suites, identity)
    for key, score in point_scores(suites).items():
        assert reps[key] == pytest.approx([score] * 3), key


def test_the_suite_interval_uses_the_suite_aggregation() -> None:
    """Capability information_extraction: three tasks, all items 100 (no variance); content_understanding:
    one task of 0/1 items. The SNS score is the mean over the four tasks, so each replicate is
    (300 + the varying task's replicate) / 4: the suite interval is the task's mapped through that, not
    through the mean of the two capability means ((100 + t) / 2)."""
    constant = {f"c{n}": 100.0 for n in range(5)}
    varying = {f"v{n}": 100.0 * (n % 2) for n in range(40)}
    tasks = {
        name: {"score": 100.0, "capability": "information_extraction", "item_scores": dict(constant)}
        for name in ("sns_ner", "sns_comment_highlight", "sns_reading_comprehension")
    }
    tasks["sns_taxonomy"] = {"score": 50.0, "capability": "content_understanding", "item_scores": varying}
    capabilities = {"content_understanding": 50.0, "information_extraction": 100.0}
    suites = {"sns": {"score": 87.5, "capabilities": capabilities, "tasks": tasks}}
    add_intervals(suites, 3, 1000)
    sns = suites["sns"]
    lo, hi = sns["tasks"]["sns_taxonomy"]["interval"]
    assert lo < 50.0 < hi
    assert sns["capability_intervals"]["information_extraction"] == [100.0, 100.0]
    assert sns["capability_intervals"]["content_understanding"] == pytest.approx([lo, hi])
    assert sns["interval"] == pytest.approx([(300 + lo) / 4, (300 + hi) / 4])
    assert sns["interval"][0] > (100 + lo) / 2  # narrower than a mean of capability means would be


def report(suites: dict, label: str, seed: int = 1234) -> dict:
    return {
        "label": label,
        "model": f"/models/{label}",
        "items": sum(t["n"] for s in suites.values() for t in s["tasks"].values()),
        "skipped_records": [],
        "suites": suites,
        "bootstrap": {"samples": 1000, "seed": seed, "confidence": 0.95},
    }


def test_a_large_paired_difference_excludes_zero_and_identical_runs_give_zero(table) -> None:
    good = report(scored(table, taxonomy([n % 5 != 0 for n in range(200)])), "good")  # 80 %
    bad = report(scored(table, taxonomy([n % 5 == 0 for n in range(200)])), "bad")  # 20 %
    diffs = paired_differences(good, bad, 1234, 1000)
    for key in (
        ("sns", "suite"),
        ("sns", "capability", "content_understanding"),
        ("sns", "task", "sns_taxonomy"),
    ):
        diff = diffs[key]
        assert diff.difference == pytest.approx(-60.0)
        assert diff.interval[0] <= -60.0 <= diff.interval[1] < 0 and diff.excludes_zero
    same = paired_differences(good, copy.deepcopy(good), 1234, 1000)
    for diff in same.values():
        assert diff.difference == 0.0 and diff.interval == [0.0, 0.0] and not diff.excludes_zero


def test_pairing_is_by_item_key_and_needs_the_same_items(table) -> None:
    a = report(scored(table, mixed()), "a")
    b_items = mixed()
    b_items[1] = item("sns_taxonomy", "图书", "图书", 1)  # one more right answer
    b = report(scored(table, list(reversed(b_items))), "b")  # another order: same keys
    diffs = paired_differences(a, b, 1234, 1000)
    taxonomy_diff = diffs[("sns", "task", "sns_taxonomy")]
    assert taxonomy_diff.difference == pytest.approx(100 / 6)
    assert taxonomy_diff.interval[0] >= 0 and taxonomy_diff.interval[1] > 0  # only that item differs
    assert diffs[("sns", "task", "sns_query_note_correlation")].interval == [0.0, 0.0]
    assert diffs[("translation", "direction", "zh-en", "bleu")].interval == [0.0, 0.0]
    # a task whose items differ between the runs: a difference but no interval, nor for its suite
    c = report(scored(table, [*mixed(), *taxonomy([True] * 7)[6:]]), "c")
    diffs = paired_differences(a, c, 1234, 1000)
    assert diffs[("sns", "task", "sns_taxonomy")].interval is None
    assert diffs[("sns", "suite")].interval is None
    assert diffs[("general", "suite")].interval == [0.0, 0.0]


def test_lm_eval_tasks_are_drawn_from_their_stderr() -> None:
    results = {
        "mc": {"alias": "mc", "acc,none": 0.5, "acc_stderr,none": 0.1},
        "gen": {"exact_match,first-number": 0.25, "exact_match_stderr,first-number": "N/A"},
    }
    assert convert_stderr(results) == {"gen": {}, "mc": {"acc": pytest.approx(10.0)}}

    def general(stderr: float | None) -> dict:
        """The general suite as eval.runner.add_lm_eval leaves it: one local task, one lm-eval task."""
        arithmetic = {"score": 50.0, "capability": "general", "item_scores": {"a": 0.0, "b": 100.0}}
        harness = {"score": 50.0, "tasks": {"mc": {"score": 50.0, "score_stderr": stderr}}}
        capabilities = {"general": 50.0, "lm_eval": 50.0}
        tasks = {"general_arithmetic": arithmetic}
        return {"score": 50.0, "capabilities": capabilities, "tasks": tasks, "lm_eval": harness}

    suites = {"general": general(10.0)}
    add_intervals(suites, 1, 2000)
    lo, hi = suites["general"]["lm_eval"]["tasks"]["mc"]["interval"]
    assert lo == pytest.approx(50 - 19.6, abs=1.5) and hi == pytest.approx(50 + 19.6, abs=1.5)
    assert suites["general"]["capability_intervals"]["lm_eval"] == [lo, hi]
    assert suites["general"]["interval"] is not None
    suites = {"general": general(None)}  # lm-eval gave no stderr: nothing that averages it has one
    add_intervals(suites, 1, 100)
    assert suites["general"]["interval"] is None
    assert suites["general"]["capability_intervals"] == {"general": [0.0, 100.0], "lm_eval": None}


def test_compare_shows_scores_with_intervals_and_marked_differences(table, tmp_path: Path) -> None:
    dirs = []
    for label, rate in [("base", 5), ("tuned", 2)]:  # sns_taxonomy right on 20 %, then 50 % of 200 items
        items = [*taxonomy([n % rate == 0 for n in range(200)]), *translation()]
        out = tmp_path / label
        write_report(out, report(scored(table, items), label))
        dirs.append(str(out))
    md_one = (tmp_path / "base" / "report.md").read_text()
    base = json.loads((tmp_path / "base" / "report.json").read_text())
    lo, hi = base["suites"]["sns"]["interval"]
    assert f"| SNS | 20.0 [{lo:.1f}, {hi:.1f}] |" in md_one and "bootstrap interval" in md_one

    cmp = tmp_path / "cmp"
    run_cli(["eval", "compare", *dirs, "--out", str(cmp)])
    md = (cmp / "comparison.md").read_text()
    assert f"| SNS | 20.0 [{lo:.1f}, {hi:.1f}] | 50.0 [" in md
    doc = json.loads((cmp / "comparison.json").read_text())
    assert doc["labels"] == ["base", "tuned"] and len(doc["differences"]) == 1
    pair = doc["differences"][0]
    assert (pair["a"], pair["b"], pair["bootstrap"]["seed"]) == ("base", "tuned", 1234)
    sns = pair["suites"]["sns"]
    assert sns["score"]["difference"] == pytest.approx(30.0) and sns["score"]["excludes_zero"]
    d_lo, d_hi = sns["tasks"]["sns_taxonomy"]["interval"]
    assert 0 < d_lo < 30 < d_hi
    assert f"| sns_taxonomy | 20.0 | 50.0 | +30.0 [{d_lo:+.1f}, {d_hi:+.1f}] * |" in md
    translation_diff = pair["suites"]["translation"]["directions"]["zh-en"]["bleu"]
    assert translation_diff["interval"] == [0.0, 0.0] and not translation_diff["excludes_zero"]
    assert "| zh-en bleu (corpus) |" in md and "+0.0 [+0.0, +0.0] |" in md
