"""Balanced task sampling: weights respected, every record visited per pass, resumable from a position."""

from __future__ import annotations

from collections import Counter

from nemo_recipes.data.task_sampler import BLOCK, TaskSampler

# 90 records of a big task, 10 of a small one
TASKS = ["big"] * 90 + ["small"] * 10


def test_tasks_are_balanced_by_weight_not_by_record_count() -> None:
    draws = TaskSampler(TASKS, {}, seed=0).draw(0, 2000)
    share = Counter(TASKS[i] for i in draws)
    assert 0.45 < share["small"] / 2000 < 0.55  # equal weights: half the draws, from 10% of records
    weighted = TaskSampler(TASKS, {"small": 3.0}, seed=0).draw(0, 2000)
    assert 0.70 < sum(TASKS[i] == "small" for i in weighted) / 2000 < 0.80


def test_each_pass_over_a_task_visits_every_record_once() -> None:
    draws = TaskSampler(TASKS, {}, seed=1).draw(0, 400)
    small = [i for i in draws if TASKS[i] == "small"]
    for k in range(len(small) // 10):
        assert sorted(small[10 * k : 10 * (k + 1)]) == list(range(90, 100))
    assert small[:10] != small[10:20]  # a new permutation each pass


def test_draws_are_a_pure_function_of_seed_and_position() -> None:
    whole = TaskSampler(TASKS, {}, seed=2).draw(0, 2 * BLOCK + 100)
    resumed = TaskSampler(TASKS, {}, seed=2)  # a fresh sampler, as after a restart
    assert resumed.draw(BLOCK - 7, 500) == whole[BLOCK - 7 : BLOCK + 493]
    assert resumed.draw(3, 5) == whole[3:8]  # rewinding works too
    pieces = TaskSampler(TASKS, {}, seed=2)
    assert pieces.draw(0, 10) + pieces.draw(10, 2 * BLOCK + 90) == whole
    assert TaskSampler(TASKS, {}, seed=3).draw(0, 50) != whole[:50]
