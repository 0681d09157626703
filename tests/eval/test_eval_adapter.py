"""`redone eval` of a PEFT adapter directory: merged by PEFT into its base (here one of our checkpoints,
exported first) and scored like any model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.parallel.test_sft_invariance import sft_args
from tests.stages.grpo_cli import eval_args


@pytest.mark.slow  # about 70 s on 2 cores: a LoRA SFT, its export and an evaluation
def test_eval_accepts_an_adapter_directory_with_its_base(init_ckpt: Path, tmp_path: Path) -> None:
    run_cli(sft_args(tmp_path / "run", init_ckpt, "sft.train_steps=2", "model.lora.rank=8"))
    adapter = tmp_path / "adapter"
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000002"
    run_cli(["convert", "mcore-to-hf", str(ckpt), str(adapter), "--adapter-only"])
    data = tmp_path / "items.jsonl"
    lines = (REPO / "nemo_recipes/assets/data/toy_rl/label/test.jsonl").read_text().splitlines()[:10]
    data.write_text("\n".join(lines) + "\n")
    run_cli(eval_args(adapter, tmp_path / "eval", str(data)))
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["items"] == 10
    assert (tmp_path / "eval" / "hf" / "config.json").is_file()  # the merged model it served
