"""Train a few SFT steps, export with `redone convert mcore-to-hf`, serve in vLLM: same logprobs (fp32)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, cli_env, run_cli

MAX_LOGPROB_DIFF = 1e-4


def test_sft_export_serves_in_vllm_with_the_trainers_logprobs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [
        f"run_dir={run_dir}",
        "sft.train_steps=3",
        "sft.global_batch_size=8",
        "sft.valid_data=[]",
        "logging.tensorboard=false",
        "logging.progress_bar=false",
    ]
    run_cli(["sft", "nemo_recipes/recipes/sft_tiny.yaml", *(a for o in overrides for a in ("--set", o))])
    ckpt = run_dir / "checkpoints" / "step_00000003"
    export = tmp_path / "served"
    # config.json and tokenizer come from the run's config.yaml (tiny-qwen3: tied embeddings)
    run_cli(["convert", "mcore-to-hf", str(ckpt), str(export), "--dtype", "float32"])

    env = {**cli_env(), "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CACHE_ROOT": str(tmp_path / "vllm")}
    out = tmp_path / "vllm.json"
    cmd = [sys.executable, "-m", "tests.conversion.vllm_worker", str(export), str(ckpt), str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    report = json.loads(out.read_text())
    assert report["num_tokens"] > 40
    assert report["max_abs_diff"] <= MAX_LOGPROB_DIFF, report
    assert len(report["generated"]) == 8
