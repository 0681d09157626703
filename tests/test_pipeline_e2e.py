"""`redone run` end to end on the tiny recipe: the artefacts, their consistency, stops and resumes.

The default test interrupts the run twice (SIGTERM to the pipeline in stage 1, SIGKILL to every
process in stage 2), completes it and checks what it left. The slow test kills it inside every unit
and at every boundary, and compares the final report and every prediction with an uninterrupted run.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from nemo_recipes.checkpoint.files import is_hf_dir, read_lora_record, weights_sha256
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import load_config
from nemo_recipes.config.pipeline import UNITS
from nemo_recipes.data.sft_selection import rehearsal_count
from nemo_recipes.pipeline.manifest import file_digest, read_manifest
from nemo_recipes.pipeline.report import write_final_report
from nemo_recipes.tasks import load_task_table
from tests.conftest import REPO, run_cli, signal_tree, start_cli, wait_until
from tests.finished_run import quiet_pipeline, write_unit

RECIPE = REPO / "nemo_recipes/recipes/pipeline_tiny.yaml"
EVALUATED = ("base_eval", "stage1_grpo", "stage2_sft", "stage3_grpo", "baseline_sft")


def pipeline_args(run_dir: Path, base: Path, eval_data: Path) -> list[str]:
    """The tiny recipe with the SFT-only arm on, so that every unit runs."""
    sets = [
        f"run_dir={run_dir}",
        f"model.init_from={base}",
        f"eval.data=[{eval_data}]",
        "pipeline.baseline_sft=true",
    ]
    return ["run", str(RECIPE), *(a for s in sets for a in ("--set", s))]


def stop_when(args: list[str], ready: Callable[[], bool], what: str, sig: int) -> int:
    """Start the pipeline, wait for `ready`, send `sig` (TERM: to the pipeline process only, which
    passes it on; KILL: to every process), return the exit code."""
    proc = start_cli(args)
    wait_until(proc, ready, what, timeout=900)
    if sig == signal.SIGKILL:
        signal_tree(proc, sig)
    else:
        proc.send_signal(sig)
    return proc.wait(timeout=600)


def check_artefacts(run_dir: Path) -> None:
    manifests = {unit: read_manifest(run_dir / unit) for unit in UNITS}
    assert all(manifests.values()), {u: m is None for u, m in manifests.items()}
    for previous, unit in itertools.pairwise(UNITS):  # the chain
        assert manifests[unit]["parent"] == previous
        assert manifests[unit]["parent_manifest_sha256"] == file_digest(run_dir / previous / "manifest.json")
    for parent, child in (
        ("base_eval", "stage1_grpo"),
        ("stage1_grpo", "stage2_sft"),
        ("stage2_sft", "stage3_grpo"),
    ):
        assert manifests[child]["parent_checkpoint"] == manifests[parent]["outputs"]["checkpoint"]
        stage = (run_dir / child / "stage.yaml").read_text()
        assert f"init_from: {manifests[parent]['outputs']['checkpoint']}" in stage
    for unit in ("stage1_grpo", "stage2_sft", "stage3_grpo"):
        assert manifests[unit]["outputs"]["training"]["steps"] == 2

    # The SFT-only arm: from the base, on the SNS task records, for the RL-first path's examples.
    assert manifests["baseline_sft"]["parent_checkpoint"] == manifests["base_eval"]["outputs"]["checkpoint"]
    budget = json.loads((run_dir / "baseline_sft/example_budget.json").read_text())
    stage2_seen = manifests["stage2_sft"]["outputs"]["training"]["conversations_seen"]
    assert budget["rl_first"]["stage2_sft"] == stage2_seen > 0
    stage = yaml.safe_load((run_dir / "baseline_sft/stage.yaml").read_text())
    assert stage["sft"]["epochs"] == sum(budget["rl_first"].values()) / budget["baseline_records"]
    assert stage["sft"]["record_format"] == "task" and stage["sft"]["train_data"] == ["sns_demo/train.jsonl"]
    assert manifests["baseline_sft"]["outputs"]["training"]["conversations_seen"] > 0

    # The diagnosis selected the three weakest in-domain tasks of stage 1's own report.
    report = json.loads((run_dir / "stage1_grpo/eval/report.json").read_text())
    scores = {t: r["score"] for s in ("sns", "translation") for t, r in report["suites"][s]["tasks"].items()}
    weakest = sorted(scores, key=lambda t: (scores[t], t))[:3]
    diagnosis = json.loads((run_dir / "diagnosis/diagnosis.json").read_text())
    assert diagnosis["selected"] == sorted(weakest) == manifests["diagnosis"]["outputs"]["selected"]

    # Stage 2's data: only the selected tasks, plus general rehearsal at the configured 25 %.
    table = load_task_table("sns_demo", "general")
    rows = [json.loads(line) for line in (run_dir / "sft_data/train.jsonl").read_text().splitlines()]
    rehearsal = [r for r in rows if (r.get("meta") or {}).get("rehearsal")]
    targeted = [r for r in rows if r not in rehearsal]
    assert {r["task"] for r in targeted} <= set(diagnosis["selected"]) and targeted
    assert all(table.spec(r["task"]).capability == "general" for r in rehearsal)
    assert len(rehearsal) == rehearsal_count(len(targeted), 0.25) > 0
    assert f"- {run_dir / 'sft_data/train.jsonl'}" in (run_dir / "stage2_sft/stage.yaml").read_text()

    # Stage 3 weighs the diagnosed tasks up, and trains with those weights.
    weights = json.loads((run_dir / "stage3_grpo/task_weights.json").read_text())
    for task in diagnosis["selected"]:
        assert weights[task]["diagnosed"] and weights[task]["weight"] >= 2.0 * weights[task]["base_weight"]
    stage3 = (run_dir / "stage3_grpo/stage.yaml").read_text()
    assert all(f"{t}: {w['weight']}" in stage3 for t, w in weights.items())

    final = run_dir / "final"
    for name in ("report.md", "comparison.md", "seesaw.png", "tasks.png", "hf/config.json"):
        assert (final / name).is_file(), name
    summary = json.loads((final / "summary.json").read_text())
    assert list(summary["suites"]["sns"]) == ["base", "stage1 RL", "stage2 SFT", "stage3 RL", "sft-only"]
    assert list(summary["intervals"]["sns"]) == list(summary["suites"]["sns"])
    assert [c["name"] for c in summary["claims"]] == [
        "stage1_raises_sns",
        "general_not_below_base",
        "diagnosed_tasks_improve",
        "rl_first_keeps_general",
    ]
    assert set(summary["tasks"]) == set(table.names)
    assert "RL-first vs SFT-only: SNS " in (final / "report.md").read_text()


def test_pipeline_stops_resumes_and_leaves_consistent_artefacts(
    tmp_path: Path, init_ckpt: Path, small_eval: Path
) -> None:
    run_dir = tmp_path / "run"
    args = pipeline_args(run_dir, init_ckpt, small_eval)
    stage1_ckpt = run_dir / "stage1_grpo/checkpoints/latest"
    assert stop_when(args, stage1_ckpt.exists, "stage 1's first checkpoint", signal.SIGTERM) == 3
    assert read_manifest(run_dir / "base_eval") and not read_manifest(run_dir / "stage1_grpo")
    stage2_ckpt = run_dir / "stage2_sft/checkpoints/latest"
    stop_when(args, stage2_ckpt.exists, "stage 2's first checkpoint", signal.SIGKILL)
    run_cli(args, timeout=1800)

    check_artefacts(run_dir)
    assert read_manifest(run_dir / "stage1_grpo")["attempts"] == 2
    assert read_manifest(run_dir / "stage2_sft")["attempts"] == 2

    again = run_cli(args, timeout=300)
    assert again.stdout.count("finished earlier, skipped") == len(UNITS)
    changed = run_cli([*args, "--set", "grpo.train_steps=3"], check=False, timeout=300)
    assert changed.returncode == 2
    assert "stage1_grpo: its config changed" in changed.stderr and "grpo.train_steps" in changed.stderr


def predictions(run_dir: Path) -> dict[str, dict[str, str]]:
    out = {}
    for unit in EVALUATED:
        lines = (run_dir / unit / "eval/predictions.jsonl").read_text().splitlines()
        out[unit] = {r["key"]: r["response"] for r in map(json.loads, lines)}
    return out


@pytest.mark.slow
def test_killed_in_every_unit_and_at_every_boundary_equals_an_uninterrupted_run(
    tmp_path: Path, init_ckpt: Path, small_eval: Path
) -> None:
    reference = tmp_path / "reference"
    run_cli(pipeline_args(reference, init_ckpt, small_eval), timeout=1800)
    run_dir = tmp_path / "killed"
    args = pipeline_args(run_dir, init_ckpt, small_eval)
    progress = {
        "base_eval": "eval/predictions.jsonl",
        "stage1_grpo": "checkpoints/latest",
        "diagnosis": "stage.yaml",
        "sft_data": "sft_data_started",
        "stage2_sft": "checkpoints/latest",
        "stage3_grpo": "checkpoints/latest",
        "baseline_sft": "checkpoints/latest",
        "final": "hf/config.json",
    }
    for unit in UNITS:
        marker = run_dir / unit / progress[unit]
        if progress[unit] == "sft_data_started":
            marker = run_dir / "sft_data/rehearsal_model/model.json"
        stop_when(args, marker.exists, f"progress in {unit}", signal.SIGKILL)
        manifest = run_dir / unit / "manifest.json"
        if not manifest.exists():
            stop_when(args, manifest.exists, f"the end of {unit}", signal.SIGKILL)
    run_cli(args, timeout=1800)
    assert (run_dir / "final/summary.json").read_text() == (reference / "final/summary.json").read_text()
    assert predictions(run_dir) == predictions(reference)
    assert (run_dir / "sft_data/train.jsonl").read_bytes() == (
        reference / "sft_data/train.jsonl"
    ).read_bytes()


@pytest.mark.slow
def test_a_lora_stage_trains_adapters_and_hands_its_merged_model_on(
    tmp_path: Path, init_ckpt: Path, small_eval: Path
) -> None:
    """`redone run` with LoRA on stage 1, to its end: the stage trains adapters on the base, exports them
    merged (an HF directory), evaluates that, and the units after it start from it; the final report
    (the later units stood in for) prints stage 1's adapters and base."""
    run_dir, base = (tmp_path / "run").resolve(), init_ckpt.resolve()
    sets = ["model.lora.rank=8", "pipeline.lora_units=[stage1_grpo]", "pipeline.stop_after=stage1_grpo"]
    run_cli(
        [*pipeline_args(run_dir, base, small_eval), *(a for s in sets for a in ("--set", s))], timeout=900
    )

    stage1 = read_manifest(run_dir / "stage1_grpo")
    merged, adapters = Path(stage1["outputs"]["checkpoint"]), Path(stage1["outputs"]["adapters"])
    assert merged == run_dir / "stage1_grpo/merged" and is_hf_dir(merged)
    assert adapters == run_dir / "stage1_grpo/checkpoints/step_00000002"
    export = ["redone", "convert", "mcore-to-hf", str(adapters), str(merged), "--dtype", "float32"]
    assert stage1["commands"][1] == export
    record = read_lora_record(adapters)
    assert record["base"] == str(base) and record["base_sha256"] == weights_sha256(base)
    assert json.loads((run_dir / "stage1_grpo/eval/report.json").read_text())["model"] == str(merged)

    cfg = load_config(RunConfig, RECIPE, [f"run_dir={run_dir}", f"model.init_from={base}", *sets])
    pipeline = quiet_pipeline(cfg, run_dir)
    for unit in ("diagnosis", "sft_data", "stage2_sft", "stage3_grpo"):
        if unit == "stage2_sft":
            model = pipeline.plan(unit).files["stage.yaml"]["model"]
            assert (model["init_from"], model["lora"]) == (str(merged), None)
        write_unit(run_dir, base, unit)
    report = write_final_report(run_dir, run_dir / "final").read_text()
    targets = "linear_qkv, linear_proj, linear_fc1, linear_fc2"
    sha = record["base_sha256"][:12]
    assert f"- stage1_grpo: LoRA rank 8, alpha 32 on {targets}; base {base} (sha256 {sha})" in report
    assert "- stage2_sft: full fine-tune" in report
