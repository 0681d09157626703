"""Shared arguments of the GRPO stage tests: the toy recipe, small and fast, with overrides; a
`redone eval` of a checkpoint on task records under the same recipe; the first step of a layout, for
the invariance tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.conftest import read_metrics, run_cli

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


def first_step(
    run_dir: Path, init: Path, nproc: int, compared: Sequence[str], *sets: str
) -> dict[str, float]:
    """The `compared` metrics of one GRPO step from `init` on `nproc` ranks: two mini-batch updates (the
    second sees a moved policy), several sequences per micro-batch row (each at most 48 tokens)."""
    args = grpo_args(
        run_dir,
        f"model.init_from={init}",
        "grpo.train_steps=1",
        "grpo.mini_batches_per_step=2",
        "grpo.max_tokens_per_micro_batch=384",
        *sets,
    )
    run_cli(args, nproc=nproc, timeout=900)
    (row,) = read_metrics(run_dir, "grpo")
    return {k: row[k] for k in compared}


def assert_same_step(got: dict[str, float], reference: dict[str, float], what: str) -> None:
    """Every compared metric within 1e-5 of the reference's."""
    diffs = {k: abs(got[k] - reference[k]) for k in reference}
    assert max(diffs.values()) <= 1e-5, f"{what}: {got} vs {reference} (diffs {diffs})"
