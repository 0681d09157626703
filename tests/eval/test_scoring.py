"""Suite scores from hand-made predictions equal hand-computed values (0-100 scale)."""

from __future__ import annotations

import pytest
from sacrebleu.metrics import BLEU, CHRF

from eval.scoring import Item, score_suites
from nemo_recipes.tasks import TaskRecord, load_task_table
from nemo_recipes.tasks.rewards.bleu import BleuParams, bleu_from_stats


@pytest.fixture(scope="module")
def table():
    return load_task_table("sns_demo", "general")


def record(task: str, language: str, answer: str, n: int = 0) -> TaskRecord:
    return TaskRecord(
        id=f"{task}-{n}", task=task, language=language, split="test", question="q", answer=answer
    )


def item(task: str, language: str, answer: str, response: str, n: int = 0) -> Item:
    return Item(record(task, language, answer, n), (response,))


def test_sns_and_general_scores_are_task_means_and_capability_means(table) -> None:
    items = [
        item("sns_taxonomy", "zh", "图书", "图书", 0),  # exact match: 1
        item("sns_taxonomy", "zh", "图书", "酒店", 1),  # 0
        item("sns_taxonomy", "zh", "数码", "数码", 2),  # 1
        item("sns_taxonomy", "zh", "母婴", "数码", 3),  # 0   -> task 50
        item("sns_query_note_correlation", "zh", "2", "2", 0),  # 1 -> task 100 (semantic_matching)
        item("general_arithmetic", "en", "8+49=57\nanswer: 57", "the answer is 57", 0),  # last number: 1
        item("general_arithmetic", "en", "2+2=4\nanswer: 4", "5", 1),  # 0 -> task 50
    ]
    got = score_suites(table, items, ["sns", "translation", "general"])
    assert set(got) == {"sns", "general"}  # no translation items: no translation suite
    sns = got["sns"]
    assert sns["tasks"]["sns_taxonomy"]["score"] == pytest.approx(50.0)
    assert sns["tasks"]["sns_taxonomy"]["n"] == 4
    assert sns["tasks"]["sns_query_note_correlation"]["score"] == pytest.approx(100.0)
    assert sns["capabilities"] == pytest.approx({"content_understanding": 50.0, "semantic_matching": 100.0})
    assert sns["score"] == pytest.approx(75.0)
    assert got["general"]["score"] == pytest.approx(50.0)


def test_translation_is_the_four_number_corpus_average(table) -> None:
    zh_en = [
        ("I recommend this hamburger to everyone.", "I recommend this hamburger to everyone."),
        ("The hotel was clean and quiet.", "The hotel was clean and quiet."),
    ]
    en_zh = [("明天和朋友一起去买斧头。", ""), ("这本书很好看。", "")]
    items = [item("sns_translation_zh2en", "zh-en", ref, hyp, i) for i, (ref, hyp) in enumerate(zh_en)]
    items += [item("sns_translation_en2zh", "en-zh", ref, hyp, i) for i, (ref, hyp) in enumerate(en_zh)]
    got = score_suites(table, items, ["translation"])["translation"]
    # Exact zh->en outputs: BLEU 100, chrF++ 100; empty en->zh outputs: 0 and 0; mean of the four: 50.
    assert got["directions"]["zh-en"]["bleu"] == pytest.approx(100.0)
    assert got["directions"]["zh-en"]["chrf++"] == pytest.approx(100.0)
    assert got["directions"]["en-zh"]["bleu"] == pytest.approx(0.0)
    assert got["directions"]["en-zh"]["chrf++"] == pytest.approx(0.0)
    assert got["score"] == pytest.approx(50.0)
    assert got["missing_directions"] == []


def test_translation_partial_overlap_matches_sacrebleu_with_the_zh_tokenizer(table) -> None:
    refs, hyps = ["明天和朋友一起去买斧头。", "这本书很好看。"], ["明天和朋友去买斧头。", "这本书好看。"]
    items = [
        item("sns_translation_en2zh", "en-zh", r, h, i)
        for i, (r, h) in enumerate(zip(refs, hyps, strict=True))
    ]
    got = score_suites(table, items, ["translation"])["translation"]
    assert got["directions"]["en-zh"]["bleu"] == pytest.approx(
        BLEU(tokenize="zh").corpus_score(hyps, [refs]).score
    )
    assert got["directions"]["en-zh"]["chrf++"] == pytest.approx(
        CHRF(word_order=2).corpus_score(hyps, [refs]).score
    )
    assert 0 < got["directions"]["en-zh"]["bleu"] < 100
    assert got["score"] is None and got["missing_directions"] == ["zh-en"]


def test_an_item_with_k_responses_scores_their_mean(table) -> None:
    items = [
        Item(record("sns_taxonomy", "zh", "图书", 0), ("图书", "酒店", "图书", "图书")),
        Item(record("sns_taxonomy", "zh", "数码", 1), ("酒店", "酒店", "酒店", "数码")),
    ]
    task = score_suites(table, items, ["sns"])["sns"]["tasks"]["sns_taxonomy"]
    assert task["item_scores"] == pytest.approx({"sns_taxonomy-0": 75.0, "sns_taxonomy-1": 25.0})
    assert task["score"] == pytest.approx(50.0) and task["n"] == 2


def test_translation_with_k_responses_is_the_corpus_of_every_response(table) -> None:
    refs = ["明天和朋友一起去买斧头。", "这本书很好看。"]
    responses = [("明天和朋友去买斧头。", "明天去买书。", ""), ("这本书好看。", "这本书很好看。", "书")]
    items = [
        Item(record("sns_translation_en2zh", "en-zh", ref, i), hyps)
        for i, (ref, hyps) in enumerate(zip(refs, responses, strict=True))
    ]
    got = score_suites(table, items, ["translation"])["translation"]["directions"]["en-zh"]
    flat_hyps = [h for hyps in responses for h in hyps]
    flat_refs = [ref for ref, hyps in zip(refs, responses, strict=True) for _ in hyps]
    assert got["bleu"] == pytest.approx(BLEU(tokenize="zh").corpus_score(flat_hyps, [flat_refs]).score)
    assert got["chrf++"] == pytest.approx(CHRF(word_order=2).corpus_score(flat_hyps, [flat_refs]).score)
    # One statistics row per item (the bootstrap resamples items), their sum the whole corpus.
    stats = got["segment_stats"]
    assert set(stats) == {f"sns_translation_en2zh/sns_translation_en2zh-{i}" for i in (0, 1)}
    summed = [sum(column) for column in zip(*(s["bleu"] for s in stats.values()), strict=True)]
    assert 100 * bleu_from_stats(summed, BleuParams(**got["bleu_params"])) == pytest.approx(got["bleu"])


def test_an_item_needs_a_response(table) -> None:
    with pytest.raises(ValueError, match="sns_taxonomy-0"):
        Item(record("sns_taxonomy", "zh", "图书"), ())
