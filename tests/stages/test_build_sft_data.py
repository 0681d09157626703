"""Stage 2's data: stratified selection of the diagnosed tasks (hand counts), the rehearsal share, and
an end-to-end build whose rehearsal answers are the rehearsal model's best-of-n, judged by the reward."""

from __future__ import annotations

import json
from pathlib import Path

from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.data.sft_selection import best_answer, rehearsal_count, rehearsal_target, select_targeted
from nemo_recipes.tasks import TaskRecord, load_task_table, read_task_records, score
from tests.conftest import run_cli


def record(task: str, n: int, rare: bool = False) -> TaskRecord:
    meta = {"rare": True} if rare else None
    return TaskRecord(
        id=f"{task}-{n}", task=task, language="zh", split="train", question="q", answer="a", meta=meta
    )


def test_selection_is_stratified_by_capability_then_task_and_repeats_rare_cases() -> None:
    table = load_task_table("sns_demo", "general")
    # content_understanding: sns_taxonomy, sns_hashtag; information_extraction: sns_ner (only 3 records).
    records = [record("sns_taxonomy", i) for i in range(20)] + [record("sns_hashtag", i) for i in range(20)]
    records += [record("sns_ner", i, rare=i == 0) for i in range(3)] + [
        record("sns_gender_appeal", i) for i in range(9)
    ]
    selected = ["sns_taxonomy", "sns_hashtag", "sns_ner"]
    chosen, stats = select_targeted(records, selected, table, 12, {"rare": 3}, seed=1)
    # 12 split over 2 capabilities: 6 each; content_understanding's 6 over 2 tasks: 3 each.
    assert stats.per_task == {"sns_hashtag": 3, "sns_taxonomy": 3, "sns_ner": 3}
    assert stats.shortfall == {"sns_ner": 3}  # its share was 6, it has 3
    assert stats.per_capability == {"content_understanding": 6, "information_extraction": 3}
    assert stats.upweighted == 2 and len(chosen) == 11  # sns_ner-0 three times
    assert sum(r.id == "sns_ner-0" for r in chosen) == 3
    assert all(r.task in selected for r in chosen)
    everything, _ = select_targeted(records, selected, table, None, {}, seed=1)
    assert len(everything) == 43


def test_rehearsal_share_and_best_answer() -> None:
    assert rehearsal_count(94, 0.06) == 6  # 6 / (94 + 6) = 6%
    assert rehearsal_count(200, 0.2) == 50
    assert rehearsal_count(10, 0.0) == 0
    assert best_answer([0.2, 0.9, 0.9, 0.1]) == 1
    # The target kept: the best answer, unless it scores below the bar or is blank (every answer 0:
    # the first, here empty, which no chat record can hold).
    assert rehearsal_target(["a", "b", "c"], [0.2, 0.9, 0.9], 0.0) == 1
    assert rehearsal_target(["", " x"], [0.0, 0.0], 0.0) == "blank_best_answer"
    assert rehearsal_target(["a", "b"], [0.2, 0.3], 0.5) == "below_min_judge_score"


def test_build_targets_and_judged_rehearsal(init_ckpt: Path, tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    run_cli(
        [
            "convert",
            "mcore-to-hf",
            str(init_ckpt),
            str(hf),
            "--hf-config",
            "tiny-qwen3",
            "--tokenizer",
            "tiny",
            "--dtype",
            "float32",
        ]
    )
    diagnosis = tmp_path / "diagnosis.json"
    diagnosis.write_text(json.dumps({"selected": ["sns_taxonomy"]}))
    sets = [
        f"run_dir={tmp_path / 'run'}",
        f"sft_data.diagnosis={diagnosis}",
        f"sft_data.rehearsal_model={hf}",
        "sft_data.max_sns_records=30",
        "sft_data.rehearsal_ratio=0.25",
        "sft_data.generation.num_generations_per_prompt=3",
        "sft_data.generation.max_response_tokens=8",
        "sft_data.generation.max_prompt_tokens=512",
    ]
    run_cli(["build-sft-data", *[a for s in sets for a in ("--set", s)]], timeout=600)
    out = tmp_path / "run" / "sft_data"
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    stats = json.loads((out / "stats.json").read_text())
    rehearsal = [r for r in rows if (r.get("meta") or {}).get("rehearsal")]
    assert len(rows) == 40 and len(rehearsal) == 10  # 30 targeted, 25% rehearsal
    assert {r["task"] for r in rows if r not in rehearsal} == {"sns_taxonomy"}
    table = load_task_table("sns_demo", "general")
    assert all(table.spec(r["task"]).capability == "general" for r in rehearsal)
    assert stats["rehearsal"]["kept"] == 10 and stats["rehearsal_share"] == 0.25
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    # The recorded judge score is the task reward of the answer that was written.
    records = {
        r.id: r for r in read_task_records(resolve_asset("general/train.jsonl", "data"), table).records
    }
    for row in rehearsal:
        got = score(table, row["task"], row["messages"][-1]["content"], records[row["id"]]).score
        assert got == row["meta"]["judge_score"]
