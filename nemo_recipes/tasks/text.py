"""Text handling shared by the rewards: answer extraction, normalisation, mixed zh/en tokens.

Every rule here is documented in ``docs/tasks.md``; a reward names the rules it uses in its params, so
the same response is read the same way in training rewards and in evaluation.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Literal

import regex
from pydantic import Field

from nemo_recipes.config.loader import StrictModel

if TYPE_CHECKING:
    from nemo_recipes.records.task import TaskRecord

ExtractRule = Literal[
    "full", "first_line", "last_line", "last_number", "after_marker", "regex", "boxed", "code_block"
]

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_UNCLOSED_THINK = re.compile(r"^.*</think>", re.DOTALL)
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
_CODE_BLOCK = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)
# One token per Han character / kana / hangul / emoji, one per run of letters-digits otherwise.
_MIXED_TOKEN = regex.compile(
    r"\p{Han}|\p{Hiragana}|\p{Katakana}|\p{Hangul}|\p{Extended_Pictographic}|[\p{L}\p{N}_']+"
)
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|[\u200d\ufe0f\U0001F3FB-\U0001F3FF]")
_HAN = regex.compile(r"\p{Han}")
_LATIN_WORD = regex.compile(r"[A-Za-z]+")


class ExtractConfig(StrictModel):
    """Which part of a response is the answer. Thinking blocks (``<think>...</think>``) go first."""

    rule: ExtractRule = "full"
    markers: list[str] = Field(default_factory=lambda: ["Answer:", "answer:", "答案：", "答案:"])
    """For ``after_marker``: the text after the last occurrence of any marker (first line of it)."""
    pattern: str | None = None
    """For ``regex``: the last match; its group 1 if the pattern has a group, else the whole match."""
    strip_thinking: bool = True


class NormalizeConfig(StrictModel):
    """How answer strings are canonicalised before they are compared."""

    lowercase: bool = True
    unicode_width: bool = True
    """NFKC: full-width letters, digits and ASCII punctuation become half-width (Ａ１！ -> A1!)."""
    strip_punctuation: bool = True
    """Drop Unicode punctuation (categories P*), CJK and ASCII alike; emoji and symbols stay."""
    strip_emoji: bool = False
    whitespace: Literal["collapse", "remove", "keep"] = "collapse"


def strip_thinking(text: str) -> str:
    """Remove closed ``<think>`` blocks and anything before a dangling ``</think>``."""
    return _UNCLOSED_THINK.sub("", _THINK.sub("", text))


def extract_answer(response: str, config: ExtractConfig) -> str | None:
    """The answer part of ``response`` under ``config``; None when the rule finds nothing."""
    text = strip_thinking(response) if config.strip_thinking else response
    text = text.strip()
    if not text:
        return None
    if config.rule == "full":
        return text
    if config.rule in ("first_line", "last_line"):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[0] if config.rule == "first_line" else lines[-1]
    if config.rule == "last_number":
        numbers = _NUMBER.findall(unicodedata.normalize("NFKC", text))
        return numbers[-1].replace(",", "") if numbers else None
    if config.rule == "after_marker":
        return _after_marker(text, config.markers)
    if config.rule == "regex":
        return _last_regex_match(text, config.pattern or "")
    if config.rule == "boxed":
        return _last_boxed(text)
    return _last_code_block(text)


def reference_answer(record: TaskRecord, config: ExtractConfig) -> str:
    """The record's reference read with the same rule as responses (a worked reference ending in
    ``Answer: 42`` gives ``42``); the whole reference when the rule finds nothing in it."""
    extracted = extract_answer(record.answer_text, config)
    return extracted if extracted is not None else record.answer_text


def _after_marker(text: str, markers: list[str]) -> str | None:
    best = max(((text.rfind(m), m) for m in markers), default=(-1, ""))
    if best[0] < 0:
        return None
    rest = text[best[0] + len(best[1]) :].strip()
    return rest.splitlines()[0].strip() if rest else None


def _last_regex_match(text: str, pattern: str) -> str | None:
    matches = list(re.finditer(pattern, text, re.DOTALL))
    if not matches:
        return None
    last = matches[-1]
    return (last.group(1) if last.re.groups else last.group(0)).strip()


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for position in range(begin, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            if depth == 0:
                return text[begin:position].strip()
            depth -= 1
    return None


def _last_code_block(text: str) -> str | None:
    blocks = _CODE_BLOCK.findall(text)
    return blocks[-1][1] if blocks else None


def normalize_text(text: str, config: NormalizeConfig) -> str:
    """Canonical form of ``text`` for comparison (see :class:`NormalizeConfig`)."""
    if config.unicode_width:
        text = unicodedata.normalize("NFKC", text)
    if config.lowercase:
        text = text.lower()
    if config.strip_punctuation:
        text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    if config.strip_emoji:
        text = _EMOJI.sub("", text)
    if config.whitespace == "collapse":
        text = " ".join(text.split())
    elif config.whitespace == "remove":
        text = "".join(text.split())
    return text


def mixed_tokens(text: str) -> list[str]:
    """Tokens for overlap metrics: each Han character / emoji alone, Latin words and numbers whole."""
    return _MIXED_TOKEN.findall(text)


def parse_number(text: str) -> float | None:
    """``"1,234.5"`` -> 1234.5; None if ``text`` is not one number."""
    cleaned = unicodedata.normalize("NFKC", text).strip().replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def script_counts(text: str) -> tuple[int, int]:
    """(Han characters, Latin words) in ``text``: the units the language checks weigh.

    A Han character and a Latin word carry about the same content, so neither script dominates
    mixed text by its spelling (``我喜欢iPhone`` is 3 Han units against 1 Latin word).
    """
    return len(_HAN.findall(text)), len(_LATIN_WORD.findall(unicodedata.normalize("NFKC", text)))
