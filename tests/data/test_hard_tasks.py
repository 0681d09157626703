"""Stage 3's task weights on hand-computed numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_recipes.config.pipeline import RefineConfig
from nemo_recipes.data.hard_tasks import hard_task_weights, late_pass_rates


def test_late_pass_rates_average_the_last_steps_per_task(tmp_path: Path) -> None:
    rows = [
        {"stage": "grpo", "step": 1, "task/a/pass_rate": 0.0, "task/b/pass_rate": 1.0},
        {"stage": "grpo", "step": 2, "task/a/pass_rate": 0.5},
        {"stage": "grpo", "step": 3, "task/a/pass_rate": 0.25, "task/c/pass_rate": 0.75},
        {"stage": "sft", "step": 3, "task/a/pass_rate": 9.0},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert late_pass_rates(path, window_steps=2) == {"a": 0.375, "c": 0.75}  # b: only in step 1
    assert late_pass_rates(path, window_steps=3) == {"a": 0.25, "b": 1.0, "c": 0.75}
    with pytest.raises(ValueError, match="no `other` steps"):
        late_pass_rates(path, 2, stage="other")


def test_weights_tilt_toward_diagnosed_and_failing_tasks() -> None:
    cfg = RefineConfig(diagnosed_task_weight=3.0, pass_rate_boost=2.0)
    weights = hard_task_weights(
        ["easy", "hard", "picked", "unseen"],
        {"easy": 1.0, "hard": 0.5, "picked": 1.0, "unseen": 2.0},
        diagnosed=["picked"],
        pass_rates={"easy": 1.0, "hard": 0.25, "picked": 0.5},
        cfg=cfg,
    )
    assert weights["easy"].weight == pytest.approx(1.0)  # passes always: no boost
    assert weights["hard"].weight == pytest.approx(0.5 * (1 + 2.0 * 0.75))
    assert weights["picked"].weight == pytest.approx(1.0 * 3.0 * (1 + 2.0 * 0.5))
    assert weights["unseen"].weight == pytest.approx(2.0)  # no pass rate: its base weight
    assert weights["picked"].diagnosed and not weights["hard"].diagnosed
    assert weights["unseen"].pass_rate is None
