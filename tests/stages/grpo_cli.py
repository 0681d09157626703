"""Shared arguments of the GRPO stage tests: the toy recipe, small and fast, with overrides; and a
`redone eval` of a checkpoint on task records under the same recipe."""

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


def eval_args(model: Path, out: Path, data: str, *extra: str) -> list[str]:
    """Greedy evaluation (the eval default) of `model` on the records `data`, with the recipe's task table
    and a response budget of the recipe's rollouts."""
    sets = [f"eval.data=[{data}]", "eval.generation.max_response_tokens=16", *extra]
    sets_args = [a for s in sets for a in ("--set", s)]
    return ["eval", str(model), "--config", RECIPE, "--out", str(out), "--no-progress", *sets_args]
