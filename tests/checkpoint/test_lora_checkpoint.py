"""LoRA checkpoints: adapters and their optimizer state only, the base named by path and sha256; a run
SIGKILLed and restarted continues with the uninterrupted losses; a checkpoint saved at TP2 or PP2 resumes
at one rank and one saved at one rank resumes at PP2."""

from __future__ import annotations

import json
import random
import shutil
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


TP2 = (2, ["parallel.tensor_model_parallel_size=2"])
PP2 = (2, ["parallel.pipeline_model_parallel_size=2"])
ONE_RANK = (1, [])
RESHARDS = {
    # case: (nproc and settings of the run that saves, of the run that resumes)
    "tp2_to_tp1": (TP2, ONE_RANK),
    "pp2_to_pp1": (PP2, ONE_RANK),
    "pp1_to_pp2": (ONE_RANK, PP2),
}
SIX = ["sft.train_steps=6", "sft.checkpoint.save_interval_steps=4", *LORA]


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory: pytest.TempPathFactory, init_ckpt: Path) -> Path:
    """A one-rank LoRA run of 6 steps, checkpointed at step 4: the reference of every reshard case."""
    run_dir = tmp_path_factory.mktemp("lora_six") / "run"
    run_cli(resume_args(run_dir, init_ckpt, *SIX))
    return run_dir


@pytest.mark.parametrize(
    "case",
    # PP2 -> one rank is slow (the default run's time budget): CI saves at TP2 and loads at PP2.
    [pytest.param(c, marks=[pytest.mark.slow] if c == "pp2_to_pp1" else []) for c in RESHARDS],
)
def test_lora_checkpoint_resumes_at_another_layout(
    case: str, six_steps: Path, init_ckpt: Path, tmp_path: Path
) -> None:
    """Saved at step 4 in one layout, resumed in another: the same checkpoint keys (layout-free
    adapter names) and steps 5-6 (adapters and optimizer state) within 1e-5 of the one-rank run."""
    (save_nproc, save_sets), (load_nproc, load_sets) = RESHARDS[case]
    run_dir = tmp_path / "run"
    if save_nproc == 1:
        shutil.copytree(six_steps, run_dir)
    else:
        run_cli(resume_args(run_dir, init_ckpt, *SIX, *save_sets), nproc=save_nproc)
    step4 = run_dir / "checkpoints" / "step_00000004"
    reference_keys = set(
        dist_checkpointing.load_tensors_metadata(str(six_steps / step4.relative_to(run_dir)))
    )
    assert set(dist_checkpointing.load_tensors_metadata(str(step4))) == reference_keys
    (run_dir / "checkpoints" / "latest").write_text(step4.name)  # continue from step 4 in the other layout
    run_cli(resume_args(run_dir, init_ckpt, *SIX, *load_sets), nproc=load_nproc)
    resumed, reference = losses(run_dir), losses(six_steps)
    assert len(resumed) == 6, resumed
    diffs = [abs(a - b) for a, b in zip(resumed[4:], reference[4:], strict=True)]
    assert max(diffs) <= 1e-5, f"{case}: steps 5-6 {resumed[4:]} vs {reference[4:]} (diffs {diffs})"


def test_resume_refuses_a_changed_base(init_ckpt: Path, tmp_path: Path) -> None:
    run_dir, other = tmp_path / "run", tmp_path / "other-init"
    run_cli(resume_args(run_dir, init_ckpt, "sft.train_steps=2", *LORA))
    run_cli(["init-model", "--out", str(other), "--set", "seed=7"])
    proc = run_cli(resume_args(run_dir, other, "sft.train_steps=3", *LORA), check=False)
    assert proc.returncode != 0
    assert "model.init_from must be the run's own" in proc.stdout + proc.stderr
