"""A finished `redone run` directory as the runner writes it, without models: every unit's manifest (its
`outputs` in the layout run directories hold), eval reports, the diagnosis, stage 2's data, stage 3's
weights and stand-in checkpoints (a LoRA unit's with its lora.json and merged copy). For the pipeline's
tests of its typed outputs and report."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from nemo_recipes.checkpoint.files import LORA_FILE
from nemo_recipes.config import RunConfig
from nemo_recipes.config.model import LoRAConfig
from nemo_recipes.config.pipeline import UNITS
from nemo_recipes.pipeline.manifest import file_digest, write_manifest
from nemo_recipes.pipeline.runner import Pipeline

SCORES = {
    "base_eval": {"sns": 9.0, "translation": 3.8, "general": None},
    "stage1_grpo": {"sns": 4.5, "translation": 4.0, "general": 0.0},
    "stage2_sft": {"sns": 11.5, "translation": 0.5, "general": 0.0},
    "stage3_grpo": {"sns": 7.6, "translation": 0.9, "general": 0.0},
    "baseline_sft": {"sns": 10.0, "translation": 1.0, "general": 0.0},
}
"""Suite scores of the evaluated units (the demo's, with the base model's general suite unscored)."""
TRAINING = {"steps": 2, "reward_mean_first": 0.375, "reward_mean_last": 0.375, "conversations_seen": 40}
"""summarize_metrics of the training units' metrics.jsonl below."""
SELECTED = ["sns_hashtag", "sns_ner"]
STATS = {"total": 10, "targeted": {"records": 8}, "rehearsal": {"records": 2}, "rehearsal_share": 0.2}
STARTS_FROM = {
    "stage1_grpo": "base_eval",
    "diagnosis": "stage1_grpo",
    "sft_data": "stage1_grpo",
    "stage2_sft": "stage1_grpo",
    "stage3_grpo": "stage2_sft",
    "baseline_sft": "base_eval",
    "final": "stage3_grpo",
}
"""The unit whose checkpoint each unit starts from."""
TRAINED = ("stage1_grpo", "stage2_sft", "stage3_grpo", "baseline_sft")
LORA = LoRAConfig(rank=8, alpha=16.0, target_modules=["linear_qkv", "linear_proj"])
"""The adapters' settings of a unit written with `lora=True`."""
BASE_SHA256 = "0123456789ab" + "f" * 52


def quiet_pipeline(cfg: RunConfig, root: Path, nproc: int = 1) -> Pipeline:
    """A Pipeline, without keeping the stop-signal handlers that its child runner installs."""
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR1)
    try:
        return Pipeline(cfg, root, nproc)
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGUSR1, saved[1])


def eval_report(model: str, scores: dict[str, float | None]) -> dict[str, Any]:
    """An eval report.json with each suite's score spread over its tasks."""
    tasks = {
        "sns": ["sns_hashtag", "sns_ner", "sns_taxonomy"],
        "translation": ["sns_translation_en2zh", "sns_translation_zh2en"],
        "general": ["general_arithmetic"],
    }
    suites = {}
    for suite, score in scores.items():
        by_task = {} if score is None else {t: {"score": score + i} for i, t in enumerate(tasks[suite])}
        suites[suite] = {"score": score, "tasks": by_task}
    suites["translation"]["directions"] = {"zh-en": {"bleu": 1.0, "chrf++": 2.0}}
    return {"label": model, "model": model, "items": 12, "suites": suites}


def _write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def _unit_files(root: Path, unit: str, lora_base: str | None = None) -> None:
    """The files a unit leaves besides its manifest; with `lora_base`, a LoRA unit's record of it."""
    out = root / unit
    out.mkdir(parents=True, exist_ok=True)
    if unit in SCORES:
        _write_json(out / "eval" / "report.json", eval_report(unit, SCORES[unit]))
    if unit in TRAINED:
        _write_json(out / "checkpoints" / "step_2" / "trainer_state.json", {"step": 2})
        (out / "checkpoints" / "latest").write_text("step_2", encoding="utf-8")
        rows = [
            {"stage": "grpo", "step": s, "reward_mean": s / 4, "task/sns_ner/pass_rate": 0.5} for s in (1, 2)
        ]
        rows[-1]["conversations_seen"] = TRAINING["conversations_seen"]
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        if lora_base is not None:
            record = {"base": lora_base, "base_sha256": BASE_SHA256, "lora": LORA.model_dump()}
            _write_json(out / "checkpoints" / "step_2" / LORA_FILE, record)
    if unit == "diagnosis":
        _write_json(out / "diagnosis.json", {"selected": SELECTED})
        (out / "diagnosis.md").write_text("# Diagnosis\n", encoding="utf-8")
    if unit == "sft_data":
        _write_json(out / "stats.json", STATS)
        (out / "train.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    if unit == "stage3_grpo":
        weights = {
            "sns_hashtag": {"weight": 2.0, "base_weight": 1.0, "pass_rate": None, "diagnosed": True},
            "sns_ner": {"weight": 3.0, "base_weight": 1.0, "pass_rate": 0.5, "diagnosed": True},
        }
        _write_json(out / "task_weights.json", weights)
    if unit == "baseline_sft":
        budget = {
            "rl_first": {"stage1_grpo": 8, "stage2_sft": 40, "stage3_grpo": 8},
            "baseline_records": 1000,
        }
        _write_json(out / "example_budget.json", budget)


def unit_outputs(root: Path, base: Path, unit: str, lora: bool = False) -> dict[str, Any]:
    """A unit's manifest `outputs`, laid out as the runner writes them (a LoRA unit's with `lora`)."""
    checkpoint = {"base_eval": str(base)} | {u: str(root / u / "checkpoints" / "step_2") for u in TRAINED}
    if unit in SCORES:
        model = str(root / unit / "merged") if lora else checkpoint[unit]
        evaluated = {"eval_report": str(root / unit / "eval" / "report.json"), "scores": SCORES[unit]}
        adapters = checkpoint[unit] if lora else None
        training = {} if unit == "base_eval" else {"training": TRAINING, "adapters": adapters}
        return {"checkpoint": model, **evaluated, **training}
    if unit == "diagnosis":
        diagnosis = str(root / unit / "diagnosis.json")
        return {"checkpoint": checkpoint["stage1_grpo"], "diagnosis": diagnosis, "selected": SELECTED}
    if unit == "sft_data":
        train = root / unit / "train.jsonl"
        digest = file_digest(train)
        return {
            "checkpoint": checkpoint["stage1_grpo"],
            "train": str(train),
            "train_sha256": digest,
            "stats": STATS,
        }
    hf, report = str(root / "final" / "hf"), str(root / "final" / "report.md")
    return {"checkpoint": checkpoint["stage3_grpo"], "hf_dir": hf, "report": report}


def write_unit(
    root: Path, base: Path, unit: str, config_hash: str = "0" * 64, lora: bool = False
) -> dict[str, Any]:
    """Leave `unit` finished under `root` (its files, then its manifest; a LoRA unit with `lora`, on a
    full parent); returns its manifest."""
    parent = UNITS[UNITS.index(unit) - 1] if unit != UNITS[0] else None
    starts_from = (
        unit_outputs(root, base, STARTS_FROM[unit])["checkpoint"] if unit in STARTS_FROM else str(base)
    )
    _unit_files(root, unit, starts_from if lora else None)
    outputs = unit_outputs(root, base, unit, lora)
    manifest = {
        "unit": unit,
        "commands": [["redone", "eval", str(base)]],
        "config_hash": config_hash,
        "config_files": ["eval.yaml"],
        "data": {},
        "parent": parent,
        "parent_manifest_sha256": None,
        "parent_checkpoint": starts_from,
        "outputs": outputs,
        "started": "2026-11-23T10:00:00+00:00",
        "finished": "2026-11-23T10:01:00+00:00",
        "seconds": 60.0,
        "attempts": 1,
        "processes": 1,
    }
    write_manifest(root / unit, manifest)
    return manifest
