"""Every flag and config key an error message suggests exists: the messages raised anywhere in the
product are read from the source, and each `--flag` must be accepted by a `redone` subcommand and each
dotted key must name a field of the run config."""

from __future__ import annotations

import argparse
import ast
import re
import typing

import pytest
from pydantic import BaseModel

from nemo_recipes.cli import build_parser
from nemo_recipes.config import RunConfig
from tests.conftest import REPO

PACKAGES = ("nemo_recipes", "eval", "conversion", "slurm", "data_prep")
SECTIONS = tuple(RunConfig.model_fields)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
OTHER_TOOL = re.compile(r"`(?:pip|python|srun|sbatch|torchrun|podman)\b[^`]*`")
"""A command of another tool quoted in a message: its flags are not ours."""
KEY = re.compile(rf"\b(?:{'|'.join(SECTIONS)})(?:\.[a-z_][a-z0-9_]*)+")


PROBLEM_LISTS = (REPO / "nemo_recipes" / "preflight.py",)
"""Modules whose every string is an error message (the preflight lists problems instead of raising)."""


def raised_texts() -> list[tuple[str, str]]:
    """(file:line, text) of every string literal inside a `raise` statement of the product, and of
    every statement of the problem-listing modules."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                message = isinstance(node, ast.Raise) and node.exc is not None
                if message or (
                    path in PROBLEM_LISTS and isinstance(node, ast.Expr | ast.Return | ast.AugAssign)
                ):
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    text = " ".join(
                        c.value
                        for c in ast.walk(node)
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)
                    )
                    found.append((where, text))
    return found


def all_flags(parser: argparse.ArgumentParser) -> set[str]:
    flags = {o for action in parser._actions for o in action.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= all_flags(sub)
    return flags


def is_config_key(key: str) -> bool:
    model: type[BaseModel] | None = RunConfig
    for part in key.split("."):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        options = typing.get_args(annotation) or (annotation,)  # an optional section: `X | None`
        model = next((o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), None)
    return True


def test_the_product_raises_messages_to_check() -> None:
    texts = raised_texts()
    assert len(texts) > 100
    assert any(FLAG.search(t) for _, t in texts) and any(KEY.search(t) for _, t in texts)


@pytest.mark.parametrize("kind", ["flag", "key"])
def test_every_suggested_flag_and_key_exists(kind: str) -> None:
    flags = all_flags(build_parser())
    wrong = []
    for where, text in raised_texts():
        if kind == "flag":
            wrong += [(where, f) for f in FLAG.findall(OTHER_TOOL.sub("", text)) if f not in flags]
        else:
            wrong += [(where, k) for k in KEY.findall(text) if not is_config_key(k.rstrip("."))]
    assert not wrong, wrong
