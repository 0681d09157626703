"""What each unit leaves, typed: the `outputs` of its manifest.json, and the suite scores of an eval
report. Torch-free.

A unit's outputs are a dataclass (`to_json` is the manifest's `outputs`: paths as strings, fields in
order); `read_outputs` reads a finished unit's manifest back into one.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Self, TypeVar, get_type_hints

from nemo_recipes.pipeline.errors import PipelineError, UnitNotFinishedError
from nemo_recipes.pipeline.manifest import MANIFEST, read_manifest

_PATH_TYPES = (Path, Path | None)


@dataclass(frozen=True)
class UnitOutputs:
    """What every unit leaves: the model the next unit starts from."""

    checkpoint: Path

    def to_json(self) -> dict[str, Any]:
        """The manifest's `outputs`."""
        return {f.name: _to_json(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, outputs: dict[str, Any]) -> Self:
        """Read back from a manifest's `outputs` (keys that `cls` lacks, a subclass's, are left out)."""
        missing = [f.name for f in fields(cls) if f.name not in outputs and f.default is MISSING]
        if missing:
            raise ValueError(f"the outputs lack {', '.join(missing)} (expected {cls.__name__})")
        types = get_type_hints(cls)
        given = [f for f in fields(cls) if f.name in outputs]  # a field with a default may be absent
        return cls(**{f.name: _from_json(types[f.name], outputs[f.name]) for f in given})


@dataclass(frozen=True)
class EvalUnitOutputs(UnitOutputs):
    """An evaluated model: its report.json and suite scores (0-100; None: not scored)."""

    eval_report: Path
    scores: dict[str, float | None]


@dataclass(frozen=True)
class TrainingOutputs(EvalUnitOutputs):
    """A training stage: its final model, evaluated, and its metrics summary (`summarize_metrics`).

    A full fine-tune's model is its final checkpoint; a LoRA unit's (`pipeline.lora_units`) is that
    checkpoint's merged HF export, and `adapters` the checkpoint (adapters only, `lora.json`)."""

    training: dict[str, float]
    adapters: Path | None = None
    """The LoRA unit's final checkpoint (None: a full fine-tune; manifests from before LoRA lack it)."""

    @property
    def trained(self) -> Path:
        """The stage's own final checkpoint: the adapters' of a LoRA unit, else the model's."""
        return self.adapters or self.checkpoint


@dataclass(frozen=True)
class DiagnosisOutputs(UnitOutputs):
    """The diagnosis (diagnosis.json) and the tasks it selected for stage 2; the checkpoint is stage 1's."""

    diagnosis: Path
    selected: list[str]


@dataclass(frozen=True)
class SFTDataOutputs(UnitOutputs):
    """Stage 2's training set, its digest and its counts (stats.json); the checkpoint is stage 1's."""

    train: Path
    train_sha256: str
    stats: dict[str, Any]


@dataclass(frozen=True)
class FinalOutputs(UnitOutputs):
    """The final model, its HF export (None: not exported) and report.md."""

    hf_dir: Path | None
    report: Path


T = TypeVar("T", bound=UnitOutputs)


def read_outputs(unit_dir: Path, kind: type[T]) -> T:
    """A finished unit's outputs, read from its manifest.json as `kind` (its outputs type or a base)."""
    manifest = read_manifest(unit_dir)
    if manifest is None:
        raise UnitNotFinishedError(f"{unit_dir.name} has not finished (no {unit_dir / MANIFEST})")
    try:
        return kind.from_json(manifest["outputs"])
    except ValueError as e:
        raise PipelineError(f"{unit_dir / MANIFEST}: {e}") from e


@dataclass(frozen=True)
class SuiteScores:
    """One suite of an eval report: its score and its tasks' scores (0-100; None: not scored)."""

    score: float | None
    tasks: dict[str, float | None]


def suite_scores(report: dict[str, Any]) -> dict[str, SuiteScores]:
    """The suite and task scores of an eval report (report.json's content), in the report's order."""
    return {
        suite: SuiteScores(result["score"], {task: r["score"] for task, r in result["tasks"].items()})
        for suite, result in report["suites"].items()
    }


def _to_json(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _from_json(kind: Any, value: Any) -> Any:
    return Path(value) if value is not None and kind in _PATH_TYPES else value
