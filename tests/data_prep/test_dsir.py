"""Importance resampling (DSIR) toward a target: a source like the target gains share; CJK-aware n-grams."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydantic import ValidationError

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.runner import run_recipe
from data_prep.steps.dsir import Dsir, DsirConfig, SelectionTooLargeError, hashed_ngrams
from tests.data_prep.corpus import news_sentences, zh_reviews
from tests.data_prep.recipe_files import make_recipe, read_output, write_jsonl


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """600 reviews and 600 news sentences (two shards), and 300 other news sentences as the target."""
    rng = random.Random(0)
    news, reviews = list(news_sentences()), list(zh_reviews())
    rng.shuffle(news)
    rng.shuffle(reviews)
    target = write_jsonl(tmp_path_factory.mktemp("dsir") / "target.jsonl", [{"text": t} for t in news[:300]])
    shards = [
        [Doc(f"review-{i}", t, "r:1", {}) for i, t in enumerate(reviews[:600])],
        [Doc(f"news-{i}", t, "n:1", {}) for i, t in enumerate(news[1000:1600])],
    ]
    return target, shards


def _news_share(shards, target, **kw):
    step = Dsir(DsirConfig(target_paths=[str(target)], fraction=0.5, **kw))
    drops = step.decide([step.signatures(s) for s in shards], StepStats("dsir"))
    kept = [d for docs, gone in zip(shards, drops, strict=True) for i, d in enumerate(docs) if i not in gone]
    return sum(d.id.startswith("news") for d in kept) / len(kept), kept


def test_resampling_toward_news_raises_the_share_of_news(sources):
    target, shards = sources
    share, kept = _news_share(shards, target)
    top_share, _ = _news_share(shards, target, top_k=True)
    # About DSIR's own smoothing (1e-8 added to probabilities of ~20k target n-grams): the weights then
    # mostly count the n-grams the 300 target posts lack
    tiny, _ = _news_share(shards, target, pseudo_count=2e-4)
    print(
        f"dsir: news share 0.500 -> {share:.3f} sampled, {top_share:.3f} top-k "
        f"({tiny:.3f} with pseudo-count 2e-4)"
    )
    assert len(kept) == 600
    assert share >= 0.75 and top_share >= 0.75
    assert tiny < share


def test_the_choice_does_not_depend_on_sharding(sources):
    target, shards = sources
    step = Dsir(DsirConfig(target_paths=[str(target)], num_docs=500, seed=3))
    docs = shards[0] + shards[1]
    whole = step.decide([step.signatures(docs)], StepStats("d"))[0]
    split = step.decide([step.signatures(docs[:450]), step.signatures(docs[450:])], StepStats("d"))
    assert set(whole) == set(split[0]) | {450 + r for r in split[1]}
    assert len(docs) - len(whole) == 500
    other_seed = Dsir(DsirConfig(target_paths=[str(target)], num_docs=500, seed=4))
    assert set(other_seed.decide([other_seed.signatures(docs)], StepStats("d"))[0]) != set(whole)


def test_ngrams_are_per_character_in_chinese():
    grams = hashed_ngrams("好吃好吃", ngram_size=2, max_tokens=256, num_buckets=1 << 30)
    assert len(grams) == 4 + 3 and len(set(grams)) == 2 + 2  # 好, 吃; 好吃, 吃好
    assert len(hashed_ngrams("so good 😂", 2, 256, 1 << 30)) == 3 + 2
    assert len(hashed_ngrams("好吃好吃", 2, max_tokens=2, num_buckets=16)) == 2 + 1
    assert np.all(np.array(hashed_ngrams("今天的奶茶也太好喝了吧", 2, 256, 16)) < 16)


def test_sizes_are_checked(sources):
    target, shards = sources
    with pytest.raises(ValidationError, match="exactly one of num_docs and fraction"):
        DsirConfig(target_paths=[str(target)], num_docs=5, fraction=0.5)
    step = Dsir(DsirConfig(target_paths=[str(target)], num_docs=5000))
    with pytest.raises(SelectionTooLargeError, match="num_docs=5000 but only 1200"):
        step.decide([step.signatures(s) for s in shards], StepStats("d"))


def test_recipe_resamples_named_inputs_and_counts_each_read_once(tmp_path, sources):
    target, shards = sources
    write_jsonl(tmp_path / "reviews.jsonl", [{"id": d.id, "text": d.text} for d in shards[0][:200]])
    write_jsonl(tmp_path / "news.jsonl", [{"id": d.id, "text": d.text} for d in shards[1][:200]])
    inputs = [{"name": n, "paths": [str(tmp_path / f"{n}.jsonl")]} for n in ("reviews", "news")]
    step = {"kind": "dsir", "target_paths": [str(target)], "num_docs": 200}
    recipe = make_recipe(tmp_path, [], [step], inputs=inputs)
    stats = {s.name: s for s in run_recipe(recipe)}
    rows = read_output(recipe.output_dir)
    assert stats["read"].docs_in == 400 and stats["dsir"].docs_in == 400  # one read per input line
    assert stats["dsir"].dropped == {"not_selected": 200} and len(rows) == 200
    assert sum(r["meta"]["dataset"] == "news" for r in rows) >= 150
