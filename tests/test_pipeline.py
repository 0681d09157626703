"""`redone run` before and around training: what fails up front, what a finished run skips.

The pipeline end to end (and killed in each unit) is in tests/test_pipeline_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, run_cli

RECIPE = REPO / "nemo_recipes/recipes/pipeline_tiny.yaml"


def test_missing_data_and_unknown_task_fail_before_training(tmp_path: Path) -> None:
    good = (REPO / "nemo_recipes/assets/data/sns_demo/test.jsonl").read_text().splitlines()
    bad_record = json.loads(good[0]) | {"task": "sns_bogus"}
    records = tmp_path / "eval.jsonl"
    records.write_text("\n".join([good[1], json.dumps(bad_record)]) + "\n")
    run_dir = tmp_path / "run"
    proc = run_cli(
        [
            "run",
            str(RECIPE),
            "--set",
            f"run_dir={run_dir}",
            "--set",
            f"model.init_from={tmp_path / 'no_model'}",
            "--set",
            "grpo.train_data=[sns_demo/train.jsonl,missing_file.jsonl]",
            "--set",
            f"eval.data=[{records}]",
            "--set",
            "sft.train_data=[toy_chat/train.jsonl]",
        ],
        check=False,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert "missing_file.jsonl" in err and "grpo.train_data" in err
    assert f"{records}:2" in err and "sns_bogus" in err  # the file, the line, the task
    assert "model.init_from" in err and "no_model" in err
    assert "sft.train_data" in err
    assert not run_dir.exists()  # nothing started
