"""Each command checks its whole input before it imports a model library or writes a file, and lists
every problem at once; `redone config` runs the same checks for the sections its recipe sets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.preflight import commands_of, preflight
from nemo_recipes.tasks import load_task_table
from tests.conftest import REPO, run_cli


def bad_task_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A task table with a misspelled reward kind, and a record file with one malformed record."""
    table = tmp_path / "tasks.yaml"
    table.write_text(
        "tasks:\n  sentiment:\n    capability: classification\n    reward:\n      kind: exact_mach\n"
    )
    good = resolve_asset("sns_demo/train.jsonl", "data").read_text(encoding="utf-8").splitlines()[0]
    data = tmp_path / "train.jsonl"
    data.write_text(good + '\n{"id": "x", "task": "sns_taxonomy", "question": 3}\n', encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"run_dir: {tmp_path / 'run'}\ngrpo:\n  train_data: [{data}, missing.jsonl]\n")
    return table, data, recipe


def test_config_lists_every_problem_of_the_recipe_and_fails(tmp_path: Path) -> None:
    table, data, recipe = bad_task_setup(tmp_path)
    proc = run_cli(["config", str(recipe), "--set", f"task_table={table}"], check=False)
    assert proc.returncode == 2
    assert f"{table}:5: tasks.sentiment.reward.kind = 'exact_mach' is unknown" in proc.stderr
    proc = run_cli(["config", str(recipe)], check=False)  # the shipped table: the data's faults show
    assert proc.returncode == 2
    assert f"{data}:2" in proc.stderr and "missing.jsonl" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["grpo", "sft"])
def test_a_stage_with_bad_data_fails_before_importing_torch_or_writing(tmp_path: Path, command: str) -> None:
    _, data, recipe = bad_task_setup(tmp_path)
    sets = ["--set", f"sft.train_data=[{data}]"] if command == "sft" else []
    proc = run_cli([command, str(recipe), *sets], check=False)
    assert proc.returncode == 2
    assert f"{data}:" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_preflight_runs_before_torch_is_imported(tmp_path: Path) -> None:
    _, _, recipe = bad_task_setup(tmp_path)
    code = (
        "import sys\nfrom nemo_recipes.cli import main\n"
        f"code = main(['grpo', {str(recipe)!r}])\n"
        "assert code == 2 and 'torch' not in sys.modules, (code, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_build_sft_data_needs_its_diagnosis_and_rehearsal_model(tmp_path: Path) -> None:
    cfg = load_config(RunConfig, None, [f"run_dir={tmp_path}"])
    with pytest.raises(ConfigError) as e:
        preflight(cfg, 1, "build-sft-data")
    assert "sft_data.diagnosis" in str(e.value) and "sft_data.rehearsal_model: not set" in str(e.value)


def test_eval_checks_the_model_and_the_task_names(tmp_path: Path) -> None:
    cfg = load_config(RunConfig, None, ["eval.tasks=[sns_taxonomy, sns_taxonmy]"])
    with pytest.raises(ConfigError) as e:
        preflight(cfg, 1, "eval", model=tmp_path / "nope")
    assert f"{tmp_path / 'nope'} does not exist" in str(e.value) and "'sns_taxonmy'" in str(e.value)


def test_config_checks_the_commands_of_the_sections_a_recipe_sets(tmp_path: Path) -> None:
    def commands(text: str) -> list[str]:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(text)
        return commands_of(load_config(RunConfig, recipe))

    assert commands("grpo:\n  train_steps: 3\n") == ["grpo"]
    assert commands("sft:\n  train_steps: 3\neval:\n  batch_size: 4\n") == ["sft", "eval"]
    assert commands("pipeline:\n  export_hf: false\ngrpo:\n  train_steps: 3\n") == ["run"]
    assert commands("seed: 3\n") == ["sft"]


def test_stage_two_checks_list_every_problem_and_skip_rehearsal_data_when_it_is_off(tmp_path: Path) -> None:
    base = [f"run_dir={tmp_path}", "sft_data.diagnosis=missing.json", "sft_data.rehearsal_model=nope"]
    cfg = load_config(RunConfig, None, [*base, "sft_data.general_data=[]"])
    with pytest.raises(ConfigError) as e:
        preflight(cfg, 1, "build-sft-data")
    message = str(e.value)  # the empty rehearsal data and the other problems, together
    assert "sft_data.general_data" in message and "sft_data.diagnosis" in message and "nope" in message
    off = load_config(RunConfig, None, [*base, "general_task_table=null", "sft_data.rehearsal_ratio=0"])
    with pytest.raises(ConfigError) as e:
        preflight(off, 1, "build-sft-data")
    assert "general" not in str(e.value)  # rehearsal off: its data (unknown tasks here) is not read


def test_a_pipeline_refuses_task_record_sft_and_suggests_task_names(tmp_path: Path) -> None:
    sets = [f"run_dir={tmp_path}", "sft.record_format=task", "grpo.task_weights={sns_taxonmy: 2}"]
    cfg = load_config(RunConfig, REPO / "nemo_recipes/recipes/pipeline_tiny.yaml", sets)
    with pytest.raises(ConfigError) as e:
        preflight(cfg, 1, "run")
    assert "sft.record_format: task: stage 2 trains on the chat records it builds" in str(e.value)
    assert "grpo.task_weights: unknown task 'sns_taxonmy' (did you mean 'sns_taxonomy'?)" in str(e.value)


def test_a_path_you_give_wins_over_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "general").mkdir()  # your data folder, named like the shipped general set and table
    (tmp_path / "general" / "test.jsonl").write_text("")
    assert resolve_asset("general/test.jsonl", "data") == Path("general/test.jsonl")
    assert "general_arithmetic" in load_task_table("general").names  # a folder of data is no table
