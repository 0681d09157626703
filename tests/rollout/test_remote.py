"""The separate placement's bookkeeping (nemo_recipes.rollout.remote, .server): which policy version
generates each step, which versions are ever sent, the staleness check, the rollout process's
staged versions and the GPUs or CPU cores it gets on one machine."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from nemo_recipes.config.loader import ConfigError
from nemo_recipes.records.rollout import Completion, RolloutGroup
from nemo_recipes.rollout.groups import StepGroups
from nemo_recipes.rollout.remote import (
    check_versions,
    rollout_cpus,
    rollout_devices,
    version_for_step,
    version_needed,
)
from nemo_recipes.rollout.server import StagedVersions


def test_step_versions_lag_by_the_bound_and_only_needed_versions_are_sent() -> None:
    assert [version_for_step(m, 0) for m in range(4)] == [0, 1, 2, 3]
    assert [version_for_step(m, 2) for m in range(5)] == [0, 0, 0, 1, 2]
    steps = 5
    for k in (0, 1, 2):
        used = {version_for_step(m, k) for m in range(steps)}
        assert {v for v in range(steps + 1) if version_needed(v, k, steps)} == used, k
    # Resumed at step 3 with nothing in hand (a colocated checkpoint, or a larger bound than saved with):
    # the steps start from the run's own version 3, and every version sent is used.
    assert [version_for_step(m, 2, start_version=3) for m in range(3, 7)] == [3, 3, 3, 4]
    used = {version_for_step(m, 2, 3) for m in range(3, 7)}
    assert {v for v in range(3, 8) if version_needed(v, 2, 7, start_version=3)} == used
    assert not version_needed(7, 2, 7, start_version=7)  # resumed at the end: nothing to generate
    # Resumed at step 5 of 6 with step 5's rollouts in hand (k = 1): nothing left to generate either.
    assert not version_needed(5, 1, 6, start_version=5, first_step=6)
    assert version_needed(5, 2, 8, start_version=5, first_step=7)


def _groups(*versions: int) -> StepGroups:
    done = [Completion([1], [-0.5], "stop")] * 2
    groups = [
        RolloutGroup(i, "t", [1], done, [0.0, 1.0], [False, True], policy_version=v)
        for i, v in enumerate(versions)
    ]
    return StepGroups(groups, len(groups), len(groups), 1, 0, {}, {})


def test_rollouts_outside_the_bound_are_an_error() -> None:
    assert check_versions(_groups(3, 3), trained_step=4, max_off_policy_steps=1) == [1, 1]
    with pytest.raises(RuntimeError, match=r"policy versions \[2\]: outside grpo.max_off_policy_steps 1"):
        check_versions(_groups(2), trained_step=4, max_off_policy_steps=1)
    with pytest.raises(RuntimeError, match="outside"):  # from the future: a bookkeeping fault
        check_versions(_groups(5), trained_step=4, max_off_policy_steps=1)


def test_staged_versions_are_taken_in_order_while_more_arrive() -> None:
    staged = StagedVersions()
    first, second = [("w", torch.ones(2))], [("w", torch.zeros(2))]
    taker = threading.Thread(target=lambda: got.append(staged.take(0)))
    got: list = []
    taker.start()
    time.sleep(0.2)
    assert taker.is_alive()  # the generator waits for the version its step needs
    staged.put(0, first)
    staged.put(1, second)  # the receiver never waits for room
    taker.join(5)
    assert got == [first] and staged.take(1) is second
    staged.put(3, [])
    staged.put(4, [])
    with pytest.raises(RuntimeError, match=r"published policy versions \[3, 4\]; the next step needs 4"):
        staged.take(4)


def test_on_one_machine_the_rollout_process_gets_the_gpus_after_the_trainers() -> None:
    assert rollout_devices(["0", "1", "2", "3"], trainer_ranks=2, engines=2) == ["2", "3"]
    assert rollout_devices(["4", "5", "6"], trainer_ranks=1, engines=1) == ["5"]
    with pytest.raises(ConfigError, match=r"a GPU per trainer rank \(2\) and per engine"):
        rollout_devices(["0", "1", "2"], trainer_ranks=2, engines=2)


def test_on_a_cpu_machine_each_engine_gets_cores_of_its_own() -> None:
    # 2 cores, one trainer process, one engine: a core each (the engine the last).
    assert rollout_cpus([0, 1], trainer_ranks=1, engines=1) == (1, [[1]])
    # 16 cores, one trainer, two engines: 5 each; the trainer keeps the rest (6 threads).
    assert rollout_cpus(list(range(16)), trainer_ranks=1, engines=2) == (
        6,
        [list(range(6, 11)), list(range(11, 16))],
    )
    # 8 cores, two trainer ranks, two engines: 2 each, no core shared.
    threads, engines = rollout_cpus([10, 11, 12, 13, 14, 15, 16, 17], trainer_ranks=2, engines=2)
    assert threads == 2 and engines == [[14, 15], [16, 17]]
    # Fewer cores than processes: no split (the caller says so).
    assert rollout_cpus([0, 1], trainer_ranks=2, engines=1) is None
