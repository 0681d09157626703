"""Heuristic quality rules for short SNS posts (not web pages).

Web-document rules (Gopher, C4: word counts, stop words, terminal punctuation) drop nearly every
Chinese post and most English ones. These rules look for what is wrong with a *post*: almost no text
(only emoji or punctuation), one token repeated (``哈哈哈哈哈哈哈哈``), nothing but hashtags and
mentions, mostly links, broken encoding, spam contact/ad phrases, or absurd length. Each rule that fires
is the drop reason, checked in the order listed.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import regex
from pydantic import Field

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.steps.pii import PATTERNS
from data_prep.text_keys import tokens

_CONTENT = regex.compile(r"[\p{L}\p{N}]")
_TAG = regex.compile(r"#[^#\s]{1,40}#|#[\p{L}\p{N}_]+|@[\p{L}\p{N}_-]+")
_PLACEHOLDER = regex.compile(r"<(?:URL|EMAIL|PHONE|ID|IP)>|@<USER>")

DEFAULT_SPAM = [
    r"加\s*[vV微威薇]\s*[信芯]?\s*[:：]?\s*[A-Za-z0-9_-]{5,}",
    r"(?i)\b(?:vx|wx)\s*[:：]\s*[A-Za-z0-9_-]{5,}",
    r"刷单|兼职.{0,6}日结|日赚\d+|免费领取.{0,10}(?:私信|加)",
    r"(?i)\bfollow\s*(?:4|for)\s*follow\b|\bf4f\b|\bsub4sub\b",
    r"(?i)\b(?:dm|message) me (?:for|to) (?:promo|collab|earn)",
    r"(?i)\bearn \$?\d+ (?:a|per) (?:day|hour) from home\b",
]


class SnsQualityConfig(StepConfig):
    kind: Literal["sns_quality"] = "sns_quality"
    min_content_chars: int = Field(4, ge=0)
    """Letters, digits and Han characters; fewer: ``too_short`` (``😂😂😂`` has none)."""
    max_chars: int = Field(5000, ge=1)
    max_top_token_share: float = Field(0.5, gt=0, le=1)
    """Share of the most frequent token among a post's tokens (at least 8 tokens): ``repetitive``."""
    max_tag_share: float = Field(0.7, gt=0, le=1)
    """Share of non-space characters inside #hashtags / @mentions: ``mostly_tags``."""
    max_link_share: float = Field(0.5, gt=0, le=1)
    """Share of non-space characters in URLs (or PII placeholders): ``mostly_links``."""
    max_replacement_chars: int = Field(0, ge=0)
    """U+FFFD characters allowed before ``broken_encoding``."""
    spam_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_SPAM))


class SnsQuality:
    def __init__(self, config: SnsQualityConfig) -> None:
        self.c = config
        self.spam = [regex.compile(p) for p in config.spam_patterns]

    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        c, text = self.c, doc.text
        visible = len(text) - sum(ch.isspace() for ch in text)
        if len(text) > c.max_chars:
            return "too_long"
        if text.count("\ufffd") > c.max_replacement_chars:
            return "broken_encoding"
        if len(_CONTENT.findall(text)) < c.min_content_chars:
            return "too_short"
        toks = tokens(text)
        if len(toks) >= 8 and Counter(toks).most_common(1)[0][1] / len(toks) > c.max_top_token_share:
            return "repetitive"
        if _covered(_TAG, text) / visible > c.max_tag_share:
            return "mostly_tags"
        if (_covered(PATTERNS["url"], text) + _covered(_PLACEHOLDER, text)) / visible > c.max_link_share:
            return "mostly_links"
        if any(p.search(text) for p in self.spam):
            return "spam"
        return None


def _covered(pattern: regex.Pattern[str], text: str) -> int:
    return sum(len(m.group(0)) for m in pattern.finditer(text))


def build(config: SnsQualityConfig) -> SnsQuality:
    return SnsQuality(config)
