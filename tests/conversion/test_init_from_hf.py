"""A stage started straight from an HF directory: imported once into the cache, exact, then reused."""

from __future__ import annotations

from pathlib import Path

import torch

from conversion.hf_io import read_hf_tensors
from conversion.weights import IMPORT_SOURCE_FILE
from nemo_recipes.checkpoint.files import WEIGHTS_FILE
from tests.conftest import run_cli

SOURCE = "tiny-qwen3-float32"  # the architecture of sft_tiny.yaml


def _sft_from(hf_dir: Path, cache: Path, run_dir: Path) -> str:
    overrides = [
        f"run_dir={run_dir}",
        f"model.init_from={hf_dir}",
        f"model.hf_import_cache={cache}",
        "sft.train_steps=1",
        "sft.valid_data=[]",
        "logging.tensorboard=false",
        "logging.progress_bar=false",
    ]
    return run_cli(
        ["sft", "nemo_recipes/recipes/sft_tiny.yaml", *(a for o in overrides for a in ("--set", o))]
    ).stdout


def test_sft_from_an_hf_directory_imports_once_exactly(hf_root: Path, tmp_path: Path) -> None:
    hf_dir, cache = hf_root / SOURCE, tmp_path / "cache"
    first = _sft_from(hf_dir, cache, tmp_path / "run1")
    (cached,) = cache.iterdir()
    assert (cached / WEIGHTS_FILE).is_file() and (cached / IMPORT_SOURCE_FILE).is_file()
    assert f"initial weights from {cached}" in first
    stamp = (cached / WEIGHTS_FILE).stat().st_mtime_ns

    second = _sft_from(hf_dir, cache, tmp_path / "run2")
    assert f"initial weights from {cached}" in second
    assert [cached] == list(cache.iterdir()) and (cached / WEIGHTS_FILE).stat().st_mtime_ns == stamp

    exported = tmp_path / "exported"
    sources = ["--hf-config", str(hf_dir), "--tokenizer", str(hf_dir)]
    run_cli(["convert", "mcore-to-hf", str(cached), str(exported), *sources, "--dtype", "float32"])
    source, back = dict(read_hf_tensors(hf_dir)), dict(read_hf_tensors(exported))
    assert set(source) == set(back) and all(torch.equal(source[n], back[n]) for n in source)
