"""PII scrubbing for Chinese and English posts: e-mails, URLs, phones, ID numbers, IM ids, @handles, IPs.

Each kind is a pattern written for how it appears in SNS text (mainland mobile numbers with or without
``+86`` and separators, landlines ``010-12345678``, North American numbers in the forms people type,
resident ID numbers verified by their ISO 7064 checksum, US SSNs, QQ / WeChat ids after their label,
Weibo-style ``@昵称`` handles). Matches are replaced by a placeholder (``<PHONE>``...); the report
counts replacements per kind. The order is fixed: e-mails, then URLs (both contain what other patterns
match), IDs before phones (an ID holds 11 digits).
"""

from __future__ import annotations

from typing import Literal

import regex
from pydantic import Field

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig

PiiKind = Literal["url", "email", "id_number", "phone", "ip", "im_id", "handle"]
ORDER: tuple[PiiKind, ...] = ("email", "url", "id_number", "ip", "phone", "im_id", "handle")
_TLDS = "com|cn|net|org|io|me|ly|cc|co|xyz|top|info|tv|app"
PATTERNS: dict[str, regex.Pattern[str]] = {
    "url": regex.compile(
        rf"(?i)(?:https?://|www\.)[^\s<>\"'，。！？、；：（）【】《》“”]+"
        rf"|(?<![\w@.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:{_TLDS})\b(?:/[^\s，。！？、；）】》“”]*)?"
    ),
    "email": regex.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "id_number": regex.compile(
        r"(?<![0-9])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9])"
        r"|(?<![0-9])\d{3}-\d{2}-\d{4}(?![0-9])"
    ),
    "ip": regex.compile(
        r"(?<![0-9.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![0-9.])"
    ),
    "phone": regex.compile(
        r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?![0-9])"  # mainland mobile
        r"|(?<![0-9])0\d{2,3}-\d{7,8}(?![0-9])"  # mainland landline
        r"|(?<![\w])(?:(?:\+?1|001)[-. ]?)?\(?[2-9]\d{2}\)?[-. ]?\d{3}[-. ]?\d{4}(?![0-9])"  # North America
        r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
    ),
    # QQ / WeChat ids after their label ("QQ 282369262", "vx：abc_123"): only the id is replaced
    "im_id": regex.compile(
        r"(?i)(?<=(?:QQ|扣扣|微信|weixin|wechat|\bwx|\bvx)号?\s{0,2}[:：]?\s{0,2})(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{5,20}"
    ),
    "handle": regex.compile(r"(?<![A-Za-z0-9_@.])@[\p{L}\p{N}_-]{2,30}"),
}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def valid_cn_id(number: str) -> bool:
    """The ISO 7064 MOD 11-2 check character of an 18-character resident ID number."""
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


class PiiConfig(StepConfig):
    kind: Literal["pii"] = "pii"
    kinds: list[PiiKind] = Field(default_factory=lambda: list(ORDER))
    replacements: dict[PiiKind, str] = Field(
        default_factory=lambda: {
            "url": "<URL>",
            "email": "<EMAIL>",
            "id_number": "<ID>",
            "ip": "<IP>",
            "phone": "<PHONE>",
            "im_id": "<IM_ID>",
            "handle": "@<USER>",
        }
    )


class Pii:
    def __init__(self, config: PiiConfig) -> None:
        self.kinds = [k for k in ORDER if k in config.kinds]
        self.replacements = config.replacements

    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        text = doc.text
        for kind in self.kinds:
            replacement = self.replacements[kind]

            def sub(match: regex.Match[str], kind: str = kind, replacement: str = replacement) -> str:
                found = match.group(0)
                if kind == "id_number" and len(found) == 18 and not valid_cn_id(found):
                    return found
                stats.counters[f"pii.{kind}"] += 1
                return replacement

            text = PATTERNS[kind].sub(sub, text)
        if text != doc.text:
            stats.counters["docs_changed"] += 1
            doc.text = text
        return None


def build(config: PiiConfig) -> Pii:
    return Pii(config)
