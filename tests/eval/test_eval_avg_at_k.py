"""avg@k evaluation (`eval.generation.num_generations_per_prompt` k at a temperature above 0): k
sampled responses per item saved in predictions.jsonl, each item scored as their mean, the report
saying how it decoded; predictions written under another k are refused, naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.predict import read_predictions
from nemo_recipes.config.loader import ConfigError
from tests.conftest import REPO, run_cli

BASE = REPO / "nemo_recipes/assets/models/demo-base"


def eval_args(out: Path, k: int) -> list[str]:
    sets = [
        f"eval.generation.num_generations_per_prompt={k}",
        "eval.generation.temperature=1.0",
        "eval.generation.max_response_tokens=8",
        f"model.tokenizer={BASE}",
    ]
    args = ["eval", str(BASE), "--out", str(out), "--tasks", "sns_taxonomy", "--no-progress"]
    return [*args, *[a for s in sets for a in ("--set", s)]]


def test_avg_at_k_scores_each_item_as_the_mean_of_its_k_samples(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    run_cli(eval_args(out, 3), timeout=600)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(
        len(r["responses"]) == 3 and r["response"] == r["responses"][0] for r in rows
    )
    report = json.loads((out / "report.json").read_text())
    values = report["suites"]["sns"]["tasks"]["sns_taxonomy"]["item_scores"].values()
    assert all(round(v * 3 / 100, 6).is_integer() for v in values)  # exact match averaged over 3
    assert any(0 < v < 100 for v in values)  # the demo base is unsure of some items at temperature 1
    assert "Decoding: demo-base: avg@3, temperature 1." in (out / "report.md").read_text()
    # Resuming into the same directory under another k would mix the two: refused before the export.
    done = run_cli(eval_args(out, 2), check=False)
    assert done.returncode != 0
    assert f"{out / 'predictions.jsonl'}:1: 3 responses" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(ConfigError, match="num_generations_per_prompt is 2"):
        read_predictions(out / "predictions.jsonl", per_item=2)
