"""Qwen3-MoE trains: SFT from an HF directory with experts split over 2 ranks (EP2) matches one rank,
and the trained checkpoint exports to an HF directory whose logits match the trainer's model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import read_metrics, run_cli
from tests.conversion.hf_models import make_hf_model

STEPS = 2


def sft(run_dir: Path, hf_dir: Path, ep: int) -> list[dict]:
    sets = [
        f"run_dir={run_dir}",
        "model.hf_config=tiny-qwen3-moe",
        f"model.init_from={hf_dir}",
        f"parallel.expert_model_parallel_size={ep}",
        f"sft.train_steps={STEPS}",
        "sft.valid_data=[]",
        "sft.optimizer.lr=3e-3",
        "sft.optimizer.warmup_steps=0",
        "logging.progress_bar=false",
    ]
    run_cli(["sft", *[a for s in sets for a in ("--set", s)]], nproc=ep)
    return read_metrics(run_dir)


@pytest.mark.slow
@pytest.mark.parallel
def test_expert_parallel_sft_matches_one_rank_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDONE_CACHE_DIR", str(tmp_path / "cache"))
    hf_dir = make_hf_model("tiny-qwen3-moe", tmp_path / "tiny-qwen3-moe", "float32")
    # EP2 imports the HF directory and caches it; one rank then loads that cache (experts resharded)
    split, whole = sft(tmp_path / "ep2", hf_dir, ep=2), sft(tmp_path / "ep1", hf_dir, ep=1)
    assert len(split) == len(whole) == STEPS
    for a, b in zip(split, whole, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6), (split, whole)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5), (split, whole)
    assert whole[-1]["loss"] < whole[0]["loss"]

    ckpt = tmp_path / "ep2" / "checkpoints" / f"step_{STEPS:08d}"
    exported = tmp_path / "exported"
    run_cli(["convert", "mcore-to-hf", str(ckpt), str(exported), "--dtype", "float32"])
    proc = run_cli(["convert", "verify", str(exported), str(ckpt), "--max-abs-diff", "1e-4"])
    assert "PASS: max_abs_diff=" in proc.stdout
