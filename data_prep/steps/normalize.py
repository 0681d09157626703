"""Normalise the *stored* text: repair mojibake, one Unicode form, tidy whitespace; emoji kept.

ftfy repairs encoding damage (``æ—¥æœ¬`` -> ``日本``) with quote uncurling and character-width folding
switched off: Chinese text keeps ``“”``, ``，`` and ``！``. NFKC (which rewrites Chinese punctuation) is
only used for match keys (:mod:`data_prep.text_keys`), unless ``unicode_form: NFKC`` asks for it here.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

import ftfy
import regex

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig

_CONTROL = regex.compile(r"[^\P{Cc}\n\t]")  # control characters except newline and tab
_SPACES = regex.compile(r"[^\S\n]+")  # whitespace runs other than newlines (incl. U+3000)
_LINE_ENDS = regex.compile(r" ?\n ?")
_NEWLINES = regex.compile(r"\n{3,}")


class NormalizeConfig(StepConfig):
    kind: Literal["normalize"] = "normalize"
    fix_mojibake: bool = True
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    collapse_whitespace: bool = True
    """Runs of spaces/tabs (and ideographic spaces) -> one space; 3+ newlines -> 2; ends stripped."""
    remove_control_chars: bool = True


_FTFY = ftfy.TextFixerConfig(uncurl_quotes=False, fix_character_width=False, normalization=None)


class Normalize:
    def __init__(self, config: NormalizeConfig) -> None:
        self.config = config

    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        c, text = self.config, doc.text
        if c.fix_mojibake:
            text = ftfy.fix_text(text, _FTFY)
        if c.unicode_form != "none":
            text = unicodedata.normalize(c.unicode_form, text)
        if c.remove_control_chars:
            text = _CONTROL.sub("", text)
        if c.collapse_whitespace:
            text = _NEWLINES.sub("\n\n", _LINE_ENDS.sub("\n", _SPACES.sub(" ", text))).strip()
        if text != doc.text:
            stats.counters["changed"] += 1
            doc.text = text
        return None if text else "empty_after_normalize"


def build(config: NormalizeConfig) -> Normalize:
    return Normalize(config)
