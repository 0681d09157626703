"""GRPO with the separate placement (`grpo.placement: separate`): the engines in a rollout process of
their own, real vLLM, real trainer processes.

- Synchronous (`max_off_policy_steps: 0`) it is colocated training's trajectory: the same rollouts
  (rewards, lengths) and losses within 1e-5.
- One step off-policy, a run stopped by SIGTERM to every process during overlapped generation and
  training, then SIGKILLed after resuming, then resumed again, logs exactly the uninterrupted run:
  every step trains on the same rollouts (same rewards, lengths, policy versions) with the same
  losses, none lost or trained twice. "Same" is exact here because a step's policy version is a
  function of the step alone (nemo_recipes.rollout.remote), and a checkpoint keeps the rollouts
  already generated for the steps it has not trained.
- Two steps off-policy, the rollout process keeps two steps ahead and a checkpoint holds both.
- Two trainer ranks (data parallel) train on the one rollout process's groups as one rank does.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import psutil
import pytest

from nemo_recipes.rollout.remote import PENDING_FILE
from tests.checkpoint.test_grpo_resume import sigterm_everything_at_step
from tests.checkpoint.test_sft_resume import kill_at_step, logged_steps
from tests.conftest import read_metrics, run_cli
from tests.stages.grpo_cli import grpo_args

SAME = ("reward_mean", "response_tokens_mean", "groups_drawn", "pass_rate")
"""Per step: what the rollouts were (equal exactly when they are the same rollouts)."""
SEPARATE = ("grpo.placement=separate",)


def rows(run_dir: Path) -> list[dict]:
    return read_metrics(run_dir, "grpo")


def assert_same_run(got: list[dict], want: list[dict], extra: tuple[str, ...] = ()) -> None:
    """The same steps on the same rollouts, losses within 1e-5."""
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert [g[k] for k in (*SAME, *extra)] == [w[k] for k in (*SAME, *extra)], g["step"]
        assert g["loss"] == pytest.approx(w["loss"], abs=1e-5), g["step"]
        assert g["grad_norm"] == pytest.approx(w["grad_norm"], rel=1e-4, abs=1e-6), g["step"]


def test_synchronous_separate_placement_is_colocated_training(tmp_path: Path) -> None:
    steps = ("grpo.train_steps=3",)
    run_cli(grpo_args(tmp_path / "colocated", *steps), timeout=600)
    run_cli(grpo_args(tmp_path / "separate", *steps, *SEPARATE, "grpo.max_off_policy_steps=0"), timeout=600)
    separate = rows(tmp_path / "separate")
    assert_same_run(separate, rows(tmp_path / "colocated"))
    for r in separate:
        assert r["off_policy_steps_max"] == 0 and r["logprob_mismatch_abs"] < 1e-4, r
        assert {
            "trainer_wait_seconds",
            "engine_pause_seconds",
            "engine_wait_seconds",
            "refit_seconds",
        } <= r.keys()
    last = tmp_path / "separate" / "checkpoints" / "step_00000003"
    assert pickle.loads((last / PENDING_FILE).read_bytes()) == []  # no step left to generate ahead
    assert _no_rollout_process_left()


def test_two_steps_off_policy_runs_ahead_and_checkpoints_what_it_generated(tmp_path: Path) -> None:
    """k = 2: the rollout process keeps two steps ahead (versions 0, 0, 0, 1 for steps 1-4 counted
    from 1), and a checkpoint holds the steps generated for it that it has not trained, each from its
    own version. (A rollout process one send behind, or holding one version, deadlocked here.)"""
    run_dir = tmp_path / "k2"
    sets = (*SEPARATE, "grpo.max_off_policy_steps=2", "grpo.train_steps=4")
    run_cli(grpo_args(run_dir, *sets, "grpo.checkpoint.save_interval_steps=2"), timeout=600)
    assert [r["off_policy_steps_max"] for r in rows(run_dir)] == [0, 1, 2, 2]
    pending = pickle.loads((run_dir / "checkpoints" / "step_00000002" / PENDING_FILE).read_bytes())
    assert [(p.step, {g.policy_version for g in p.groups.groups}) for p in pending] == [(2, {0}), (3, {1})]
    assert _no_rollout_process_left()


STEPS = 6
ASYNC = (*SEPARATE, "grpo.max_off_policy_steps=1", f"grpo.train_steps={STEPS}")


def async_args(run_dir: Path, *extra: str) -> list[str]:
    return grpo_args(run_dir, *ASYNC, "grpo.checkpoint.save_interval_steps=100", *extra)


@pytest.mark.slow
def test_one_step_off_policy_stopped_killed_and_resumed_is_the_uninterrupted_run(tmp_path: Path) -> None:
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run_cli(async_args(full_dir), timeout=900)
    reference = rows(full_dir)
    assert [r["off_policy_steps_max"] for r in reference] == [0] + [1] * (STEPS - 1)

    stopped = sigterm_everything_at_step(async_args(cut_dir), cut_dir, 2)
    assert stopped < STEPS
    checkpoint = cut_dir / "checkpoints" / f"step_{stopped:08d}"
    pending = pickle.loads((checkpoint / PENDING_FILE).read_bytes())
    assert [p.step for p in pending] == [stopped]  # generated ahead, not trained: kept, not lost
    assert {g.policy_version for g in pending[0].groups.groups} == {stopped - 1}
    assert _no_rollout_process_left()
    # Checkpoints only on the stop signal (interval 100): the kill loses the steps after it.
    kill_at_step(async_args(cut_dir), 1, cut_dir, stopped + 2)
    assert logged_steps(cut_dir) < STEPS
    run_cli(async_args(cut_dir), timeout=900)
    assert_same_run(rows(cut_dir), reference, extra=("off_policy_steps_mean",))
    assert _no_rollout_process_left()


@pytest.mark.slow
def test_two_trainer_ranks_train_on_the_rollout_process_as_one_does(tmp_path: Path) -> None:
    run_cli(async_args(tmp_path / "one", "grpo.train_steps=3"), timeout=900)
    run_cli(async_args(tmp_path / "two", "grpo.train_steps=3"), nproc=2, timeout=900)
    assert_same_run(rows(tmp_path / "two"), rows(tmp_path / "one"), extra=("off_policy_steps_mean",))


def _no_rollout_process_left() -> bool:
    """No `redone rollout-server` process of ours survives its run."""
    me = psutil.Process()
    ours = [
        p for p in psutil.process_iter(["cmdline"]) if "rollout-server" in " ".join(p.info["cmdline"] or [])
    ]
    return not [p for p in ours if p.pid != me.pid and p.status() != psutil.STATUS_ZOMBIE]
