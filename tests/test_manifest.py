"""Manifests and config diffs, and the metrics summary they carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_recipes.metrics import summarize_metrics
from nemo_recipes.pipeline.manifest import changed_keys, file_digest, read_manifest, write_manifest


def test_changed_keys_name_every_differing_path() -> None:
    old = {"grpo": {"train_steps": 2, "sampling": {"n": 4}}, "seed": 1, "gone": 0}
    new = {"grpo": {"train_steps": 3, "sampling": {"n": 4}}, "seed": 1, "added": {"x": 1}}
    assert changed_keys(old, new) == ["added", "gone", "grpo.train_steps"]
    assert changed_keys(old, old) == []


def test_manifest_round_trip_and_digest(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    write_manifest(tmp_path, {"unit": "x", "outputs": {"a": 1}})
    assert read_manifest(tmp_path) == {"unit": "x", "outputs": {"a": 1}}
    (tmp_path / "f").write_bytes(b"abc")
    assert file_digest(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_summarize_metrics_first_and_last_windows(tmp_path: Path) -> None:
    rows = [{"stage": "grpo", "step": s, "reward_mean": s / 10} for s in range(1, 7)]
    rows.append({"stage": "grpo", "step": 6, "val_loss": 2.0})
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize_metrics(path, window_steps=2)
    assert summary["steps"] == 6
    assert summary["reward_mean_first"] == pytest.approx(0.15)
    assert summary["reward_mean_last"] == pytest.approx(0.55)
    assert summary["val_loss_last"] == 2.0
    assert "loss_first" not in summary
