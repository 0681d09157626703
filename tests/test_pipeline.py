"""`redone run` before and around training: what fails up front, what a finished run skips, how the
units read each other's outputs back, the final report.

The pipeline end to end (and killed in each unit) is in tests/test_pipeline_e2e.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from eval.intervals import add_intervals
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError, config_hash, load_config
from nemo_recipes.config.pipeline import TRAINING_UNITS, UNITS
from nemo_recipes.demo import summary_table
from nemo_recipes.pipeline.errors import PipelineError
from nemo_recipes.pipeline.outputs import TrainingOutputs, UnitOutputs, read_outputs
from nemo_recipes.pipeline.report import write_final_report
from nemo_recipes.pipeline.runner import UNIT_TABLE
from nemo_recipes.preflight import check_run
from nemo_recipes.tasks import load_task_table
from tests.conftest import REPO, run_cli
from tests.finished_run import quiet_pipeline, write_unit

RECIPE = REPO / "nemo_recipes/recipes/pipeline_tiny.yaml"


def test_missing_data_and_unknown_task_fail_before_training(tmp_path: Path) -> None:
    good = (REPO / "nemo_recipes/assets/data/sns_demo/test.jsonl").read_text().splitlines()
    bad_record = json.loads(good[0]) | {"task": "sns_bogus"}
    records = tmp_path / "eval.jsonl"
    records.write_text("\n".join([good[1], json.dumps(bad_record)]) + "\n")
    run_dir = tmp_path / "run"
    proc = run_cli(
        [
            "run",
            str(RECIPE),
            "--set",
            f"run_dir={run_dir}",
            "--set",
            f"model.init_from={tmp_path / 'no_model'}",
            "--set",
            "grpo.train_data=[sns_demo/train.jsonl,missing_file.jsonl]",
            "--set",
            f"eval.data=[{records}]",
            "--set",
            "sft.train_data=[toy_chat/train.jsonl]",
        ],
        check=False,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert "missing_file.jsonl" in err and "grpo.train_data" in err
    assert f"{records}:2" in err and "sns_bogus" in err  # the file, the line, the task
    assert "model.init_from" in err and "no_model" in err
    assert "sft.train_data" in err
    assert not run_dir.exists()  # nothing started


def own_task(tmp_path: Path) -> tuple[Path, Path]:
    """A user's own table (one task, no general tasks) and its records."""
    table = tmp_path / "tasks.yaml"
    table.write_text("tasks:\n  my_sentiment:\n    capability: sentiment\n    reward: {kind: exact_match}\n")
    data = tmp_path / "train.jsonl"
    rows = [
        {"id": f"r{i}", "task": "my_sentiment", "language": "en", "split": "train", "question": f"Review {i}"}
        | {"answer": "positive"}
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return table, data


def test_a_pipeline_on_a_users_own_table_rehearses_the_shipped_general_set(tmp_path: Path) -> None:
    """Without general tasks of its own, a run's rehearsal and general suite come from the shipped
    general table and set (general_task_table): the whole preflight passes with no workaround."""
    table, data = own_task(tmp_path)
    sets = [f"run_dir={tmp_path / 'run'}", f"model.init_from={tmp_path}", f"task_table={table}"]
    sets += [f"grpo.train_data=[{data},general/train.jsonl]", f"sft_data.sns_data=[{data}]"]
    sets += [f"eval.data=[{data},general/test.jsonl]"]

    def problems(*more: str) -> list[str]:
        cfg = load_config(RunConfig, RECIPE, [*sets, *more])
        return [p for p in check_run(cfg, 1) if "model.init_from" not in p]  # no base model here

    assert problems() == []
    assert any("unknown task 'general_arithmetic'" in p for p in problems("general_task_table=null"))
    no_general = problems(f"sft_data.general_data=[{data}]")
    assert any("no records of a general-capability task" in p for p in no_general)
    with pytest.raises(ConfigError, match="general_task_table: null"):
        load_task_table(str(table), "general", "general")


def test_stage3_weighs_only_the_tasks_that_have_data(tmp_path: Path) -> None:
    table, data = own_task(tmp_path)
    root, base = tmp_path / "run", tmp_path / "base"
    sets = [f"run_dir={root}", f"model.init_from={base}", f"task_table={table}"]
    cfg = load_config(RunConfig, RECIPE, [*sets, f"grpo.train_data=[{data},general/train.jsonl]"])
    pipeline = quiet_pipeline(cfg, root)
    for unit in ("base_eval", "stage1_grpo", "diagnosis"):
        write_unit(root, base, unit)
    weights = pipeline.stage3_weights(cfg.grpo.train_data)
    assert set(weights) == {"my_sentiment", "general_arithmetic", "general_instruction", "general_code"}
    assert set(pipeline.stage3_weights([str(data)])) == {"my_sentiment"}


def test_where_the_stages_run_is_not_part_of_what_they_compute(tmp_path: Path) -> None:
    """A run started on a workstation resumes in a Slurm job: the launch keys stay out of the units'
    configs and hashes; training steps start every rank, the other commands one process."""
    sets = [f"run_dir={tmp_path}", "model.init_from=/models/base"]
    local_cfg = load_config(RunConfig, RECIPE, sets)
    job_cfg = load_config(
        RunConfig,
        RECIPE,
        [
            *sets,
            "pipeline.launcher=[srun, --ntasks-per-node=2]",
            "pipeline.single_launcher=[srun, --nodes=1, --ntasks=1]",
            "pipeline.command=[redone]",
        ],
    )
    local, job = (quiet_pipeline(cfg, tmp_path, nproc=2) for cfg in (local_cfg, job_cfg))
    unit = tmp_path / "stage1_grpo"
    assert config_hash(local.stage_config(unit)) == config_hash(job.stage_config(unit))
    assert job.stage_config(unit)["pipeline"]["launcher"] == []
    grpo, ev = ["grpo", "stage.yaml"], ["eval", "model"]
    here = [sys.executable, "-m", "nemo_recipes.cli"]
    assert local.child_command(grpo, training=True) == [*here, *grpo, "--nproc", "2"]
    assert local.child_command(ev, training=False) == [*here, *ev]
    assert job.child_command(grpo, training=True) == ["srun", "--ntasks-per-node=2", "redone", *grpo]
    assert job.child_command(ev, training=False) == ["srun", "--nodes=1", "--ntasks=1", "redone", *ev]


def test_every_unit_runs_with_the_runs_seed_task_table_and_engine(tmp_path: Path) -> None:
    sets = [f"run_dir={tmp_path}", "model.init_from=/models/base", "seed=77", "task_table=toy_rl"]
    pipeline = quiet_pipeline(load_config(RunConfig, RECIPE, [*sets, "engine.enforce_eager=false"]), tmp_path)
    configs = [pipeline.eval_config(), pipeline.stage_config(tmp_path / "stage1_grpo")]
    for unit_cfg in configs:
        loaded = RunConfig.model_validate(unit_cfg)
        assert (loaded.seed, loaded.task_table, loaded.engine.enforce_eager) == (77, "toy_rl", False)


def test_an_evaluations_config_holds_only_what_evaluation_reads(tmp_path: Path) -> None:
    def eval_yaml(*sets: str) -> dict:
        cfg = load_config(RunConfig, RECIPE, [f"run_dir={tmp_path}", "model.init_from=/m", *sets])
        return quiet_pipeline(cfg, tmp_path).eval_config()

    assert eval_yaml("grpo.train_steps=7", "sft.seq_length=128") == eval_yaml()  # base_eval is not redone
    assert eval_yaml("eval.batch_size=3") != eval_yaml()


def test_the_unit_table_holds_the_configured_units_in_order() -> None:
    assert tuple(UNIT_TABLE) == UNITS
    assert all(issubclass(unit.outputs, UnitOutputs) for unit in UNIT_TABLE.values())


def test_a_run_left_by_the_runner_reads_back_typed_and_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Manifests in the layout run directories hold read back as each unit's outputs type, feed the
    later units' plans, come out of the planners unchanged, and a finished run only skips its units."""
    root, base = tmp_path / "run", tmp_path / "base"
    sets = [f"run_dir={root}", f"model.init_from={base}", "pipeline.baseline_sft=true"]
    pipeline = quiet_pipeline(load_config(RunConfig, RECIPE, sets), root)
    written = {}
    for unit in UNITS:  # each planned from the units before it, as `redone run` does
        written[unit] = write_unit(root, base, unit, config_hash(pipeline.plan(unit).files))["outputs"]
    for unit in UNITS:
        typed = read_outputs(root / unit, UNIT_TABLE[unit].outputs)
        assert json.dumps(typed.to_json()) == json.dumps(written[unit])  # the same layout, key order too
        assert json.dumps(pipeline.plan(unit).outputs().to_json()) == json.dumps(written[unit])
    stage1 = pipeline.outputs("stage1_grpo", TrainingOutputs)
    assert stage1.checkpoint == root / "stage1_grpo/checkpoints/step_2" and stage1.training["steps"] == 2
    with pytest.raises(TypeError, match="DiagnosisOutputs, not TrainingOutputs"):
        pipeline.outputs("diagnosis", TrainingOutputs)
    stage2 = yaml.safe_dump(pipeline.plan("stage2_sft").files)
    assert f"init_from: {stage1.checkpoint}" in stage2 and f"- {root / 'sft_data/train.jsonl'}" in stage2
    capsys.readouterr()
    assert pipeline.run() == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == len(UNITS)


def test_the_sft_only_arm_trains_from_the_base_on_the_sns_data_for_the_rl_first_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its budget: stage 1's and stage 3's prompts (steps x prompts_per_step) plus stage 2's
    conversations; its epochs over the SNS records are that budget over their count. Off by default."""
    root, base = tmp_path / "run", tmp_path / "base"
    for unit in UNITS[:-1]:
        write_unit(root, base, unit)
    sets = [f"run_dir={root}", f"model.init_from={base}", "pipeline.baseline_sft=true"]
    cfg = load_config(RunConfig, RECIPE, sets)
    plan = quiet_pipeline(cfg, root).plan("baseline_sft")
    stage = plan.files["stage.yaml"]
    grpo = cfg.grpo
    budget = {
        "stage1_grpo": grpo.train_steps * grpo.prompts_per_step,
        "stage2_sft": 40,  # the conversations stage 2's metrics counted
        "stage3_grpo": cfg.pipeline.refine.train_steps * grpo.prompts_per_step,
    }
    assert plan.files["example_budget.json"] == {"rl_first": budget, "baseline_records": 1000}
    assert stage["model"]["init_from"] == str(base)
    assert stage["sft"]["train_data"] == cfg.sft_data.sns_data == ["sns_demo/train.jsonl"]
    assert stage["sft"]["record_format"] == "task" and stage["sft"]["valid_data"] == []
    assert stage["sft"]["train_steps"] is None and stage["sft"]["epochs"] == sum(budget.values()) / 1000
    off = quiet_pipeline(load_config(RunConfig, RECIPE, sets[:2]), root)
    assert not off.enabled("baseline_sft") and all(off.enabled(u) for u in UNITS if u != "baseline_sft")


def test_the_final_report_and_the_demo_table_read_the_units_outputs(tmp_path: Path) -> None:
    root, base = tmp_path / "run", tmp_path / "base"
    for unit in UNITS[:-1]:
        write_unit(root, base, unit)
    report = write_final_report(root, root / "final").read_text()
    stage1 = root / "stage1_grpo/checkpoints/step_2"
    assert f"| base_eval | 60 | 1 | `{base}` | sns 9.0, translation 3.8 |" in report
    assert f"| stage1_grpo | 60 | 1 | `{stage1}` | sns 4.5, translation 4.0, general 0.0 |" in report
    assert f"| diagnosis | 60 | 1 | `{stage1}` |  |" in report
    assert "Selected for stage 2: sns_hashtag, sns_ner (details:" in report
    assert "Stage 2 data: 10 records, 8 from the selected tasks, rehearsal share 0.200." in report
    assert (
        "| sns_hashtag | 2.00 | 1.00 | - | yes |" in report
        and "| sns_ner | 3.00 | 1.00 | 0.50 | yes |" in report
    )
    summary = json.loads((root / "final/summary.json").read_text())
    assert summary["suites"]["general"] == {
        "base": None,
        "stage1 RL": 0.0,
        "stage2 SFT": 0.0,
        "stage3 RL": 0.0,
        "sft-only": 0.0,
    }
    assert summary["tasks"]["sns_ner"] == {
        "base": 10.0,
        "stage1 RL": 5.5,
        "stage2 SFT": 12.5,
        "stage3 RL": 8.6,
        "sft-only": 11.0,
    }
    assert summary["intervals"]["sns"] == dict.fromkeys(summary["suites"]["sns"])  # no per-item values
    assert [c["holds"] for c in summary["claims"]] == [None] * 4  # nothing checkable without intervals
    assert summary_table(summary).splitlines() == [
        " " * 12
        + "".join(f"{label:>20s}" for label in ("base", "stage1 RL", "stage2 SFT", "stage3 RL", "sft-only")),
        "sns" + " " * 9 + "".join(f"{v:>20s}" for v in ("9.0", "4.5", "11.5", "7.6", "10.0")),
        "translation " + "".join(f"{v:>20s}" for v in ("3.8", "4.0", "0.5", "0.9", "1.0")),
        "general     " + "".join(f"{v:>20s}" for v in ("-", "0.0", "0.0", "0.0", "0.0")),
    ]
    assert "RL-first vs SFT-only: SNS -2.4 (no interval), translation -0.1 (no interval)" in report
    assert "Example budget: RL-first 56 (stage1_grpo 8, stage2_sft 40, stage3_grpo 8;" in report


def test_the_final_report_shows_the_intervals_of_the_eval_reports(tmp_path: Path) -> None:
    """Eval reports with per-item values and intervals (as `redone eval` writes them): the unit table's
    suite scores carry their intervals, and the comparison the stages' paired differences."""
    root, base = tmp_path / "run", tmp_path / "base"
    for unit in UNITS[:-1]:
        write_unit(root, base, unit)
    for unit in ("base_eval", "stage1_grpo", "stage2_sft", "stage3_grpo", "baseline_sft"):
        path = root / unit / "eval" / "report.json"
        report = json.loads(path.read_text())
        for result in report["suites"].values():
            for task in result["tasks"].values():  # 4 items around the task's score
                task["item_scores"] = {f"i{n}": task["score"] + d for n, d in enumerate((-3, -1, 1, 3))}
        report["bootstrap"] = add_intervals(report["suites"], 1234, 200)
        path.write_text(json.dumps(report))
    text = write_final_report(root, root / "final").read_text()
    sns = json.loads((root / "base_eval/eval/report.json").read_text())["suites"]["sns"]["interval"]
    assert sns is not None and sns[0] < 9.0 < sns[1]
    # translation: corpus scores without sentence statistics here, so no interval
    assert f"| `{base}` | sns 9.0 [{sns[0]:.1f}, {sns[1]:.1f}], translation 3.8 |" in text
    assert f"| SNS | 9.0 [{sns[0]:.1f}, {sns[1]:.1f}] | 4.5 [" in text
    assert "### stage1 RL - base" in text and "### stage3 RL - base" in text
    assert "| SNS | 9.0 | 4.5 | -4.5 [-" in text and "] * |" in text
    pairs = json.loads((root / "final/comparison.json").read_text())["differences"]
    assert [(p["a"], p["b"]) for p in pairs] == [
        ("base", "stage1 RL"),
        ("stage1 RL", "stage2 SFT"),
        ("stage2 SFT", "stage3 RL"),
        ("base", "stage3 RL"),
        ("sft-only", "stage3 RL"),
    ]
    claims = {c["name"]: c for c in json.loads((root / "final/summary.json").read_text())["claims"]}
    assert claims["stage1_raises_sns"]["holds"] is False  # 9.0 -> 4.5
    assert claims["general_not_below_base"]["holds"] is None  # the base has no general score
    assert claims["diagnosed_tasks_improve"]["holds"] is True  # hashtag and ner: +3.1 each
    assert claims["diagnosed_tasks_improve"]["evidence"].startswith("mean of their scores +3.1 [+3.1, +3.1]")
    assert claims["rl_first_keeps_general"]["holds"] is False  # 0.0 both
    assert "- [does not hold] stage 1 raises SNS over the base: SNS -4.5 [" in text
    assert "RL-first vs SFT-only: SNS -2.4 [" in text


def test_lora_units_are_checked_before_anything_runs(tmp_path: Path) -> None:
    """`pipeline.lora_units` takes its settings from model.lora, names training units only, and the
    SFT-only arm only when it runs; each problem names the key."""
    sets = [f"run_dir={tmp_path / 'run'}", f"model.init_from={tmp_path}"]

    def problems(*more: str) -> list[str]:
        found = check_run(load_config(RunConfig, RECIPE, [*sets, *more]), 1)
        return [p for p in found if "pipeline.lora_units" in p]

    assert problems("model.lora.rank=8", "pipeline.lora_units=[stage1_grpo]") == []
    assert problems("model.lora.rank=8") == []  # every training unit
    no_settings = problems("pipeline.lora_units=[stage2_sft]")
    assert len(no_settings) == 1 and "pipeline.lora_units ['stage2_sft']: needs model.lora" in no_settings[0]
    arm = problems("model.lora={}", "pipeline.lora_units=[baseline_sft]")
    assert arm == ["pipeline.lora_units names baseline_sft, which runs only with pipeline.baseline_sft: true"]
    assert problems("model.lora={}", "pipeline.lora_units=[baseline_sft]", "pipeline.baseline_sft=true") == []
    with pytest.raises(ConfigError, match=r"pipeline\.lora_units\.0"):
        load_config(RunConfig, RECIPE, [*sets, "pipeline.lora_units=[diagnosis]"])


def test_a_lora_unit_exports_its_adapters_merged_and_hands_that_model_on(tmp_path: Path) -> None:
    """A LoRA unit trains with model.lora, exports its checkpoint merged into `<unit>/merged`, evaluates
    that and hands it on (the next unit's model.init_from, the diagnosis, the rehearsal model); the
    final export merges a LoRA stage 3; the report says how each training unit trained."""
    root, base = tmp_path / "run", tmp_path / "base"
    sets = [f"run_dir={root}", f"model.init_from={base}", "model.lora.rank=8"]
    lora_units = ("stage1_grpo", "stage3_grpo")
    cfg = load_config(RunConfig, RECIPE, [*sets, f"pipeline.lora_units=[{','.join(lora_units)}]"])
    pipeline = quiet_pipeline(cfg, root)
    assert [u for u in TRAINING_UNITS if pipeline.trains_lora(u)] == list(lora_units)
    every = quiet_pipeline(load_config(RunConfig, RECIPE, sets), root)
    assert all(every.trains_lora(u) for u in TRAINING_UNITS)
    full = quiet_pipeline(load_config(RunConfig, RECIPE, sets[:2]), root)
    assert not any(full.trains_lora(u) for u in TRAINING_UNITS)
    assert pipeline.eval_config() == full.eval_config()  # evaluations read a checkpoint's own lora.json

    written = {}
    for unit in UNITS[:-1]:
        files = pipeline.plan(unit).files
        if unit in TRAINING_UNITS:
            assert files["stage.yaml"]["model"]["lora"] == (
                cfg.model.lora.model_dump() if unit in lora_units else None
            )
            # A unit's config (and hash) says whether it trains adapters, not which others do.
            assert files["stage.yaml"]["pipeline"]["lora_units"] is None  # at its default
        written[unit] = write_unit(root, base, unit, config_hash(files), lora=unit in lora_units)["outputs"]

    stage1_ckpt, merged = root / "stage1_grpo/checkpoints/step_2", root / "stage1_grpo/merged"
    plan = pipeline.plan("stage1_grpo")
    evaluate = ["eval", str(merged), "--config", str(root / "stage1_grpo/eval.yaml")]
    evaluate += ["--out", str(root / "stage1_grpo/eval"), "--label", "stage1 RL", "--no-progress"]
    assert [c.argv() for c in plan.commands][1:] == [
        ["convert", "mcore-to-hf", str(stage1_ckpt), str(merged), "--dtype", "float32"],
        evaluate,
    ]
    stage1 = pipeline.outputs("stage1_grpo", TrainingOutputs)
    assert (stage1.checkpoint, stage1.adapters, stage1.trained) == (merged, stage1_ckpt, stage1_ckpt)
    assert json.dumps(plan.outputs().to_json()) == json.dumps(written["stage1_grpo"])
    assert len(pipeline.plan("stage2_sft").commands) == 2  # a full unit: train, evaluate
    assert pipeline.plan("stage2_sft").files["stage.yaml"]["model"]["init_from"] == str(merged)
    assert pipeline.plan("diagnosis").files["stage.yaml"]["diagnosis"]["model"] == str(merged)
    assert pipeline.plan("sft_data").files["stage.yaml"]["sft_data"]["rehearsal_model"] == str(merged)
    stage3_ckpt = root / "stage3_grpo/checkpoints/step_2"
    export = pipeline.plan("final").commands[0].argv()  # from the adapters: merged by the export
    assert export == [
        "convert",
        "mcore-to-hf",
        str(stage3_ckpt),
        str(root / "final/hf"),
        "--dtype",
        "float32",
    ]

    report = write_final_report(root, root / "final").read_text()
    stage2 = root / "stage2_sft/checkpoints/step_2"
    assert f"| stage1_grpo | 60 | 1 | `{merged}` |" in report
    assert "## How each stage trained\n\n" in report
    adapters = "LoRA rank 8, alpha 16 on linear_qkv, linear_proj"
    assert f"- stage1_grpo: {adapters}; base {base} (sha256 0123456789ab)\n" in report
    assert "- stage2_sft: full fine-tune\n" in report
    assert f"- stage3_grpo: {adapters}; base {stage2} (sha256 0123456789ab)\n" in report
    assert "- baseline_sft: full fine-tune\n" in report
    (stage1_ckpt / "lora.json").unlink()
    with pytest.raises(PipelineError, match=r"a LoRA unit's checkpoint without its lora\.json"):
        write_final_report(root, root / "final")
