"""`redone data RECIPE.yaml [--set key=value ...]`: run a curation recipe (see docs/data-prep.md).

Under torchrun (``--nproc N``) or Slurm ``srun``, every process runs the same command; each takes its
share of the shards (rank from ``RANK`` / ``SLURM_PROCID``, world size from ``WORLD_SIZE`` /
``SLURM_NTASKS``) and they meet at phase boundaries through done-markers on the shared file system.
"""

from __future__ import annotations

import os
from pathlib import Path

from data_prep.recipe import DataRecipe
from data_prep.report import format_report
from data_prep.runner import RecipeMismatchError, run_recipe
from data_prep.steps.dsir import SelectionTooLargeError
from data_prep.steps.mix import MixTooSmallError
from nemo_recipes.config.loader import ConfigError, load_config


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes, from torchrun's or Slurm's environment."""
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var in os.environ and world_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ[world_var])
    return 0, 1


def run(recipe_path: Path | None, overrides: list[str], restart: bool = False) -> int:
    """Load, validate and run a recipe (`restart`: output_dir's earlier run deleted first); print the
    report on rank 0. Exit code 0."""
    if recipe_path is None:
        raise ConfigError("redone data needs a recipe: redone data RECIPE.yaml")
    recipe = load_config(DataRecipe, recipe_path, overrides)
    rank, world_size = rank_and_world_size()
    try:
        stats = run_recipe(recipe, rank=rank, world_size=world_size, restart=restart)
    except (RecipeMismatchError, FileNotFoundError, MixTooSmallError, SelectionTooLargeError) as exc:
        raise ConfigError(str(exc)) from None
    if rank == 0:
        print(format_report(stats))
        print(f"wrote {recipe.output_dir / 'data'} (report: {recipe.output_dir / 'report.json'})")
    return 0
