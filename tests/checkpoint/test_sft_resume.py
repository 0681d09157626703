"""Kill-and-resume: a run SIGKILLed at a random step and restarted with the same command continues
with exactly the losses of an uninterrupted run; a checkpoint saved at TP=2 resumes at TP=1."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_command, cli_env, losses, run_cli, signal_tree, start_cli, wait_until
from tests.parallel.test_sft_invariance import sft_args

pytestmark = pytest.mark.parallel

STEPS = 8


def resume_args(run_dir: Path, init: Path, *extra: str) -> list[str]:
    args = sft_args(run_dir, init, f"sft.train_steps={STEPS}", "sft.checkpoint.save_interval_steps=2", *extra)
    return args


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return max(
        (json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()), default=0
    )


def kill_at_step(args: list[str], nproc: int, run_dir: Path, step: int) -> None:
    """Start the run, SIGKILL its whole process group once `step` is logged."""
    proc = start_cli(args, nproc)
    wait_until(proc, lambda: logged_steps(run_dir) >= step, f"step {step}", timeout=300)
    # torchrun starts its workers in sessions of their own: kill the whole process tree.
    signal_tree(proc)


@pytest.mark.parametrize("layout", ["dp2_distopt", pytest.param("dp2", marks=pytest.mark.slow)])
def test_sigkill_then_resume_gives_uninterrupted_losses(layout: str, init_ckpt: Path, tmp_path: Path) -> None:
    sets = ["parallel.use_distributed_optimizer=true"] if layout == "dp2_distopt" else []
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run_cli(resume_args(full_dir, init_ckpt, *sets), nproc=2)
    reference = losses(full_dir)

    kill_step = random.Random(f"{layout}-kill").randint(3, STEPS - 2)
    kill_at_step(resume_args(cut_dir, init_ckpt, *sets), 2, cut_dir, kill_step)
    assert logged_steps(cut_dir) < STEPS
    run_cli(resume_args(cut_dir, init_ckpt, *sets), nproc=2)
    resumed = losses(cut_dir)
    assert len(resumed) == STEPS, f"metrics.jsonl should read as one run: {resumed}"
    assert resumed == reference, f"killed at step {kill_step}: {resumed} vs uninterrupted {reference}"
    assert not list((cut_dir / "checkpoints").glob("*.partial"))


@pytest.mark.slow  # cross-layout loading is covered in CI by the conversion layout tests
def test_save_at_tp2_resume_at_tp1(init_ckpt: Path, tmp_path: Path) -> None:
    ref_dir, tp_dir = tmp_path / "ref", tmp_path / "tp2"
    run_cli(resume_args(ref_dir, init_ckpt, "sft.train_steps=5"))
    reference = losses(ref_dir)
    run_cli(
        resume_args(
            tp_dir,
            init_ckpt,
            "sft.train_steps=5",
            "sft.checkpoint.save_interval_steps=4",
            "parallel.tensor_model_parallel_size=2",
        ),
        nproc=2,
    )
    # Throw away step 5 of the TP=2 run: continue from its step-4 checkpoint at TP=1.
    (tp_dir / "checkpoints" / "latest").write_text("step_00000004")
    run_cli(resume_args(tp_dir, init_ckpt, "sft.train_steps=5", "sft.checkpoint.save_interval_steps=4"))
    resumed = losses(tp_dir)
    assert abs(resumed[-1] - reference[-1]) <= 1e-5, (
        f"next-step loss at TP=1 {resumed[-1]} vs {reference[-1]}"
    )


def test_sigterm_checkpoints_at_the_next_step_and_exits_3(init_ckpt: Path, tmp_path: Path) -> None:
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run_cli(resume_args(full_dir, init_ckpt, "sft.checkpoint.save_interval_steps=100"))
    args = resume_args(cut_dir, init_ckpt, "sft.checkpoint.save_interval_steps=100")
    proc = subprocess.Popen(
        cli_command(args), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wait_until(proc, lambda: logged_steps(cut_dir) >= 3, "step 3")
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 3, out[-3000:]
    stopped_at = logged_steps(cut_dir)
    assert stopped_at < STEPS
    assert (cut_dir / "checkpoints" / "latest").read_text() == f"step_{stopped_at:08d}"
    run_cli(args)
    assert losses(cut_dir) == losses(full_dir)
