"""Manifests and config diffs, the metrics summary they carry, the units' typed outputs in them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nemo_recipes.metrics import summarize_metrics
from nemo_recipes.pipeline.errors import PipelineError, UnitNotFinishedError
from nemo_recipes.pipeline.manifest import changed_keys, file_digest, read_manifest, write_manifest
from nemo_recipes.pipeline.outputs import (
    DiagnosisOutputs,
    EvalUnitOutputs,
    FinalOutputs,
    SFTDataOutputs,
    SuiteScores,
    TrainingOutputs,
    UnitOutputs,
    read_outputs,
    suite_scores,
)
from tests.finished_run import eval_report


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


def test_typed_outputs_round_trip_through_the_manifest(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoints" / "step_2"
    samples = [
        EvalUnitOutputs(checkpoint, tmp_path / "eval/report.json", {"sns": 9.0, "general": None}),
        TrainingOutputs(
            checkpoint, tmp_path / "eval/report.json", {"sns": 4.5}, {"steps": 2, "loss_last": 1.5}
        ),
        TrainingOutputs(tmp_path / "merged", tmp_path / "eval/report.json", {}, {}, adapters=checkpoint),
        DiagnosisOutputs(checkpoint, tmp_path / "diagnosis.json", ["sns_hashtag", "sns_ner"]),
        SFTDataOutputs(
            checkpoint, tmp_path / "train.jsonl", "ab" * 32, {"total": 3, "targeted": {"records": 2}}
        ),
        FinalOutputs(checkpoint, tmp_path / "hf", tmp_path / "report.md"),
        FinalOutputs(checkpoint, None, tmp_path / "report.md"),
    ]
    for i, outputs in enumerate(samples):
        unit_dir = tmp_path / f"unit{i}"
        unit_dir.mkdir()
        write_manifest(unit_dir, {"unit": unit_dir.name, "outputs": outputs.to_json()})
        assert read_manifest(unit_dir)["outputs"]["checkpoint"] == str(outputs.checkpoint)  # strings
        assert read_outputs(unit_dir, type(outputs)) == outputs
        assert read_outputs(unit_dir, UnitOutputs) == UnitOutputs(outputs.checkpoint)  # as a base type
    before_lora = samples[1].to_json()
    del before_lora["adapters"]  # a manifest written before LoRA: a full fine-tune
    (tmp_path / "old").mkdir()
    write_manifest(tmp_path / "old", {"unit": "old", "outputs": before_lora})
    assert read_outputs(tmp_path / "old", TrainingOutputs) == samples[1]


def test_reading_an_unfinished_or_incomplete_unit_is_a_clear_error(tmp_path: Path) -> None:
    unit_dir = tmp_path / "stage1_grpo"
    unfinished = f"stage1_grpo has not finished (no {unit_dir / 'manifest.json'})"
    with pytest.raises(UnitNotFinishedError, match=re.escape(unfinished)):
        read_outputs(unit_dir, TrainingOutputs)
    assert issubclass(UnitNotFinishedError, PipelineError)  # `redone run` reports it in one line
    unit_dir.mkdir()
    write_manifest(unit_dir, {"outputs": {"checkpoint": "/c", "eval_report": "/r"}})
    incomplete = f"{unit_dir / 'manifest.json'}: the outputs lack scores, training"
    with pytest.raises(PipelineError, match=re.escape(incomplete)):
        read_outputs(unit_dir, TrainingOutputs)


def test_suite_scores_of_an_eval_report() -> None:
    report = eval_report("base", {"sns": 9.0, "translation": 3.8, "general": None})
    scores = suite_scores(report)
    assert list(scores) == ["sns", "translation", "general"]
    assert scores["sns"] == SuiteScores(9.0, {"sns_hashtag": 9.0, "sns_ner": 10.0, "sns_taxonomy": 11.0})
    assert scores["general"] == SuiteScores(None, {})
