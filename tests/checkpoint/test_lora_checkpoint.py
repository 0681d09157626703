"""LoRA checkpoints: adapters and their optimizer state only, the base named by path and sha256; a run
SIGKILLed and restarted continues with the uninterrupted losses; a TP2 checkpoint resumes at TP1."""

from __future__ import annotations

import json
import random
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import pytest
from megatron.core import dist_checkpointing

from nemo_recipes.checkpoint.files import LORA_FILE, weights_sha256
from tests.checkpoint.test_sft_resume import STEPS, kill_at_step, logged_steps, resume_args
from tests.conftest import losses, run_cli

pytestmark = pytest.mark.parallel

LORA = ["model.lora.rank=8", "model.lora.alpha=16"]


def test_lora_checkpoint_holds_adapters_and_names_its_base(init_ckpt: Path, tmp_path: Path) -> None:
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run_cli(resume_args(full_dir, init_ckpt, *LORA))
    reference = losses(full_dir)

    ckpt = full_dir / "checkpoints" / f"step_{STEPS:08d}"
    record = json.loads((ckpt / LORA_FILE).read_text())
    assert record["base"] == str(init_ckpt.resolve())
    assert record["base_sha256"] == weights_sha256(init_ckpt)
    assert record["lora"]["rank"] == 8
    saved = dist_checkpointing.load_tensors_metadata(str(ckpt))
    weights = [k for k in saved if not k.startswith("optimizer")]
    assert weights and all(k.startswith("lora.layers.") for k in weights), weights[:5]

    kill_step = random.Random("lora-kill").randint(3, STEPS - 2)
    kill_at_step(resume_args(cut_dir, init_ckpt, *LORA), 1, cut_dir, kill_step)
    assert logged_steps(cut_dir) < STEPS
    run_cli(resume_args(cut_dir, init_ckpt, *LORA))
    assert losses(cut_dir) == reference, f"killed at step {kill_step}"


def test_lora_saved_at_tp2_resumes_at_tp1(init_ckpt: Path, tmp_path: Path) -> None:
    ref_dir, tp_dir = tmp_path / "ref", tmp_path / "tp2"
    five = ["sft.train_steps=5", "sft.checkpoint.save_interval_steps=4", *LORA]
    run_cli(resume_args(ref_dir, init_ckpt, *five))
    reference = losses(ref_dir)
    run_cli(resume_args(tp_dir, init_ckpt, *five, "parallel.tensor_model_parallel_size=2"), nproc=2)
    (tp_dir / "checkpoints" / "latest").write_text("step_00000004")  # continue from step 4 at TP1
    run_cli(resume_args(tp_dir, init_ckpt, *five))
    resumed = losses(tp_dir)
    assert abs(resumed[-1] - reference[-1]) <= 1e-5, f"next-step loss at TP1 {resumed[-1]} vs {reference[-1]}"


def test_resume_refuses_a_changed_base(init_ckpt: Path, tmp_path: Path) -> None:
    run_dir, other = tmp_path / "run", tmp_path / "other-init"
    run_cli(resume_args(run_dir, init_ckpt, "sft.train_steps=2", *LORA))
    run_cli(["init-model", "--out", str(other), "--set", "seed=7"])
    proc = run_cli(resume_args(run_dir, other, "sft.train_steps=3", *LORA), check=False)
    assert proc.returncode != 0
    assert "model.init_from must be the run's own" in proc.stdout + proc.stderr
