"""exact_match: 1.0 if the extracted, normalised answer equals the reference (after label aliases).

For classification and multiple choice. With ``labels`` the task has a closed label set: an alias
maps a surface form onto its label, and a prediction outside the set scores 0. With ``numeric``
two parseable numbers are compared as numbers (``"85.0"`` == ``"85"``).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.text import (
    ExtractConfig,
    NormalizeConfig,
    extract_answer,
    normalize_text,
    parse_number,
    reference_answer,
)


class ExactMatchParams(StrictModel):
    kind: Literal["exact_match"] = "exact_match"
    extract: ExtractConfig = ExtractConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    labels: list[str] | None = None
    """The closed label set, if any; the reference answer must be one of them."""
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    """label -> other surface forms that mean it (``female: [女性, 女, women]``)."""
    numeric: bool = False

    @model_validator(mode="after")
    def _aliases_name_labels(self) -> ExactMatchParams:
        if self.labels is not None:
            unknown = sorted(set(self.aliases) - set(self.labels))
            if unknown:
                raise ValueError(f"aliases given for {unknown}, which are not in labels {self.labels}")
        return self

    def canonical(self, text: str) -> str:
        """Normalised text with aliases resolved to their (normalised) label."""
        normalized = normalize_text(text, self.normalize)
        for label, forms in self.aliases.items():
            if normalized in {normalize_text(form, self.normalize) for form in forms}:
                return normalize_text(label, self.normalize)
        return normalized


def score(response: str, record: TaskRecord, params: ExactMatchParams) -> RewardResult:
    extracted = extract_answer(response, params.extract)
    if extracted is None:
        return zero("no answer extracted", rule=params.extract.rule)
    gold_text = reference_answer(record, params.extract)
    prediction, gold = params.canonical(extracted), params.canonical(gold_text)
    details = {"extracted": extracted, "prediction": prediction, "gold": gold}
    if params.labels is not None:
        known = {normalize_text(label, params.normalize) for label in params.labels}
        if prediction not in known:
            return zero("not one of the labels", **details)
    if params.numeric:
        predicted_number, gold_number = parse_number(extracted), parse_number(gold_text)
        if predicted_number is not None and gold_number is not None:
            equal = math.isclose(predicted_number, gold_number, rel_tol=1e-9, abs_tol=1e-9)
            return RewardResult(1.0 if equal else 0.0, details)
    return RewardResult(1.0 if prediction == gold else 0.0, details)


def check_record(record: TaskRecord, params: ExactMatchParams) -> list[tuple[str, str]]:
    """(field, problem) pairs: the reference must be a label when the task has a label set."""
    if params.labels is None:
        return []
    known = {normalize_text(label, params.normalize) for label in params.labels}
    if params.canonical(reference_answer(record, params.extract)) not in known:
        return [("answer", f"{record.answer_text!r} is not one of the task's labels {params.labels}")]
    return []
