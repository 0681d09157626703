"""Export of a LoRA checkpoint: merged by default, a PEFT adapter directory with `--adapter-only`.

The merged export's logits equal the unmerged megatron model's (`redone convert verify`), PEFT's
`PeftModel.from_pretrained` on the HF base gives the merged model's logits, and vLLM serving the base
with the adapter (`enable_lora`) gives the trainer's logprobs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, cli_env, run_cli
from tests.parallel.test_sft_invariance import sft_args

MAX_LOGIT_DIFF = 1e-5
MAX_LOGPROB_DIFF = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, init_ckpt: Path) -> dict[str, Path]:
    """A 3-step LoRA SFT run from `init_ckpt`, exported merged and adapter-only; the base exported too."""
    root = tmp_path_factory.mktemp("lora_export")
    run_cli(sft_args(root / "run", init_ckpt, "sft.train_steps=3", "model.lora.rank=8"))
    ckpt = root / "run" / "checkpoints" / "step_00000003"
    out = {"ckpt": ckpt, "merged": root / "merged", "adapter": root / "adapter", "base": root / "base"}
    run_cli(["convert", "mcore-to-hf", str(ckpt), str(out["merged"]), "--dtype", "float32"])
    run_cli(
        ["convert", "mcore-to-hf", str(ckpt), str(out["adapter"]), "--adapter-only", "--dtype", "float32"]
    )
    run_cli(["convert", "mcore-to-hf", str(init_ckpt), str(out["base"]), "--dtype", "float32"])
    return out


def test_merged_export_matches_the_unmerged_model_and_peft(exported: dict[str, Path]) -> None:
    proc = run_cli(
        ["convert", "verify", str(exported["merged"]), str(exported["ckpt"]), "--max-abs-diff", "1e-5"]
    )
    assert "PASS" in proc.stdout, proc.stdout[-2000:]

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = exported["adapter"]
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    merged = AutoModelForCausalLM.from_pretrained(exported["merged"], dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(exported["base"], dtype=torch.float32).eval()
    with_adapter = PeftModel.from_pretrained(base, adapter).eval()
    ids = torch.randint(0, merged.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        peft_logits, merged_logits = with_adapter(ids).logits, merged(ids).logits
        with with_adapter.disable_adapter():
            base_logits = with_adapter(ids).logits
    assert (peft_logits - base_logits).abs().max() > 1e-2  # the adapter changes the model
    assert (peft_logits - merged_logits).abs().max() <= MAX_LOGIT_DIFF


def test_vllm_serves_the_adapter_with_the_trainers_logprobs(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    env = {**cli_env(), "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CACHE_ROOT": str(tmp_path / "vllm")}
    out = tmp_path / "vllm.json"
    args = [str(exported[k]) for k in ("base", "adapter", "ckpt")]
    cmd = [sys.executable, "-m", "tests.conversion.vllm_lora_worker", *args, str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.is_file(), proc.stderr[-6000:]
    report = json.loads(out.read_text())
    assert report["num_tokens"] > 40
    assert report["max_abs_diff"] <= MAX_LOGPROB_DIFF, report


def test_adapter_only_refuses_a_checkpoint_without_adapters_before_loading_megatron(
    init_ckpt: Path, tmp_path: Path
) -> None:
    """The CLI's torch-free precheck finds no lora.json and stops: no torch or megatron was imported."""
    out = tmp_path / "x"
    argv = ["convert", "mcore-to-hf", str(init_ckpt), str(out), "--adapter-only"]
    code = (
        "import sys\nfrom nemo_recipes.cli import main\n"
        f"code = main({argv!r})\n"
        "loaded = [m for m in ('torch', 'megatron') if m in sys.modules]\n"
        "assert code == 2 and not loaded, (code, loaded)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{init_ckpt}: has no LoRA adapters (no lora.json): --adapter-only needs a LoRA checkpoint" in (
        proc.stderr
    ), proc.stderr[-3000:]
    assert not out.exists()
