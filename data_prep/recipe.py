"""The `redone data` recipe: inputs, the ordered steps, where results go, how many processes.

Loaded with :func:`nemo_recipes.config.loader.load_config` (strict: an unknown key or step kind fails
naming the file, line, key path and what is allowed; ``--set`` overrides work as for training).
"""

from __future__ import annotations

import glob
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from data_prep.documents import InputFormat
from data_prep.steps import AnyStepConfig
from nemo_recipes.config.loader import StrictModel


class InputSource(StrictModel):
    """One dataset: files (globs, relative to the working directory) read with one set of fields."""

    name: str = "default"
    """Written to each document's ``meta.dataset`` when a recipe has several inputs (mixing uses it)."""
    paths: list[str] = Field(min_length=1)
    format: InputFormat = "auto"
    text_field: str = "text"
    id_field: str | None = "id"
    """Record key holding the document id; documents without one get ``<file stem>:<line>``."""


class DataRecipe(StrictModel):
    inputs: list[InputSource] = Field(min_length=1)
    output_dir: Path
    steps: list[AnyStepConfig] = Field(default_factory=list)
    on_bad_record: Literal["skip", "raise"] = "skip"
    """``skip``: malformed lines are counted and listed (file:line) in the report; ``raise``: stop."""
    num_workers: int = Field(1, ge=1)
    """Local processes; shards (one per input file) are spread over them."""

    @model_validator(mode="after")
    def _consistent(self) -> DataRecipe:
        names = Counter(source.name for source in self.inputs)
        repeated = sorted(n for n, c in names.items() if c > 1)
        if repeated:
            raise ValueError(f"input names must be unique; repeated: {repeated}")
        kinds = [step.kind for step in self.steps]
        if "pack" in kinds and kinds.index("pack") != len(kinds) - 1:
            raise ValueError(f"pack must be the last step (and there is one at most): {kinds}")
        formats = sorted({"to_task", "to_chat"} & set(kinds))
        if "pack" in kinds and formats:
            raise ValueError(
                f"pack tokenises documents' text; it cannot follow {' or '.join(formats)} (records)"
            )
        for step in self.steps:
            if step.kind == "mix" and set(step.ratios) != set(names):
                raise ValueError(
                    f"mix.ratios must name every input exactly: inputs {sorted(names)}, "
                    f"ratios {sorted(step.ratios)}"
                )
        return self

    def step_names(self) -> list[str]:
        """Report names of the steps: ``name``, else the kind, with ``#2``, ``#3`` for repeats."""
        seen: Counter[str] = Counter()
        names = []
        for step in self.steps:
            base = step.name or step.kind
            seen[base] += 1
            names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique: {names}")
        return names


@dataclass(frozen=True)
class Shard:
    """One input file: the unit of parallel work and of resumption."""

    index: int
    path: Path
    source: InputSource


def expand_shards(recipe: DataRecipe) -> list[Shard]:
    """Input files in recipe order (each source's glob matches sorted); a glob matching nothing fails."""
    shards: list[Shard] = []
    for source in recipe.inputs:
        for pattern in source.paths:
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise FileNotFoundError(f"inputs[{source.name}]: no file matches {pattern!r}")
            for match in matches:
                shards.append(Shard(len(shards), Path(match), source))
    return shards
