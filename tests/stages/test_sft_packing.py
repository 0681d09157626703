"""Packing is invisible to the math: the same records packed (block-diagonal attention, several
conversations per row) and unpacked (one per row) give the same loss, before and after an update."""

from __future__ import annotations

from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import pytest
from transformers import AutoTokenizer

from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import load_config
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.stages.sft import METRICS, load_rows, micro_batches, record_table, sft_forward_step
from nemo_recipes.training.optimizer import build_optimizer
from nemo_recipes.training.step import run_step


def loss_before_and_after_one_step(packing: bool, records_file, tmp_path) -> tuple[float, float, int]:
    cfg = load_config(
        RunConfig,
        None,
        [
            f"sft.packing={str(packing).lower()}",
            "sft.seq_length=128",
            "sft.micro_batch_size=1",
            f"sft.train_data=[{records_file}]",
            "sft.optimizer.warmup_steps=0",
            "sft.optimizer.lr=1e-3",
        ],
    )
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_asset(cfg.model.tokenizer, "tokenizer")))
    rows, _ = load_rows(cfg.sft.train_data, tokenizer, cfg.sft, record_table(cfg))
    init_distributed(cfg.parallel, read_launch_env())
    try:
        seed_all(cfg.seed)
        model, _, _ = build_model(cfg.model, cfg.parallel)
        optimizer, scheduler = build_optimizer(model, cfg.sft.optimizer, cfg.parallel, total_steps=10)
        batches = micro_batches(rows, list(range(len(rows))), 1, 0, 1)
        before = run_step(model, batches, sft_forward_step, 128, 1, METRICS)
        run_step(model, batches, sft_forward_step, 128, 1, METRICS, optimizer, scheduler)
        after = run_step(model, batches, sft_forward_step, 128, 1, METRICS)
    finally:
        shutdown()
    assert before.sums["lm_loss"][1] == after.sums["lm_loss"][1]
    return before.mean("lm_loss"), after.mean("lm_loss"), len(rows)


def test_packed_equals_unpacked(tmp_path) -> None:
    source = resolve_asset("toy_chat/train.jsonl", "data")
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(source.read_text().splitlines(keepends=True)[:24]))
    packed_before, packed_after, packed_rows = loss_before_and_after_one_step(True, subset, tmp_path)
    plain_before, plain_after, plain_rows = loss_before_and_after_one_step(False, subset, tmp_path)
    assert packed_rows < plain_rows / 3, "the test needs rows that really hold several conversations"
    assert packed_after < packed_before - 0.01
    assert packed_before == pytest.approx(plain_before, abs=1e-5)
    assert packed_after == pytest.approx(plain_after, abs=1e-5)
