"""Packing into megatron-core indexed datasets: token ids read back equal a direct tokenizer encode."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import numpy as np
import pytest
import torch.distributed as dist
from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
from megatron.core.datasets.utils import get_blend_from_list
from pydantic import ValidationError
from transformers import AutoTokenizer

from data_prep.recipe import DataRecipe
from data_prep.runner import run_recipe
from data_prep.steps.pack import indexed_dataset
from nemo_recipes.config.assets import resolve_asset
from tests.data_prep.corpus import en_sentences, zh_reviews
from tests.data_prep.recipe_files import make_recipe, read_output, write_jsonl


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """Two input files (zh posts with emoji, en sentences) through normalize + pack."""
    tmp = tmp_path_factory.mktemp("pack")
    zh = [{"id": f"z{i}", "text": t + " 😂"} for i, t in enumerate(zh_reviews()[:150])]
    en = [{"id": f"e{i}", "text": t} for i, t in enumerate(en_sentences()[:100])]
    write_jsonl(tmp / "a.jsonl", zh)
    write_jsonl(tmp / "b.jsonl", en)
    recipe = make_recipe(tmp, [str(tmp / "[ab].jsonl")], [{"kind": "normalize"}, {"kind": "pack"}])
    stats = {s.name: s for s in run_recipe(recipe)}
    return recipe.output_dir, stats


def test_token_ids_read_back_equal_a_direct_encode(packed):
    out, stats = packed
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_asset("tiny", "tokenizer")))
    module = indexed_dataset()
    total = 0
    for index, texts in enumerate([[r["text"] for r in read_output(out) if r["id"][0] == s] for s in "ze"]):
        dataset = module.IndexedDataset(str(out / "pack" / f"shard-{index:05d}"))
        assert len(dataset) == len(texts) and dataset[0].dtype == np.uint16
        for i, text in enumerate(texts):
            expected = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            assert dataset[i].tolist() == expected, (index, i, text)
        total += int(dataset.sequence_lengths.sum())
    assert stats["pack"].counters["tokens"] == total and stats["pack"].docs_in == 250
    blend = json.loads((out / "pack" / "blend.json").read_text())
    assert [int(w) for w in blend["data_path"][::2]] == [s["tokens"] for s in blend["shards"]]
    assert sum(s["tokens"] for s in blend["shards"]) == total
    merged = module.IndexedDataset(blend["merged"])
    shard_b = module.IndexedDataset(blend["shards"][1]["prefix"])
    assert len(merged) == 250 and merged[150].tolist() == shard_b[0].tolist()


@pytest.fixture
def one_process_group(tmp_path):
    """megatron-core's dataset builder asks torch.distributed for the rank."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_megatron_builds_a_gpt_dataset_from_the_blend(packed, one_process_group, tmp_path):
    out, _ = packed
    blend = json.loads((out / "pack" / "blend.json").read_text())
    tokenizer = SimpleNamespace(vocab_size=445, eod=2, pad=0, unique_identifiers={"tokenizer": "tiny"})
    config = GPTDatasetConfig(
        random_seed=1,
        sequence_length=64,
        blend=get_blend_from_list(blend["data_path"]),
        split="1,0,0",
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        path_to_cache=str(tmp_path / "cache"),
    )
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [50, 0, 0], lambda: True, config).build()
    samples = [train[i]["tokens"] for i in range(len(train))]
    flat = np.concatenate([t.numpy() for t in samples])
    assert len(samples) >= 50 and len(samples[0]) == 64
    assert flat.max() < 445 and (flat == 2).any()  # documents end with EOS


def test_pack_must_be_last_and_cannot_pack_task_records(tmp_path):
    base = {"inputs": [{"paths": ["x.jsonl"]}], "output_dir": str(tmp_path)}
    with pytest.raises(ValidationError, match="pack must be the last step"):
        DataRecipe.model_validate({**base, "steps": [{"kind": "pack"}, {"kind": "normalize"}]})
    task = {"kind": "to_task", "task": "t", "answer_field": "label"}
    with pytest.raises(ValidationError, match="cannot follow to_task"):
        DataRecipe.model_validate({**base, "steps": [task, {"kind": "pack"}]})
