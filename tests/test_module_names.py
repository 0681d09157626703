"""Our top-level module names cannot be shadowed, and the product does not import test code.

The product installs as top-level packages (`nemo_recipes`, `conversion`, `data_prep`, `eval`,
`slurm`). Two things could make `import data_prep` find something else: a script run as a file
(`python benchmarks/x.py` puts benchmarks/ first on sys.path, so a sibling `data_prep.py` wins), and
another installed distribution that ships a module of the same name.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.conftest import REPO

SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
PRODUCT = tuple(pattern.rstrip("*") for pattern in SETUPTOOLS["packages"]["find"]["include"])
# Folders of the repository that hold code but are not installed; `tests` is imported by benchmarks.
NOT_INSTALLED = ("tests", "benchmarks")
# Folders whose scripts run as files (`python FOLDER/x.py`; torchrun of tests/checkpoint/_resume_worker.py):
# every module in them is importable by its bare name while such a script runs.
SCRIPT_FOLDERS = ("benchmarks", "containers", "tests/checkpoint")


def test_product_packages_are_the_expected_ones() -> None:
    assert set(PRODUCT) == {"nemo_recipes", "conversion", "data_prep", "eval", "slurm"}


def test_no_script_is_named_like_a_module() -> None:
    """No file in a script folder is named like our packages, the standard library or an installed one."""
    taken = {*PRODUCT, *NOT_INSTALLED, *sys.stdlib_module_names, *packages_distributions()}
    clashes = [
        str(path.relative_to(REPO))
        for folder in SCRIPT_FOLDERS
        for path in sorted((REPO / folder).glob("*.py"))
        if path.stem in taken
    ]
    assert not clashes, f"these files shadow a module of that name when a sibling script runs: {clashes}"


def test_our_names_belong_to_redone_only() -> None:
    """No other installed distribution ships a top-level module named like ours."""
    owners = packages_distributions()
    wrong = {name: owners.get(name) for name in PRODUCT if set(owners.get(name, ())) != {"redone"}}
    assert not wrong, f"top-level names not installed by redone alone: {wrong}"
    claimed = {name: owners[name] for name in NOT_INSTALLED if name in owners}
    assert not claimed, f"installed distributions ship a top-level module named like our folders: {claimed}"


def test_product_does_not_import_tests_or_benchmarks() -> None:
    """Test scaffolding stays out of the installed packages (imports inside functions count)."""
    offenders = []
    for path in sorted(p for pkg in PRODUCT for p in (REPO / pkg).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if any(name.split(".")[0] in NOT_INSTALLED for name in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"the product imports test or benchmark code: {offenders}"


def test_script_folders_exist() -> None:
    """A renamed folder must not silently empty the shadowing check."""
    for folder in SCRIPT_FOLDERS:
        assert list((REPO / folder).glob("*.py")), folder
