"""Diagnosis rules on hand tables: each rule alone, their union, and the written evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.stage2 import DiagnosisConfig
from nemo_recipes.stages.diagnose import TaskScore, diagnose, task_scores, write_diagnosis

MODEL = {"ner": 30.0, "taxonomy": 80.0, "hashtag": 55.0, "zh2en": 20.0}
BASE = {"ner": 35.0, "taxonomy": 70.0, "hashtag": 60.0, "zh2en": 21.0}


def scores(table: dict[str, float]) -> dict[str, TaskScore]:
    return {t: TaskScore("translation" if t == "zh2en" else "sns", "cap", s) for t, s in table.items()}


def selected(**rule) -> list[str]:
    decisions = diagnose(scores(MODEL), scores(BASE), DiagnosisConfig(**rule))
    return [t for t, d in decisions.items() if d.selected]


def test_each_rule_alone() -> None:
    assert selected(below_target=50) == ["ner", "zh2en"]
    # ner 30 < 35 - 2 and hashtag 55 < 60 - 2; zh2en 20 is within 2 of 21.
    assert selected(regression_margin=2) == ["hashtag", "ner"]
    assert selected(k_weakest=2) == ["ner", "zh2en"]
    assert selected(reference_scores={"taxonomy": 95, "hashtag": 60}, reference_gap=10) == ["taxonomy"]


def test_rules_combine_as_a_union_with_every_reason() -> None:
    decisions = diagnose(scores(MODEL), scores(BASE), DiagnosisConfig(below_target=50, regression_margin=2))
    assert [t for t, d in decisions.items() if d.selected] == ["hashtag", "ner", "zh2en"]
    assert decisions["ner"].reasons == [
        "below target: 30.0 < 50.0",
        "regressed: 30.0 vs base 35.0 (margin 2.0)",
    ]
    assert decisions["taxonomy"].reasons == [] and not decisions["taxonomy"].selected


def test_rule_errors() -> None:
    with pytest.raises(ValueError, match="no rule enabled"):
        DiagnosisConfig()
    with pytest.raises(ValueError, match="reference_gap needs reference_scores"):
        DiagnosisConfig(reference_gap=5)
    with pytest.raises(ConfigError, match=r"regression_margin needs diagnosis\.base_model"):
        diagnose(scores(MODEL), None, DiagnosisConfig(regression_margin=1))


def test_written_diagnosis_and_report_reading(tmp_path: Path) -> None:
    report = {
        "suites": {
            "sns": {"tasks": {"ner": {"score": 30.0, "capability": "information_extraction"}}},
            "general": {"tasks": {"general_code": {"score": 5.0, "capability": "general"}}},
        }
    }
    got = task_scores(report, ["sns", "translation"])
    assert got == {"ner": TaskScore("sns", "information_extraction", 30.0)}  # general is not a target
    cfg = DiagnosisConfig(below_target=50)
    path = write_diagnosis(tmp_path, diagnose(got, None, cfg), cfg, {"model": "m"})
    doc = json.loads(path.read_text())
    assert doc["selected"] == ["ner"] and doc["tasks"]["ner"]["reasons"] == ["below target: 30.0 < 50.0"]
    assert (
        "| ner | information_extraction | - | 30.0 | - | yes | below target: 30.0 < 50.0 |"
        in (tmp_path / "diagnosis.md").read_text()
    )
