"""What text is *matched* on (dedup, decontamination), kept apart from what is *stored*.

The stored text keeps Chinese punctuation, emoji and case (see the ``normalize`` step). The match key
folds width and compatibility forms (NFKC: ``Ｈｅｌｌｏ！`` -> ``Hello!``), case, and drops punctuation,
symbols and whitespace, so that two posts differing only in those are one. Tokens for shingling are
CJK-aware: one per Han character, kana or hangul syllable (a Chinese clause is not one "word"), one per
run of letters or digits otherwise, one per emoji.
"""

from __future__ import annotations

import unicodedata

import regex

_NOT_KEY = regex.compile(r"[\p{P}\p{S}\p{Z}\p{C}]+")
TOKEN_PATTERN = r"\p{Han}|\p{Hiragana}|\p{Katakana}|\p{Hangul}|\p{Extended_Pictographic}|[\p{L}\p{M}\p{N}]+"
"""One CJK character, emoji, or run of letters / digits (``regex`` syntax)."""
_TOKEN = regex.compile(TOKEN_PATTERN)


def match_key(text: str) -> str:
    """NFKC, lower case, without punctuation, symbols (emoji included), whitespace and control chars."""
    return _NOT_KEY.sub("", unicodedata.normalize("NFKC", text).lower())


def tokens(text: str) -> list[str]:
    """CJK-aware tokens of the NFKC, lower-cased text (punctuation and whitespace dropped)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def shingles(text: str, size: int) -> set[str]:
    """The set of ``size``-token shingles (the whole token list when the text is shorter)."""
    toks = tokens(text)
    if len(toks) <= size:
        return {" ".join(toks)} if toks else set()
    return {" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
