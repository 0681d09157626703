"""`redone run` before and around training: what fails up front, what a finished run skips.

The pipeline end to end (and killed in each unit) is in tests/test_pipeline_e2e.py.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from nemo_recipes.config import RunConfig
from nemo_recipes.config_loader import config_hash, load_config
from nemo_recipes.pipeline.runner import Pipeline
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


def test_where_the_stages_run_is_not_part_of_what_they_compute(tmp_path: Path) -> None:
    """A run started on a workstation resumes in a Slurm job: the launch keys stay out of the units'
    configs and hashes; training steps start every rank, the other commands one process."""
    sets = [f"run_dir={tmp_path}", "model.init_from=/models/base"]
    local_cfg = load_config(RunConfig, RECIPE, sets)
    job_cfg = load_config(
        RunConfig,
        RECIPE,
        [
            *sets,
            "pipeline.launcher=[srun, --ntasks-per-node=2]",
            "pipeline.single_launcher=[srun, --nodes=1, --ntasks=1]",
            "pipeline.command=[redone]",
        ],
    )
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR1)
    try:
        local, job = (Pipeline(cfg, tmp_path, nproc=2) for cfg in (local_cfg, job_cfg))
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGUSR1, saved[1])
    unit = tmp_path / "stage1_grpo"
    assert config_hash(local.stage_config(unit)) == config_hash(job.stage_config(unit))
    assert job.stage_config(unit)["pipeline"]["launcher"] == []
    grpo, ev = ["grpo", "stage.yaml"], ["eval", "model"]
    here = [sys.executable, "-m", "nemo_recipes.cli"]
    assert local.child_command(grpo, training=True) == [*here, *grpo, "--nproc", "2"]
    assert local.child_command(ev, training=False) == [*here, *ev]
    assert job.child_command(grpo, training=True) == ["srun", "--ntasks-per-node=2", "redone", *grpo]
    assert job.child_command(ev, training=False) == ["srun", "--nodes=1", "--ntasks=1", "redone", *ev]
