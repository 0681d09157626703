"""`redone eval` end to end on a tiny checkpoint through vLLM on CPU: a complete report with plots;
killed halfway and rerun, it finishes without regenerating finished items and reports the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, signal_tree, start_cli, wait_until

TASKS = "sns_taxonomy,general_arithmetic,sns_translation_zh2en,sns_translation_en2zh"
ITEMS = 240  # 60 test records per task in sns_demo/test.jsonl and general/test.jsonl


def eval_args(model: Path, out: Path) -> list[str]:
    sets = [
        "eval.generation.max_response_tokens=16",
        "eval.batch_size=16",
        "model.hf_config=tiny-qwen3",
        "model.tokenizer=tiny",
    ]
    return [
        "eval",
        str(model),
        "--out",
        str(out),
        "--tasks",
        TASKS,
        "--no-progress",
        *[a for s in sets for a in ("--set", s)],
    ]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


# Slow: in CI the pipeline test runs four evaluations through the same code; its slow test kills them.
@pytest.mark.slow
def test_eval_report_and_resume_after_a_kill(init_ckpt: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    run_cli(eval_args(init_ckpt, full), timeout=900)
    report = json.loads((full / "report.json").read_text())
    assert set(report["suites"]) == {"sns", "translation", "general"}
    assert report["items"] == ITEMS
    assert set(report["suites"]["translation"]["directions"]) == {"zh-en", "en-zh"}
    assert report["suites"]["translation"]["score"] is not None
    assert (full / "tasks.png").stat().st_size > 10_000
    assert "| sns_taxonomy |" in (full / "report.md").read_text()
    assert len(lines(full / "predictions.jsonl")) == ITEMS

    cut = tmp_path / "cut"
    proc = start_cli(eval_args(init_ckpt, cut))
    wait_until(proc, lambda: len(lines(cut / "predictions.jsonl")) >= 32, "32 finished items")
    signal_tree(proc)
    before = lines(cut / "predictions.jsonl")
    assert 32 <= len(before) < ITEMS and not (cut / "report.json").exists()

    run_cli(eval_args(init_ckpt, cut), timeout=900)
    after = lines(cut / "predictions.jsonl")
    assert after[: len(before)] == before, "finished items were rewritten"
    assert len(after) == ITEMS == len({json.loads(x)["key"] for x in after}), "items were generated twice"
    resumed = json.loads((cut / "report.json").read_text())
    assert resumed["suites"] == report["suites"]


def test_compare_writes_the_seesaw(tmp_path: Path) -> None:
    def report(label: str, sns: float, general: float) -> dict:
        suites = {
            "sns": {"score": sns, "capabilities": {}, "tasks": {"sns_ner": {"score": sns}}},
            "general": {"score": general, "capabilities": {}, "tasks": {"general_code": {"score": general}}},
        }
        return {"label": label, "model": label, "items": 2, "suites": suites}

    paths = []
    for label, sns, general in [("base", 20.0, 60.0), ("stage1", 40.0, 55.0), ("stage3", 50.0, 58.0)]:
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(report(label, sns, general)))
        paths.append(str(path))
    out = tmp_path / "cmp"
    run_cli(["eval", "compare", *paths, "--out", str(out), "--labels", "base,s1,s3"])
    md = (out / "comparison.md").read_text()
    assert "| | base | s1 | s3 |" in md and "| SNS | 20.0 | 40.0 | 50.0 |" in md
    assert "| General | 60.0 | 55.0 | 58.0 |" in md
    assert (out / "seesaw.png").stat().st_size > 10_000 and (out / "tasks.png").stat().st_size > 10_000
