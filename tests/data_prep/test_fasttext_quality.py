"""The fastText quality classifier: trained on real posts vs scrambled posts and spam, fitted once per run."""

from __future__ import annotations

import json
import random

import fasttext
import pytest
from pydantic import ValidationError

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.runner import run_recipe
from data_prep.steps.fasttext_quality import FasttextQuality, FasttextQualityConfig, classifier_line
from nemo_recipes.records.chat import RecordValidationError
from tests.data_prep.corpus import en_sentences, low_quality_posts, zh_reviews
from tests.data_prep.recipe_files import make_recipe, read_output, write_jsonl


def _real_posts(seed):
    rng = random.Random(seed)
    zh, en = list(zh_reviews()), list(en_sentences())
    rng.shuffle(zh)
    rng.shuffle(en)
    return zh, en


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """Training files (1,500 real zh/en posts vs 1,500 scrambled posts and spam) and unseen test posts."""
    folder = tmp_path_factory.mktemp("examples")
    zh, en = _real_posts(0)
    positive = write_jsonl(folder / "pos.jsonl", [{"text": t} for t in zh[:1000] + en[:500]])
    negative = write_jsonl(folder / "neg.jsonl", [{"text": t} for t in low_quality_posts(1500, seed=1)])
    unseen_real = zh[5000:5600] + en[800:1100]
    return positive, negative, unseen_real, low_quality_posts(900, seed=2)


def _fitted(tmp_path, positive, negative, **kw):
    step = FasttextQuality(
        FasttextQualityConfig(positive_paths=[str(positive)], negative_paths=[str(negative)], **kw)
    )
    stats = StepStats("q")
    step.fit(tmp_path, stats)
    step.load(tmp_path)
    return step, stats


def test_classifier_keeps_unseen_real_posts_and_drops_unseen_junk(tmp_path, examples):
    positive, negative, unseen_real, unseen_junk = examples
    step, stats = _fitted(tmp_path, positive, negative)
    kept_real = sum(step.apply(Doc("d", t, "x:1", {}), stats) is None for t in unseen_real) / len(unseen_real)
    dropped_junk = sum(step.apply(Doc("d", t, "x:1", {}), stats) == "low_quality" for t in unseen_junk)
    dropped_junk /= len(unseen_junk)
    print(
        f"fasttext_quality: kept {kept_real:.3f} of {len(unseen_real)} unseen real posts, dropped "
        f"{dropped_junk:.3f} of {len(unseen_junk)} unseen junk posts; held-out "
        f"accuracy {stats.counters['fit.validation_accuracy']}"
    )
    assert kept_real >= 0.9 and dropped_junk >= 0.9
    assert stats.counters["fit.validation_accuracy"] >= 0.9
    assert stats.counters["fit.positive_examples"] == stats.counters["fit.negative_examples"] == 1500
    assert (tmp_path / "model.bin").stat().st_size < 40e6  # the default bucket would make ~500 MB
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["validation_examples"] == 300


def test_chinese_is_fed_as_characters_and_punctuation_is_kept():
    assert classifier_line("今天好开心！！😂 So happy...", 512) == "今 天 好 开 心 ! ! 😂 so happy . . ."
    assert classifier_line("今天好开心", 2) == "今 天"


def test_recipe_fits_once_scores_every_post_and_reuses_the_model(tmp_path, examples):
    positive, negative, unseen_real, unseen_junk = examples
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(unseen_real[:60])]
    rows += [{"id": f"j{i}", "text": t} for i, t in enumerate(unseen_junk[:60])]
    write_jsonl(tmp_path / "a.jsonl", rows[::2])
    write_jsonl(tmp_path / "b.jsonl", rows[1::2])
    step = {"kind": "fasttext_quality", "positive_paths": [str(positive)], "negative_paths": [str(negative)]}
    recipe = make_recipe(tmp_path, [str(tmp_path / "[ab].jsonl")], [step], num_workers=2)
    stats = {s.name: s for s in run_recipe(recipe)}
    out = read_output(recipe.output_dir)
    assert all(0 <= r["meta"]["quality_score"] <= 1 for r in out)
    assert sum(r["id"].startswith("r") for r in out) >= 54 and sum(r["id"].startswith("j") for r in out) <= 6
    assert stats["fasttext_quality"].dropped["low_quality"] == 120 - len(out)
    assert stats["fasttext_quality"].counters["fit.positive_examples"] == 1500
    model = recipe.output_dir / ".work" / "fit-fasttext_quality" / "model.bin"
    mtime = model.stat().st_mtime_ns
    run_recipe(recipe)  # resumed: nothing is retrained
    assert model.stat().st_mtime_ns == mtime
    reuse = make_recipe(
        tmp_path / "reuse",
        [str(tmp_path / "[ab].jsonl")],
        [{"kind": "fasttext_quality", "model_path": str(model)}],
    )
    run_recipe(reuse)
    assert read_output(reuse.output_dir) == out


def test_bad_examples_and_configs_fail_loudly(tmp_path, examples, monkeypatch):
    positive, good_negative, _, _ = examples
    negative = write_jsonl(tmp_path / "neg.jsonl", [{"text": "加微信领红包"}, "{oops", {"text": "x"}])
    with pytest.raises(RecordValidationError, match=r"neg.jsonl:2: <line>: invalid JSON"):
        _fitted(tmp_path, positive, negative)
    with pytest.raises(FileNotFoundError, match="negative_paths: no file matches"):
        _fitted(tmp_path, positive, tmp_path / "missing-*.jsonl")
    with pytest.raises(ValidationError, match="needs positive_paths and negative_paths"):
        FasttextQualityConfig(positive_paths=[str(positive)])
    with pytest.raises(ValidationError, match="not both"):
        FasttextQualityConfig(model_path="m.bin", positive_paths=["p"], negative_paths=["n"])
    monkeypatch.delattr(fasttext, "train_supervised")  # fasttext-predict's module: inference only
    with pytest.raises(RuntimeError, match="force-reinstall fasttext-numpy2-wheel"):
        _fitted(tmp_path, positive, good_negative)
