"""Writing input files and recipes for the data_prep tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from data_prep.recipe import DataRecipe


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Rows are dicts (written as JSON) or strings (written as they are: malformed lines)."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def read_output(out_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((out_dir / "data").glob("shard-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows


def make_recipe(tmp_path: Path, paths: list[str], steps: list[dict], **extra: Any) -> DataRecipe:
    data = {"inputs": [{"paths": paths}], "output_dir": str(tmp_path / "out"), "steps": steps, **extra}
    return DataRecipe.model_validate(data)


def write_recipe(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
