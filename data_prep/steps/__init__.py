"""The step table: ``kind`` -> (config model, builder). Adding a step = one module + one line here.

Only steps that are built are listed; a recipe naming any other kind is refused when it is loaded,
with the list of the kinds that exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import Field

from data_prep.steps import (
    decontaminate,
    dsir,
    exact_dedup,
    fasttext_quality,
    language,
    mix,
    near_dedup,
    normalize,
    pack,
    pii,
    sns_quality,
    to_chat,
    to_task,
)
from data_prep.steps.base import DocStep, FittedStep, GlobalStep, ShardWriter, StepConfig

STEPS: dict[str, tuple[type[StepConfig], Callable[[Any], DocStep | GlobalStep | ShardWriter]]] = {
    "normalize": (normalize.NormalizeConfig, normalize.build),
    "exact_dedup": (exact_dedup.ExactDedupConfig, exact_dedup.build),
    "near_dedup": (near_dedup.NearDedupConfig, near_dedup.build),
    "language": (language.LanguageConfig, language.build),
    "pii": (pii.PiiConfig, pii.build),
    "sns_quality": (sns_quality.SnsQualityConfig, sns_quality.build),
    "fasttext_quality": (fasttext_quality.FasttextQualityConfig, fasttext_quality.build),
    "decontaminate": (decontaminate.DecontaminateConfig, decontaminate.build),
    "to_task": (to_task.ToTaskConfig, to_task.build),
    "to_chat": (to_chat.ToChatConfig, to_chat.build),
    "mix": (mix.MixConfig, mix.build),
    "dsir": (dsir.DsirConfig, dsir.build),
    "pack": (pack.PackConfig, pack.build),
}

AnyStepConfig = Annotated[Union[tuple(cfg for cfg, _ in STEPS.values())], Field(discriminator="kind")]  # noqa: UP007


def build_step(config: StepConfig) -> DocStep | GlobalStep | ShardWriter:
    """The step object for a validated step config."""
    return STEPS[config.kind][1](config)  # type: ignore[attr-defined]


__all__ = [
    "STEPS",
    "AnyStepConfig",
    "DocStep",
    "FittedStep",
    "GlobalStep",
    "ShardWriter",
    "StepConfig",
    "build_step",
]
