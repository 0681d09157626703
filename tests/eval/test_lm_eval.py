"""lm-evaluation-harness on the shipped local task files (no hub) against the tiny exported model:
scores in range, the multiple-choice accuracy equal to one recomputed here with transformers, and the
results in `redone eval`'s general suite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from eval.lm_eval_suite import DEFAULT_INCLUDE_PATH, run_lm_eval
from eval.model_source import hf_model_dir
from eval.runner import add_lm_eval, run_eval
from nemo_recipes.config import RunConfig
from nemo_recipes.config.evaluation import EvalConfig
from nemo_recipes.config.loader import ConfigError

TASKS = ["redone_arith_mc", "redone_arith_gen"]
ITEMS = 20


@pytest.fixture(scope="module")
def hf_dir(init_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hf_model_dir(init_ckpt, tmp_path_factory.mktemp("lm_eval_export"), "tiny-qwen3", "tiny")


def mc_accuracy(hf_dir: Path) -> float:
    """redone_arith_mc's accuracy recomputed directly: per item, the choice whose continuation
    (' ' + choice after the prompt) has the highest summed log-probability, against the label."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    rows = [json.loads(x) for x in (DEFAULT_INCLUDE_PATH / "general_arithmetic_test.jsonl").open()]
    correct = 0
    for row in rows[:ITEMS]:
        context = f"Question: {row['question']}\nAnswer:"
        n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
        scores = []
        for choice in row["choices"]:
            ids = tok(context + " " + choice, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
            scores.append(sum(logits[i - 1, ids[i]].item() for i in range(n_ctx, len(ids))))
        correct += int(max(range(len(scores)), key=scores.__getitem__) == row["label"])
    return 100.0 * correct / ITEMS


def test_lm_eval_local_tasks_score_in_range(hf_dir: Path, tmp_path: Path) -> None:
    result = run_lm_eval(hf_dir, TASKS, limit=ITEMS, batch_size=8, cache=tmp_path / "cache")
    assert set(result["tasks"]) == set(TASKS)
    for task in TASKS:
        row = result["tasks"][task]
        assert row["n"] == ITEMS
        assert 0.0 <= row["score"] <= 100.0
        assert row["score_stderr"] >= 0.0  # lm-eval's stderr of the headline (x100): the interval's basis
    assert set(result["tasks"]["redone_arith_mc"]["metrics"]) == {"acc"}
    assert set(result["tasks"]["redone_arith_gen"]["metrics"]) == {"exact_match,first-number"}
    assert result["tasks"]["redone_arith_mc"]["score"] == pytest.approx(mc_accuracy(hf_dir))
    assert result["score"] == pytest.approx(sum(result["tasks"][t]["score"] for t in TASKS) / 2)
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"


def test_unknown_lm_eval_task_is_a_config_error(hf_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no_such_task"):
        run_lm_eval(hf_dir, ["no_such_task"])


def test_general_suite_counts_lm_eval_tasks() -> None:
    local = {
        "score": 30.0,
        "capabilities": {"general": 30.0},
        "tasks": {"a": {"score": 20.0}, "b": {"score": 40.0}},
    }
    harness = {"score": 75.0, "tasks": {"x": {"score": 50.0}, "y": {"score": 100.0}, "ppl": {"score": None}}}
    merged = add_lm_eval(local, harness)
    assert merged["score"] == pytest.approx((20 + 40 + 50 + 100) / 4)
    assert merged["capabilities"] == {"general": 30.0, "lm_eval": 75.0}
    assert merged["lm_eval"] is harness and local["score"] == 30.0
    assert add_lm_eval(None, harness)["score"] == pytest.approx(75.0)


def test_run_eval_reports_lm_eval_in_the_general_suite(hf_dir: Path, tmp_path: Path) -> None:
    # no general records selected (the only task is SNS): vLLM is not started, lm-eval alone scores
    cfg = RunConfig(
        eval=EvalConfig(
            suites=["general"], tasks=["sns_taxonomy"], lm_eval_tasks=["redone_arith_mc"], lm_eval_limit=8
        )
    )
    report = run_eval(hf_dir, cfg, tmp_path / "out", progress=False)
    general = report["suites"]["general"]
    assert general["lm_eval"]["tasks"]["redone_arith_mc"]["n"] == 8
    assert 0.0 <= general["score"] <= 100.0
    assert general["score"] == general["lm_eval"]["score"] == general["capabilities"]["lm_eval"]
    mc = general["lm_eval"]["tasks"]["redone_arith_mc"]
    assert mc["interval"][0] <= mc["score"] <= mc["interval"][1]
    assert general["interval"] == general["capability_intervals"]["lm_eval"] == mc["interval"]
    assert report["bootstrap"]["seed"] == cfg.seed and report["bootstrap"]["samples"] == 1000
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["suites"]["general"]["lm_eval"]["tasks"]["redone_arith_mc"]["score"] == general["score"]
