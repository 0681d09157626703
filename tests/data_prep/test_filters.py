"""Language ID accuracy, PII scrubbing (faker fixtures and real reviews), SNS quality rules."""

from __future__ import annotations

import random
import time

import regex
from faker import Faker

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.language import Language, LanguageConfig
from data_prep.steps.pii import Pii, PiiConfig, valid_cn_id
from data_prep.steps.sns_quality import SnsQuality, SnsQualityConfig
from tests.data_prep.corpus import en_sentences, zh_reviews

HAN = regex.compile(r"\p{Han}")
MIXED_POSTS = [  # code-switched SNS posts, labelled by their main language
    ("今天的OOTD是oversize卫衣+jeans，姐妹们觉得OK吗", "zh"),
    ("救命这个vlog也太治愈了吧😭😭", "zh"),
    ("周末去了趟Costco，买了一堆snacks回家", "zh"),
    ("omg this 奶茶 is sooo good, 10/10 would order again", "en"),
    ("lol my cat just knocked my coffee off the table again 😂", "en"),
    ("Finally tried the new ramen place downtown and honestly it slaps", "en"),
]


def _apply(step, text):
    doc = Doc("d", text, "x:1", {})
    stats = StepStats("s")
    return step.apply(doc, stats), doc, stats


def test_language_id_accuracy_on_a_labelled_sample():
    rng = random.Random(0)
    zh = [t for t in zh_reviews() if len(HAN.findall(t)) >= len(t) / 2]  # a few reviews are English
    sample = [(t, "zh") for t in rng.sample(zh, 500)]
    sample += [(t, "en") for t in rng.sample(en_sentences(), 500)] + MIXED_POSTS
    step = Language(LanguageConfig())
    start = time.perf_counter()
    predicted = [_apply(step, text)[1].meta["language"] for text, _ in sample]
    rate = len(sample) / (time.perf_counter() - start)
    accuracy = sum(p == gold for p, (_, gold) in zip(predicted, sample, strict=True)) / len(sample)
    print(f"language ID: accuracy {accuracy:.4f} on {len(sample)} posts, {rate:,.0f} docs/s")
    assert accuracy >= 0.99
    assert predicted[-len(MIXED_POSTS) :] == [gold for _, gold in MIXED_POSTS]


def test_the_model_decides_what_script_does_not():
    step = Language(LanguageConfig())
    for text, gold in [
        ("今日はとても良い天気ですね", "ja"),
        ("오늘 날씨가 정말 좋네요", "ko"),
        ("Quel beau temps !", "fr"),
    ]:
        assert _apply(step, text)[1].meta["language"] == gold


def test_language_filter_drops_other_languages():
    step = Language(LanguageConfig(keep=["zh"]))
    assert _apply(step, "今天天气真好，出去走走")[0] is None
    reason, doc, stats = _apply(step, "The weather is lovely today, let's go for a walk")
    assert reason == "language_not_kept" and doc.meta["language"] == "en"
    assert stats.counters == {"language.en": 1}


def _pii_fixtures(n):
    """Posts carrying faker zh_CN / en_US PII, with the PII strings that must disappear."""
    out = []
    for locale, seed in (("zh_CN", 1), ("en_US", 2)):
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(n):
            pii = [fake.phone_number(), fake.email(), fake.ssn(), fake.url(), "@" + fake.user_name()]
            text = (
                f"有事联系 {pii[0]}，或者发邮件到{pii[1]}。证件 {pii[2]} 主页 {pii[3]} 谢谢{pii[4]} 的推荐！"
                if locale == "zh_CN"
                else f"DM me or call {pii[0]} / mail {pii[1]}. SSN {pii[2]}, site {pii[3]} h/t {pii[4]} lol"
            )
            out.append((text, pii))
    return out


def test_pii_is_removed_from_faker_fixtures():
    step = Pii(PiiConfig())
    for text, pii in _pii_fixtures(50):
        _, doc, stats = _apply(step, text)
        leaked = [p for p in pii if p in doc.text or p.lstrip("@") in doc.text]
        assert not leaked, (text, doc.text)
        assert stats.counters["pii.phone"] == 1 and stats.counters["pii.email"] == 1, doc.text
    _, doc, _ = _apply(step, "联系QQ 282369262 或 vx：lily_2024，价格¥1999，2024-05-01 12:30，iPhone 15 Pro")
    assert doc.text == "联系QQ <IM_ID> 或 vx：<IM_ID>，价格¥1999，2024-05-01 12:30，iPhone 15 Pro"


def test_pii_checksum_and_false_positives_on_real_reviews():
    assert valid_cn_id("11010519491231002X") and not valid_cn_id("110105194912310021")
    _, doc, _ = _apply(Pii(PiiConfig()), "编号110105194912310021不是身份证")
    assert doc.text == "编号110105194912310021不是身份证"
    step, changed = Pii(PiiConfig()), 0
    for text in zh_reviews()[:3000]:
        changed += _apply(step, text)[1].text != text
    assert changed <= 20  # real reviews: a handful carry real phones, URLs and e-mails; no more


def test_sns_quality_keeps_real_posts_and_names_what_it_drops():
    step = SnsQuality(SnsQualityConfig())
    real = list(zh_reviews()[:2000]) + list(en_sentences()[:1000]) + [t for t, _ in MIXED_POSTS]
    kept = sum(_apply(step, t)[0] is None for t in real)
    assert kept / len(real) >= 0.99
    bad = {
        "😂😂😂👍": "too_short",
        "哈哈哈哈哈哈哈哈哈哈哈哈": "repetitive",
        "#好物分享# #日常穿搭# #ootd# @小红薯 @lily": "mostly_tags",
        "戳 https://t.cn/A6xYz9 https://t.cn/B7yZq1": "mostly_links",
        "兼职刷单日结，加微信：abc12345 详聊": "spam",
        "follow for follow!! I always follow back": "spam",
        "ä¸\ufffd好吃": "broken_encoding",
    }
    assert {text: _apply(step, text)[0] for text in bad} == bad
