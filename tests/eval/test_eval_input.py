"""`redone eval` checks its input (model, task table, every record, suites) before it writes or exports."""

from __future__ import annotations

import json
from pathlib import Path

from eval.report import markdown
from nemo_recipes.config.assets import resolve_asset
from tests.conftest import run_cli


def test_a_missing_data_file_leaves_nothing_behind(init_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(["eval", str(init_ckpt), "--out", str(out), "--data", "missing.jsonl"], check=False)
    assert proc.returncode == 2 and "missing.jsonl" in proc.stderr
    assert not out.exists()  # no model.json, no hf/ export


def test_a_bad_record_is_named_before_the_export(init_ckpt: Path, tmp_path: Path) -> None:
    lines = resolve_asset("sns_demo/test.jsonl", "data").read_text(encoding="utf-8").splitlines()[:2]
    bad = json.loads(lines[1]) | {"task": "sns_taxonomyy"}
    data = tmp_path / "eval.jsonl"
    data.write_text(lines[0] + "\n" + json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(["eval", str(init_ckpt), "--out", str(out), "--data", str(data)], check=False)
    assert proc.returncode == 2
    assert f"{data}:2" in proc.stderr and "did you mean 'sns_taxonomy'" in proc.stderr
    assert not out.exists()


def test_skipped_records_are_listed_in_report_md() -> None:
    report = {
        "label": "m",
        "model": "/m",
        "items": 3,
        "suites": {"sns": {"score": 50.0, "tasks": {}, "capabilities": {}}},
        "skipped_records": ["data.jsonl:4: task: unknown task 'x'"],
    }
    text = markdown([report])
    assert "- m: `/m` (3 items, 1 bad records skipped)" in text
    assert "- data.jsonl:4: task: unknown task 'x'" in text
    assert "skipped" not in markdown([report | {"skipped_records": []}])


def test_report_md_says_how_each_report_decoded() -> None:
    def report(label: str, k: int, temperature: float) -> dict:
        generation = {"num_generations_per_prompt": k, "temperature": temperature}
        suites = {"sns": {"score": 50.0, "tasks": {}, "capabilities": {}}}
        return {
            "label": label,
            "model": "/m",
            "items": 3,
            "suites": suites,
            "config": {"eval": {"generation": generation}},
        }

    greedy, sampled = report("a", 1, 0.0), report("b", 8, 1.0)
    assert "Decoding: a: greedy." in markdown([greedy])
    both = markdown([greedy, sampled])
    assert "Decoding: a: greedy; b: avg@8, temperature 1 (**decoded differently**" in both
    assert "decoded differently" not in markdown([sampled, report("c", 8, 1.0)])
    assert "Decoding: m: unknown." in markdown(
        [{k: v for k, v in greedy.items() if k != "config"} | {"label": "m"}]
    )
