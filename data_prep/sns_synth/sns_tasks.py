"""The eight SNS-Bench task types, in Chinese and English, with labels read off the text.

Each builder takes the seeded generator state and a language and returns an :class:`Example`. The
rule that makes each label learnable is in the builder's docstring and in ``docs/tasks.md``.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from data_prep.sns_synth import sources
from data_prep.sns_synth.sources import Item, Review

ZH_HASHTAGS = {"酒店": "#住酒店", "图书": "#读书", "数码": "#数码", "母婴": "#育儿"}
EN_CATEGORIES = ("food", "animals", "sports", "travel")
EN_HASHTAGS = {"food": "#foodie", "animals": "#animals", "sports": "#sports", "travel": "#travel"}
ZH_SENTIMENT_TAGS = {True: "#好评", False: "#避雷"}
EN_SENTIMENT_TAGS = {True: "#recommend", False: "#avoid"}
ZH_APPEAL = {"female": "女性", "male": "男性", "neutral": "中性"}
ZH_HIGHLIGHTS = (
    "性价比", "不错", "满意", "失望", "推荐", "方便", "干净", "值得", "喜欢", "舒适", "热情", "一般",
    "后悔", "糟糕", "划算", "实惠", "精彩", "无聊", "好用", "卫生", "安静", "周到", "垃圾", "实用",
    "流畅", "清晰", "便宜", "漂亮", "麻烦", "难看",
)  # fmt: skip
EN_HIGHLIGHTS = (
    "amazing", "cozy", "friendly", "terrible", "overpriced", "delicious", "awful", "fantastic",
    "clean", "noisy", "disappointing", "lovely", "cheap", "rude", "perfect", "boring",
)  # fmt: skip
EN_OPENERS = ("Just tried the", "Finally got the", "Weekend plan: the", "Can't stop thinking about the")
EN_CLOSERS = {True: ("so good!", "totally worth it.", "10/10 would recommend."),
              False: ("not worth it.", "what a letdown.", "never again.")}  # fmt: skip
ZH_OPENERS = ("今天入手了", "分享一下我的", "终于买到了", "周末试了试")
ZH_CLOSERS = {True: ("太喜欢了", "真心推荐", "性价比超高"), False: ("有点失望", "不推荐", "踩雷了")}


@dataclass(frozen=True)
class Example:
    question: str
    answer: str
    reference: dict[str, Any] | None = None


def pick_review(rng: random.Random, category: str | None = None) -> Review:
    """A review of a uniformly drawn category (then a uniformly drawn sentiment where it has both)."""
    category = category or rng.choice(sorted(sources.ZH_CATEGORY_KEYWORDS))
    positive = rng.random() < 0.5
    by_label = _reviews_by_label()
    return rng.choice(by_label.get((category, positive)) or by_label[(category, not positive)])


@functools.cache
def _reviews_by_label() -> dict[tuple[str, bool], list[Review]]:
    out: dict[tuple[str, bool], list[Review]] = {}
    for review in sources.reviews():
        out.setdefault((review.category, review.positive), []).append(review)
    return out


@functools.cache
def _highlighted_reviews() -> list[Review]:
    return [review for review in sources.reviews() if _zh_highlights(review.text)]


def en_note(rng: random.Random, item: Item, positive: bool) -> str:
    return f"{rng.choice(EN_OPENERS)} {item.en}, {rng.choice(EN_CLOSERS[positive])} {item.char}"


def zh_note(rng: random.Random, item: Item, positive: bool) -> str:
    return f"{rng.choice(ZH_OPENERS)}{item.zh}，{rng.choice(ZH_CLOSERS[positive])}{item.char}"


def taxonomy(rng: random.Random, language: str) -> Example:
    """Category of a note: the review's keyword category (zh) or the item's emoji group (en)."""
    if language == "zh":
        review = pick_review(rng)
        return Example(f"笔记分类（酒店/图书/数码/母婴）：{review.text}", review.category)
    group = rng.choice(EN_CATEGORIES)
    note = en_note(rng, rng.choice(sources.items()[group]), rng.random() < 0.5)
    return Example(f"Category of this note (food/animals/sports/travel): {note}", group)


def hashtag(rng: random.Random, language: str) -> Example:
    """Choose the fitting hashtags: the category's tag plus the sentiment's tag, among 4 candidates."""
    if language == "zh":
        review = pick_review(rng)
        gold = [ZH_HASHTAGS[review.category], ZH_SENTIMENT_TAGS[review.positive]]
        others = [tag for cat, tag in ZH_HASHTAGS.items() if cat != review.category]
        candidates = [*gold, *rng.sample(others, 2)]
        rng.shuffle(candidates)
        answer = " ".join(tag for tag in candidates if tag in gold)
        return Example(
            f"选出适合这条笔记的话题（可多选）：{review.text}\n候选：{' '.join(candidates)}", answer
        )
    group, positive = rng.choice(EN_CATEGORIES), rng.random() < 0.5
    note = en_note(rng, rng.choice(sources.items()[group]), positive)
    gold = [EN_HASHTAGS[group], EN_SENTIMENT_TAGS[positive]]
    candidates = [*gold, *rng.sample([t for g, t in EN_HASHTAGS.items() if g != group], 2)]
    rng.shuffle(candidates)
    answer = " ".join(tag for tag in candidates if tag in gold)
    return Example(f"Pick the hashtags that fit this note: {note}\nOptions: {' '.join(candidates)}", answer)


def query_note_correlation(rng: random.Random, language: str) -> Example:
    """Relevance 2 if the query word is in the note, 1 if it is of the note's category, else 0."""
    grade = rng.choice((0, 1, 2))
    if language == "zh":
        review = pick_review(rng)
        query = _zh_query_word(rng, review, grade)
        return Example(f"查询：{query}\n笔记：{review.text}\n相关度（0/1/2）：", str(grade))
    group = rng.choice(EN_CATEGORIES)
    item = rng.choice(sources.items()[group])
    note = en_note(rng, item, rng.random() < 0.5)
    if grade == 2:
        query = item.en
    else:
        pool_group = group if grade == 1 else rng.choice([g for g in EN_CATEGORIES if g != group])
        query = rng.choice([i.en for i in sources.items()[pool_group] if i.en not in note])
    return Example(f"Query: {query}\nNote: {note}\nRelevance (0/1/2):", str(grade))


def _zh_query_word(rng: random.Random, review: Review, grade: int) -> str:
    if grade == 2:
        return rng.choice(review.keywords)
    if grade == 1:
        unused = [w for w in sources.ZH_CATEGORY_KEYWORDS[review.category] if w not in review.text]
        if unused:
            return rng.choice(unused)
    other = rng.choice([c for c in sources.ZH_CATEGORY_KEYWORDS if c != review.category])
    words = [w for w in sources.ZH_CATEGORY_KEYWORDS[other] if w not in review.text]
    return rng.choice(words)


def reading_comprehension(rng: random.Random, language: str, fake: Any) -> Example:
    """A question whose answer is a span of a short (faker-filled) note."""
    item = rng.choice(sources.items()[rng.choice(("food", "female", "neutral"))])
    name, city, count, price = fake.name(), fake.city(), rng.randint(2, 9), rng.randint(10, 500)
    if language == "zh":
        note = f"{name}上周去了{city}，买了{count}个{item.zh}，一共花了{price}元。"
        questions = [
            (f"谁去了{city}？", name),
            (f"{name}去了哪里？", city),
            (f"买了几个{item.zh}？", f"{count}个"),
            ("一共花了多少钱？", f"{price}元"),
        ]
        question, answer = rng.choice(questions)
        return Example(f"阅读笔记并回答：{note}\n问题：{question}", answer)
    note = f"{name} went to {city} last week and bought {count} packs of {item.en} for ${price}."
    questions = [
        (f"Who went to {city}?", name),
        (f"Where did {name} go?", city),
        ("How many packs were bought?", str(count)),
        ("How much was spent?", f"${price}"),
    ]
    question, answer = rng.choice(questions)
    return Example(f"Read the note and answer: {note}\nQuestion: {question}", answer)


def ner(rng: random.Random, language: str, fake: Any) -> Example:
    """Typed entities (PER/LOC/ORG) in order of appearance: People's Daily tags (zh), faker (en)."""
    if language == "zh":
        clause, entities = rng.choice(sources.entity_clauses())
        answer = ";".join(f"{kind}:{text}" for kind, text in entities)
        return Example(f"抽取实体（PER人名/LOC地名/ORG机构）：{clause}", answer)
    person, other, company, city = fake.name(), fake.name(), fake.company(), fake.city()
    templates = [
        (f"{person} from {company} met {other} in {city}.",
         [("PER", person), ("ORG", company), ("PER", other), ("LOC", city)]),
        (f"Spotted {person} at the {company} pop-up in {city}!",
         [("PER", person), ("ORG", company), ("LOC", city)]),
        (f"{person} moved to {city} last spring.", [("PER", person), ("LOC", city)]),
    ]  # fmt: skip
    sentence, entities = rng.choice(templates)
    answer = ";".join(f"{kind}:{text}" for kind, text in entities)
    return Example(f"Extract entities (PER/LOC/ORG): {sentence}", answer)


def gender_appeal(rng: random.Random, language: str) -> Example:
    """Which audience a note appeals to: the appeal group of the item it features."""
    appeal = rng.choice(("female", "male", "neutral"))
    item, positive = rng.choice(sources.items()[appeal]), rng.random() < 0.5
    if language == "zh":
        note = zh_note(rng, item, positive)
        return Example(f"这条笔记更吸引哪类用户（女性/男性/中性）：{note}", ZH_APPEAL[appeal])
    note = en_note(rng, item, positive)
    return Example(f"Which audience does this note appeal to (female/male/neutral)? {note}", appeal)


def comment_highlight(rng: random.Random, language: str) -> Example:
    """Highlight words: the comment's words from a fixed evaluative lexicon, in order of appearance."""
    if language == "zh":
        review = rng.choice(_highlighted_reviews())
        return Example(f"找出评论中的亮点词：{review.text}", "、".join(_zh_highlights(review.text)))
    item = rng.choice(sources.items()[rng.choice(EN_CATEGORIES)])
    first, second = rng.sample(EN_HIGHLIGHTS, 2)
    comment = f"The {item.en} was {first} and the staff were {second} {item.char}"
    return Example(f"List the highlight words of this comment: {comment}", f"{first}, {second}")


def _zh_highlights(text: str) -> list[str]:
    """Lexicon words in ``text``, longest match first, left to right, no overlaps, no repeats."""
    found: list[str] = []
    position = 0
    by_length = sorted(ZH_HIGHLIGHTS, key=len, reverse=True)
    while position < len(text):
        match = next((w for w in by_length if text.startswith(w, position)), None)
        if match is None:
            position += 1
            continue
        if match not in found:
            found.append(match)
        position += len(match)
    return found


def query_generation(rng: random.Random, language: str) -> Example:
    """A search query for the note: its first topic word plus 推荐/避雷 (zh); best X / X avoid (en)."""
    if language == "zh":
        review = pick_review(rng)
        query = review.keywords[0] + ("推荐" if review.positive else "避雷")
        return Example(f"为这条笔记写一个搜索词：{review.text}", query)
    item, positive = rng.choice(sources.items()[rng.choice(EN_CATEGORIES)]), rng.random() < 0.5
    query = f"best {item.en}" if positive else f"{item.en} avoid"
    return Example(f"Write a search query for this note: {en_note(rng, item, positive)}", query)
