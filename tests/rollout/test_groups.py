"""Rollout collection: dynamic-sampling rounds, the round cap and its fill, draw positions, and the
per-position seeds, with a scripted engine (the RolloutEngine protocol) and the real reward path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch.distributed as dist
from transformers import AutoTokenizer

from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.generation import GenerationConfig
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.rl import GRPOConfig
from nemo_recipes.data.rl_prompts import Prompt, load_prompts
from nemo_recipes.data.task_sampler import TaskSampler
from nemo_recipes.records.chat import RecordValidationError
from nemo_recipes.records.rollout import Completion
from nemo_recipes.rollout.generate import sample_seed
from nemo_recipes.rollout.groups import collect_step_groups, engines_round, replica_round
from nemo_recipes.tasks import load_task_table


class ScriptedEngine:
    """Answers a prompt whose record id is in `solvable` right half of the time, others always wrong."""

    def __init__(self, prompts: Sequence[Prompt], tokenizer, solvable: set[str]) -> None:
        self.by_ids = {tuple(p.token_ids): p.record for p in prompts}
        self.tokenizer, self.solvable = tokenizer, solvable
        self.seen_seeds: list[int] = []

    def generate(self, prompts, sampling: GenerationConfig, seeds: Sequence[int]) -> list[list[Completion]]:
        self.seen_seeds += list(seeds)
        out = []
        for ids in prompts:
            record = self.by_ids[tuple(ids)]
            texts = [
                record.answer if record.id in self.solvable and j % 2 == 0 else "zz"
                for j in range(sampling.num_generations_per_prompt)
            ]
            encoded = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
            out.append([Completion(e, [-1.0] * len(e), "stop") for e in encoded])
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def setup(world):
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_asset("tiny", "tokenizer")))
    table = load_task_table("toy_rl")
    prompts = load_prompts(["toy_rl/train.jsonl"], table, tokenizer, 32, "raise", "grpo.train_data").prompts
    sampler = TaskSampler([p.record.task for p in prompts], {t: 1.0 for t in table.names}, seed=7)
    return tokenizer, table, prompts, sampler


def collect(setup, solvable: set[str], position: int = 0, **grpo_sets):
    tokenizer, table, prompts, sampler = setup
    grpo = GRPOConfig.model_validate(
        {"prompts_per_step": 4, "generation": {"num_generations_per_prompt": 4}} | grpo_sets
    )
    engine = ScriptedEngine(prompts, tokenizer, solvable)
    generate_round = replica_round(engine, grpo, table, tokenizer, 7, (0, 1))
    got = collect_step_groups(generate_round, prompts, sampler, position, grpo, policy_version=3)
    return got, engine, [prompts[i].record.id for i in sampler.draw(position, 64)]


def test_rounds_refill_until_enough_informative_groups(setup) -> None:
    _, _, order = collect(setup, set())
    # Solvable: draws 1 and 3 of round one, then the first draw of each later round.
    solvable = {order[1], order[3], order[4], order[6]}
    got, engine, _ = collect(setup, solvable)
    assert got.rounds == 3  # 4 drawn (2 kept), 2 drawn (1 kept), 1 drawn (1 kept)
    assert got.drawn == 7 and got.next_position == 7 and got.filled_uninformative == 0
    assert [g.position for g in got.groups] == [1, 3, 4, 6]
    assert all(g.informative for g in got.groups)
    assert sum(got.drawn_by_task.values()) == 7 and sum(got.uninformative_by_task.values()) == 3
    assert engine.seen_seeds == [sample_seed(7, p) for p in range(7)]


def test_the_round_cap_fills_with_the_first_uninformative_groups(setup) -> None:
    got, _, _ = collect(setup, set(), dynamic_sampling={"max_generation_rounds": 2})
    assert got.rounds == 2 and got.drawn == 8 and got.next_position == 8
    assert got.filled_uninformative == 4
    assert [g.position for g in got.groups] == [0, 1, 2, 3]
    assert not any(g.informative for g in got.groups)
    assert all(g.filler for g in got.groups)  # marked: the trainer leaves them out of the loss


def test_without_dynamic_sampling_one_round_is_kept_as_drawn(setup) -> None:
    _, _, order = collect(setup, set())
    got, _, _ = collect(setup, {order[12]}, position=10, dynamic_sampling={"enabled": False})
    assert got.rounds == 1 and got.drawn == 4 and got.next_position == 14
    assert [g.position for g in got.groups] == [10, 11, 12, 13]
    assert [g.informative for g in got.groups] == [False, False, True, False]
    assert got.groups[2].rewards[0] == 1.0 and got.groups[2].equivalent == [True, False, True, False]


def test_engines_of_a_rollout_process_split_a_round_and_agree_with_one(setup) -> None:
    tokenizer, table, prompts, sampler = setup
    _, _, order = collect(setup, set())
    solvable = {order[0], order[2], order[5]}
    grpo = GRPOConfig.model_validate({"prompts_per_step": 4, "generation": {"num_generations_per_prompt": 4}})
    engines = [ScriptedEngine(prompts, tokenizer, solvable) for _ in range(2)]
    two = collect_step_groups(engines_round(engines, grpo, table, tokenizer, 7), prompts, sampler, 0, grpo, 5)
    one, _, _ = collect(setup, solvable)
    assert [g.position for g in two.groups] == [g.position for g in one.groups]
    assert [g.rewards for g in two.groups] == [g.rewards for g in one.groups]
    assert all(len(e.seen_seeds) > 0 for e in engines)  # both engines generated a share of each round
    assert sorted(e for engine in engines for e in engine.seen_seeds) == sorted(
        sample_seed(7, p) for p in range(two.drawn)
    )
    assert {g.policy_version for g in two.groups} == {5} and {g.policy_version for g in one.groups} == {3}


def test_sample_seeds_are_fixed_per_position() -> None:
    seeds = [sample_seed(1234, p) for p in range(1000)]
    assert len(set(seeds)) == 1000
    assert seeds == [sample_seed(1234, p) for p in range(1000)]
    assert seeds != [sample_seed(1235, p) for p in range(1000)]


def test_bad_and_too_long_prompts_name_their_record(setup, tmp_path: Path) -> None:
    tokenizer, table, _, _ = setup
    good = resolve_asset("toy_rl/train.jsonl", "data").read_text().splitlines()[0]
    data = tmp_path / "prompts.jsonl"
    bad = '{"id": "x", "task": "nope", "language": "en", "split": "train", "question": "q", "answer": "a"}'
    data.write_text(good + "\n" + bad + "\n")
    with pytest.raises(RecordValidationError, match=rf"{data}:2: task: .*nope"):
        load_prompts([str(data)], table, tokenizer, 32, "raise", "grpo.train_data")
    skipped = load_prompts([str(data)], table, tokenizer, 32, "skip", "grpo.train_data")
    assert len(skipped.prompts) == 1 and len(skipped.skipped) == 1
    with pytest.raises(
        ConfigError,
        match=rf"{data}:1: the prompt has \d+ tokens, more than grpo.generation.max_prompt_tokens 3",
    ):
        load_prompts([str(data)], table, tokenizer, 3, "skip", "grpo.train_data")
