"""Verifiable output constraints (IFEval-style) for the ``pattern`` reward.

Each constraint is a typed model with a ``type`` tag and a ``check(text) -> bool``; the union
:data:`Constraint` (tagged by ``type``) lists them all. Text is the extracted response, untouched (no
normalisation) except where a constraint says otherwise. Language is judged by script: the share of
Han characters among Han characters plus Latin words (``zh``) or the share of Latin words (``en``).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.tasks.text import mixed_tokens, script_counts

_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


class LengthConstraint(StrictModel):
    """Length in characters (whitespace excluded) or in mixed tokens (words; one per Han character)."""

    type: Literal["length"] = "length"
    unit: Literal["chars", "words"] = "chars"
    min: NonNegativeInt | None = None
    max: NonNegativeInt | None = None

    def check(self, text: str) -> bool:
        size = len("".join(text.split())) if self.unit == "chars" else len(mixed_tokens(text))
        return (self.min is None or size >= self.min) and (self.max is None or size <= self.max)


class LanguageConstraint(StrictModel):
    type: Literal["language"] = "language"
    language: Literal["zh", "en"]
    min_ratio: float = Field(0.8, gt=0, le=1)

    def check(self, text: str) -> bool:
        han, latin = script_counts(text)
        if han + latin == 0:
            return False
        share = han if self.language == "zh" else latin
        return share / (han + latin) >= self.min_ratio


class KeywordsConstraint(StrictModel):
    """Every word appears at least ``min_count`` (and at most ``max_count``) times, case-insensitive."""

    type: Literal["keywords"] = "keywords"
    words: list[str] = Field(min_length=1)
    min_count: NonNegativeInt = 1
    max_count: NonNegativeInt | None = None

    def check(self, text: str) -> bool:
        lowered = text.lower()
        counts = [lowered.count(word.lower()) for word in self.words]
        return all(c >= self.min_count and (self.max_count is None or c <= self.max_count) for c in counts)


class ForbiddenWordsConstraint(StrictModel):
    type: Literal["forbidden_words"] = "forbidden_words"
    words: list[str] = Field(min_length=1)

    def check(self, text: str) -> bool:
        lowered = text.lower()
        return not any(word.lower() in lowered for word in self.words)


class JsonConstraint(StrictModel):
    """The whole text (one optional code fence allowed) is a JSON object with the required keys."""

    type: Literal["json_object"] = "json_object"
    required_keys: list[str] = Field(default_factory=list)

    def check(self, text: str) -> bool:
        stripped = text.strip()
        fenced = _FENCE.match(stripped)
        try:
            value = json.loads(fenced.group(1) if fenced else stripped)
        except json.JSONDecodeError:
            return False
        return isinstance(value, dict) and all(key in value for key in self.required_keys)


class ItemCountConstraint(StrictModel):
    """Exactly ``count`` non-empty items when split on ``separator``."""

    type: Literal["item_count"] = "item_count"
    separator: str = Field(",", min_length=1)
    count: PositiveInt

    def check(self, text: str) -> bool:
        return len([item for item in text.split(self.separator) if item.strip()]) == self.count


class CaseConstraint(StrictModel):
    """All Latin letters upper (or lower) case, and at least one of them present."""

    type: Literal["case"] = "case"
    case: Literal["upper", "lower"]

    def check(self, text: str) -> bool:
        letters = [ch for ch in text if ch.isascii() and ch.isalpha()]
        wanted = str.isupper if self.case == "upper" else str.islower
        return bool(letters) and all(wanted(ch) for ch in letters)


class LineCountConstraint(StrictModel):
    type: Literal["line_count"] = "line_count"
    min: NonNegativeInt | None = None
    max: NonNegativeInt | None = None

    def check(self, text: str) -> bool:
        lines = len([line for line in text.splitlines() if line.strip()])
        return (self.min is None or lines >= self.min) and (self.max is None or lines <= self.max)


class AffixConstraint(StrictModel):
    """The stripped text starts with ``prefix`` and/or ends with ``suffix``."""

    type: Literal["affix"] = "affix"
    prefix: str | None = None
    suffix: str | None = None

    @model_validator(mode="after")
    def _one_given(self) -> AffixConstraint:
        if self.prefix is None and self.suffix is None:
            raise ValueError("give prefix, suffix or both")
        return self

    def check(self, text: str) -> bool:
        stripped = text.strip()
        return stripped.startswith(self.prefix or "") and stripped.endswith(self.suffix or "")


class RegexConstraint(StrictModel):
    """``re.search`` finds the pattern (``fullmatch: true``: the whole stripped text matches it)."""

    type: Literal["regex"] = "regex"
    pattern: str
    fullmatch: bool = False

    def check(self, text: str) -> bool:
        if self.fullmatch:
            return re.fullmatch(self.pattern, text.strip(), re.DOTALL) is not None
        return re.search(self.pattern, text) is not None


Constraint = Annotated[
    LengthConstraint
    | LanguageConstraint
    | KeywordsConstraint
    | ForbiddenWordsConstraint
    | JsonConstraint
    | ItemCountConstraint
    | CaseConstraint
    | LineCountConstraint
    | AffixConstraint
    | RegexConstraint,
    Field(discriminator="type"),
]
