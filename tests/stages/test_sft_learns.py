"""A tiny random-init model learns the shipped toy chat task with the shipped recipe (CI-sized run)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, read_metrics, run_cli

STEPS = 120


@pytest.mark.slow  # 100-130 s; the SFT mechanics run in CI (invariance, resume, packing), the claim here
def test_tiny_model_learns_toy_chat(tmp_path: Path) -> None:
    recipe = REPO / "nemo_recipes" / "recipes" / "sft_tiny.yaml"
    sets = [
        f"run_dir={tmp_path}",
        f"sft.train_steps={STEPS}",
        "sft.eval_interval_steps=60",
        "logging.progress_bar=false",
        "sft.checkpoint.save_interval_steps=1000",
    ]
    run_cli(["sft", str(recipe), *[a for s in sets for a in ("--set", s)]])
    records = read_metrics(tmp_path)
    first_loss = records[0]["loss"]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(records) == STEPS and len(val) == 2
    # Random init starts near ln(vocab) = 7.6; after 120 steps the held-out answer loss is below 30% of it
    # (measured 1.78 at step 100 of the 300-step recipe).
    assert first_loss > 7.0
    assert val[-1] < 0.3 * first_loss, f"validation loss {val} vs first training loss {first_loss}"
    assert val[-1] < val[0]
    # The run directory documents the run.
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["sft"]["train_steps"] == STEPS and config["model"]["hf_config"] == "tiny-qwen3"
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["world_size"] == 1 and prov["packages"]["megatron-core"] == "0.16.1" and prov["seed"] == 1234
    assert list((tmp_path / "tensorboard" / "sft").glob("events.out.tfevents.*"))
    assert {"loss", "grad_norm", "lr", "tokens_per_s"} <= set(records[0])


def test_bf16_trains(tmp_path: Path) -> None:
    sets = [
        f"run_dir={tmp_path}",
        "model.dtype=bfloat16",
        "sft.train_steps=8",
        "sft.valid_data=[]",
        "sft.optimizer.lr=3e-3",
        "sft.optimizer.warmup_steps=0",
        "logging.progress_bar=false",
    ]
    run_cli(["sft", *[a for s in sets for a in ("--set", s)]])
    loss = [r["loss"] for r in read_metrics(tmp_path)]
    assert all(math.isfinite(x) for x in loss) and loss[-1] < loss[0] - 0.5, loss
