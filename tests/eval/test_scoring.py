"""Suite scores from hand-made predictions equal hand-computed values (0-100 scale)."""

from __future__ import annotations

import pytest

from eval.scoring import Item, score_suites
from nemo_recipes.tasks import TaskRecord, load_task_table


@pytest.fixture(scope="module")
def table():
    return load_task_table("sns_demo", "general")


def item(task: str, language: str, answer: str, response: str, n: int = 0) -> Item:
    record = TaskRecord(
        id=f"{task}-{n}", task=task, language=language, split="test", question="q", answer=answer
    )
    return Item(record, response)


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
    from sacrebleu.metrics import BLEU, CHRF

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
