"""Decontamination against the shipped SNS eval set, formatting into task records, mixing by ratio."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.runner import run_recipe
from data_prep.steps.decontaminate import Decontaminate, DecontaminateConfig
from data_prep.steps.mix import Mix, MixConfig, MixTooSmallError
from data_prep.steps.to_task import ToTask, ToTaskConfig
from data_prep.text_keys import match_key
from nemo_recipes.records.task import TaskRecord
from tests.conftest import REPO
from tests.data_prep.corpus import en_sentences, zh_reviews
from tests.data_prep.recipe_files import make_recipe, read_output, write_jsonl

EVAL = REPO / "nemo_recipes/assets/data/sns_demo/test.jsonl"


def _note(question: str) -> str:
    """The post inside an eval question (after the instruction's colon)."""
    return question.split("：", 1)[-1].split(": ", 1)[-1]


def test_planted_eval_items_are_removed_and_clean_posts_kept():
    evals = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines()]
    notes = [_note(r["question"]) for r in evals if r["task"] == "sns_taxonomy"]
    notes = [n for n in notes if len(match_key(n)) >= 12][:20]
    rng = random.Random(0)
    planted = []
    for i, note in enumerate(notes):
        how = i % 3
        if how == 0:
            planted.append(note)
        elif how == 1:  # a repost with changed punctuation and width
            planted.append("转发：" + note.replace("，", ",").replace("。", "!") + " 🔥")
        else:  # quoted inside a longer post
            planted.append(f"{rng.choice(zh_reviews())} 另外，{note} 大家怎么看？")
    eval_notes = {match_key(_note(r["question"])) for r in evals if "question" in r}
    clean = [t for t in zh_reviews()[:3000] if match_key(t) not in eval_notes]
    clean += list(en_sentences()[:500])
    step = Decontaminate(DecontaminateConfig(eval_paths=[str(EVAL)]))

    def dropped(text):
        return step.apply(Doc("d", text, "x:1", {}), StepStats("c")) == "contaminated"

    assert [p for p in planted if not dropped(p)] == []
    false_drops = sum(dropped(t) for t in clean)
    print(
        f"decontamination: {len(planted)} planted removed; {false_drops} of {len(clean)} other posts dropped"
    )
    assert false_drops / len(clean) <= 0.005


def _doc(record, text=None, language=None):
    doc = Doc(record.get("id", "d1"), text or record["text"], "in.jsonl:7", record)
    if language:
        doc.meta["language"] = language
    return doc


def test_to_task_makes_valid_records_and_reports_bad_ones():
    step = ToTask(
        ToTaskConfig(
            task="sns_taxonomy",
            answer_field="label",
            question_template="笔记分类（酒店/图书/数码/母婴）：{text}",
            task_table="sns_demo",
        )
    )
    doc = _doc({"id": "p1", "text": "房间很干净，早餐丰富", "label": "酒店"}, language="zh")
    stats = StepStats("t")
    assert step.apply(doc, stats) is None
    record = TaskRecord.model_validate(doc.output)
    assert (record.question, record.answer, record.language, record.split) == (
        "笔记分类（酒店/图书/数码/母婴）：房间很干净，早餐丰富",
        "酒店",
        "zh",
        "train",
    )
    assert step.apply(_doc({"text": "没有标签"}, language="zh"), stats) == "invalid_task_record"
    assert (
        step.apply(_doc({"text": "标签不对", "label": "天气"}, language="zh"), stats) == "invalid_task_record"
    )
    assert stats.errors[0] == "in.jsonl:7: answer: missing: every record needs a reference answer"
    assert "天气" in stats.errors[1] and stats.errors[1].startswith("in.jsonl:7: answer")


def _mix_docs(counts):
    return [
        Doc(f"{name}-{i}", "t", "x:1", {}, meta={"dataset": name})
        for name, n in counts.items()
        for i in range(n)
    ]


def test_mix_downsamples_to_the_ratio_independently_of_sharding():
    step = Mix(MixConfig(ratios={"weibo": 3, "general": 1}))
    docs = _mix_docs({"weibo": 900, "general": 500})
    whole = step.decide([step.signatures(docs)], StepStats("m"))[0]
    kept = Counter(d.meta["dataset"] for i, d in enumerate(docs) if i not in whole)
    assert kept == {"weibo": 900, "general": 300}
    halves = step.decide([step.signatures(docs[:700]), step.signatures(docs[700:])], StepStats("m"))
    assert set(halves[0]) | {700 + r for r in halves[1]} == set(whole)
    with pytest.raises(MixTooSmallError, match="general: 500 < 1000"):
        Mix(MixConfig(ratios={"weibo": 1, "general": 1}, total_docs=2000)).decide(
            [step.signatures(docs)], StepStats("m")
        )


def test_full_recipe_two_sources_to_mixed_task_records(tmp_path):
    zh = [{"id": f"z{i}", "text": t, "label": "好评"} for i, t in enumerate(zh_reviews()[:60])]
    zh += [
        {"id": "zdup", "text": zh[0]["text"] + "！！"},
        {"id": "zpii", "text": "好用，有问题找我 13812345678 谢谢", "label": "好评"},
    ]
    en = [{"id": f"e{i}", "text": t, "label": "neutral"} for i, t in enumerate(en_sentences()[:40])]
    write_jsonl(tmp_path / "zh.jsonl", zh)
    write_jsonl(tmp_path / "en.jsonl", en)
    recipe = make_recipe(
        tmp_path,
        [],
        [
            {"kind": "normalize"},
            {"kind": "language", "keep": ["zh", "en"]},
            {"kind": "pii"},
            {"kind": "sns_quality"},
            {"kind": "exact_dedup"},
            {"kind": "near_dedup"},
            {"kind": "decontaminate", "eval_paths": [str(EVAL)]},
            {"kind": "mix", "ratios": {"zh": 1, "en": 1}},
            {"kind": "to_task", "task": "sns_sentiment", "answer_field": "label"},
        ],
        inputs=[
            {"name": "zh", "paths": [str(tmp_path / "zh.jsonl")]},
            {"name": "en", "paths": [str(tmp_path / "en.jsonl")]},
        ],
        num_workers=2,
    )
    stats = {s.name: s for s in run_recipe(recipe)}
    rows = read_output(recipe.output_dir)
    records = [TaskRecord.model_validate(r) for r in rows]
    assert Counter(r.meta["dataset"] for r in records) == {"zh": 40, "en": 40}
    assert stats["exact_dedup"].dropped["exact_duplicate"] >= 1
    assert stats["pii"].counters["pii.phone"] == 1
    assert all("13812345678" not in r.question for r in records)
    assert stats["write"].docs_kept == 80 == len(rows)
