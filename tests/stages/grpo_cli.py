"""Shared arguments of the GRPO stage tests: the toy recipe, small and fast, with overrides."""

from __future__ import annotations

from pathlib import Path

RECIPE = "nemo_recipes/recipes/grpo_tiny.yaml"


def grpo_args(run_dir: Path, *extra: str) -> list[str]:
    sets = [
        f"run_dir={run_dir}",
        "logging.tensorboard=false",
        "logging.progress_bar=false",
        *extra,
    ]
    return ["grpo", RECIPE, *[a for s in sets for a in ("--set", s)]]
