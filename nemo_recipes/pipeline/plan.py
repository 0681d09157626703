"""What a pipeline unit runs: its config files, its commands (child `redone` processes), how its outputs
are read back. Torch-free."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nemo_recipes.pipeline.outputs import UnitOutputs

PLAN_FILE = "plan.json"
"""The config files an attempt of a unit ran with and their hash, written before its commands run."""


@dataclass
class Command:
    """One child process: `redone ARGV`, the argv made when the command is due (None: nothing to do)."""

    argv: Callable[[], list[str] | None]
    training: bool = False
    """Training commands run under `pipeline.launcher` or with `--nproc`, the others under
    `pipeline.single_launcher`."""


@dataclass
class Plan:
    """What a unit runs: its config files, its commands, how to read its outputs."""

    files: dict[str, Any]
    """File name in the unit directory -> content (YAML for .yaml, else JSON); hashed into the manifest."""
    commands: list[Command]
    parent_checkpoint: Path | None
    data: list[str]
    outputs: Callable[[], UnitOutputs]
    """The unit's outputs (its type in UNIT_TABLE), read after the commands ran."""

    def write_files(self, out: Path, digest: str) -> None:
        """The unit's config files into `out` (YAML for .yaml, else JSON), and PLAN_FILE: their hash
        `digest` and contents, which a later attempt compares itself with."""
        for name, content in self.files.items():
            text = (
                yaml.safe_dump(content, sort_keys=False)
                if name.endswith(".yaml")
                else json.dumps(content, indent=2)
            )
            (out / name).write_text(text, encoding="utf-8")
        (out / PLAN_FILE).write_text(
            json.dumps({"config_hash": digest, "files": self.files}), encoding="utf-8"
        )
