"""Import rules the architecture relies on, checked statically and in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("nemo_recipes", "conversion", "data_prep", "eval", "benchmarks")


def python_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return sorted(out)


def test_device_layer_is_imported_before_megatron() -> None:
    offenders = []
    for path in python_files():
        if "nemo_recipes/device/cpu.py" in str(path):
            continue
        mods = imported_modules(ast.parse(path.read_text()))
        first_megatron = next((line for line, m in mods if m.split(".")[0] == "megatron"), None)
        if first_megatron is None:
            continue
        device = ("nemo_recipes.device", "nemo_recipes.parallel")
        layer = next((line for line, m in mods if m.startswith(device)), None)
        if layer is None or layer > first_megatron:
            offenders.append(f"{path.relative_to(REPO)}:{first_megatron}")
    assert not offenders, f"import nemo_recipes.device before megatron in: {offenders}"


def test_no_megatron_training_or_global_args() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in python_files()
        if any(m.startswith("megatron.training") for _, m in imported_modules(ast.parse(p.read_text())))
    ]
    assert not offenders


TORCH_FREE = {
    "config and records": "nemo_recipes.config, nemo_recipes.config.loader, nemo_recipes.records.chat",
    # the task suite loads in reward workers and eval tools without a model library
    "tasks": "nemo_recipes.tasks, nemo_recipes.tasks.judge, nemo_recipes.tasks.sandbox",
    # vLLM's spawned engine processes re-import the launching `__main__` (nemo_recipes.cli), and a
    # Slurm login node runs the preflight at submission
    "entry points": "nemo_recipes.cli, slurm.submit, nemo_recipes.preflight",
}


@pytest.mark.parametrize("modules", TORCH_FREE.values(), ids=TORCH_FREE.keys())
def test_imports_no_model_library(modules: str) -> None:
    """Checked in a fresh interpreter: what these modules import at run time, not only what they name."""
    code = (
        f"import sys, {modules}; "
        "bad = [m for m in ('torch', 'megatron', 'transformers', 'vllm') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
