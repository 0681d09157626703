"""Bad data stops `redone sft` before training with file, line and field; skip mode counts it."""

from __future__ import annotations

import json
from pathlib import Path

from nemo_recipes.config.assets import resolve_asset
from tests.conftest import run_cli

GOOD = resolve_asset("toy_chat/train.jsonl", "data").read_text().splitlines()[:40]


def data_with_bad_line(tmp_path: Path) -> Path:
    bad = json.loads(GOOD[0])
    bad["messages"][1]["role"] = "robot"
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join([*GOOD[:6], json.dumps(bad), *GOOD[6:]]) + "\n")
    return path


def args(run_dir: Path, data: Path, *extra: str) -> list[str]:
    sets = [
        f"run_dir={run_dir}",
        f"sft.train_data=[{data}]",
        "sft.valid_data=[]",
        "sft.train_steps=1",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        *extra,
    ]
    return ["sft", *[a for s in sets for a in ("--set", s)]]


def test_bad_record_stops_before_training(tmp_path: Path) -> None:
    data = data_with_bad_line(tmp_path)
    proc = run_cli(args(tmp_path / "run", data), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{data}:7" in proc.stderr and "messages[1].role" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_skip_mode_counts_the_bad_record(tmp_path: Path) -> None:
    data = data_with_bad_line(tmp_path)
    proc = run_cli(args(tmp_path / "run", data, "sft.on_bad_record=skip"))
    assert "'skipped_records': 1" in proc.stdout
    assert f"{data}:7" in proc.stdout  # the skipped line is reported, not silently dropped
    assert "'records': 40" in proc.stdout


def test_too_long_conversation_is_named(tmp_path: Path) -> None:
    proc = run_cli(
        args(tmp_path / "run", resolve_asset("toy_chat/train.jsonl", "data"), "sft.seq_length=16"),
        check=False,
    )
    assert proc.returncode == 2
    assert "train.jsonl:1" in proc.stderr and "sft.truncate" in proc.stderr


def test_sft_trains_on_task_records_with_the_runs_task_table(tmp_path: Path) -> None:
    """Task records (what GRPO and eval read) train directly: sft.record_format task, the run's table."""
    data = tmp_path / "tasks.jsonl"
    data.write_text(
        "\n".join(resolve_asset("toy_rl/train.jsonl", "data").read_text().splitlines()[:40]) + "\n"
    )
    proc = run_cli(args(tmp_path / "run", data, "sft.record_format=task", "task_table=toy_rl"))
    assert "'records': 40" in proc.stdout
    assert (tmp_path / "run" / "checkpoints" / "latest").is_file()
    as_chat = run_cli(args(tmp_path / "chat", data), check=False)  # read as chat records: a pointer
    assert as_chat.returncode == 2 and "sft.record_format: task" in as_chat.stderr
