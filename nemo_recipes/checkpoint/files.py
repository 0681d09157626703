"""What makes a directory a model: our checkpoint's marker files, an HF model's files, the HF source
a weights-only checkpoint carries, the `latest` pointer of a run's checkpoints. Torch-free."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from nemo_recipes.config.loader import ConfigError

STATE_FILE = "trainer_state.json"
"""Written last into a training checkpoint: its presence means the checkpoint is complete."""
WEIGHTS_FILE = "weights_info.json"
"""Written last into a weights-only checkpoint (an HF import, `redone init-model`)."""
LORA_FILE = "lora.json"
"""In a LoRA training checkpoint (adapters and their optimizer state only): the adapters' settings
(`model.lora`) and the frozen base they train on, by path and sha256 of its weight files."""
NOT_WEIGHTS = (STATE_FILE, LORA_FILE, "latest")
"""Files of a checkpoint directory outside its weights (with rng_rank*.pt): left out of its hash."""
HF_SOURCE_DIR = "hf_source"
"""In a weights-only checkpoint: the HF config.json and tokenizer it was made with, so that exporting or
evaluating it needs no flags."""
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)
"""The files of an HF tokenizer directory (those present are copied)."""


def is_checkpoint(path: Path) -> bool:
    """A complete checkpoint of ours (training or weights-only)."""
    return (path / STATE_FILE).is_file() or (path / WEIGHTS_FILE).is_file()


def is_hf_dir(path: Path) -> bool:
    """An HF model directory (config.json + safetensors), as opposed to one of our checkpoints."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def is_peft_dir(path: Path) -> bool:
    """A PEFT adapter directory (adapter_config.json + adapter_model.safetensors), e.g. from
    `redone convert mcore-to-hf --adapter-only`."""
    return (path / "adapter_config.json").is_file() and (path / "adapter_model.safetensors").is_file()


def copy_hf_source(config_dir: Path, tokenizer_dir: Path, dest: Path) -> None:
    """config.json (and generation_config.json) of `config_dir` and the tokenizer files of
    `tokenizer_dir` into a new directory `dest`."""
    dest.mkdir()
    for folder, names in (
        (config_dir, ("config.json", "generation_config.json")),
        (tokenizer_dir, TOKENIZER_FILES),
    ):
        for name in names:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, dest / name)


def check_model_source(model: Path) -> None:
    """`model` is an HF model directory, a PEFT adapter directory or a complete checkpoint of ours (else
    a ConfigError)."""
    model = Path(model)
    if not (is_hf_dir(model) or is_checkpoint(model) or is_peft_dir(model)):
        raise ConfigError(
            f"{model}: neither an HF model directory (config.json + weights), a PEFT adapter directory "
            f"(adapter_config.json + adapter_model.safetensors) nor a complete checkpoint ({STATE_FILE} or "
            f"{WEIGHTS_FILE}); for a run, name runs/<run>/checkpoints/step_N"
        )


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint under `ckpt_root`, or None."""
    pointer = ckpt_root / "latest"
    if not pointer.is_file():
        return None
    path = ckpt_root / pointer.read_text(encoding="utf-8").strip()
    if not (path / STATE_FILE).is_file():
        raise RuntimeError(
            f"{pointer} names {path.name}, which is not a complete checkpoint (no {STATE_FILE})"
        )
    return path


def weights_sha256(path: Path) -> str:
    """sha256 over a model directory's weight files, in name order: an HF directory's *.safetensors, or
    every file of one of our checkpoints but its markers and RNG states (names and contents)."""
    path = Path(path)
    if is_hf_dir(path):
        files = sorted(path.glob("*.safetensors"))
    else:
        files = sorted(
            f
            for f in path.rglob("*")
            if f.is_file()
            and f.name not in NOT_WEIGHTS
            and not f.name.startswith("rng_rank")
            and HF_SOURCE_DIR not in f.relative_to(path).parts
        )
    if not files:
        raise FileNotFoundError(f"{path}: no weight files to hash")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as stream:
            while block := stream.read(1 << 24):
                digest.update(block)
    return digest.hexdigest()


def read_lora_record(ckpt: Path) -> dict[str, Any] | None:
    """The LoRA record of a checkpoint (`LORA_FILE`: settings, base path and sha256), None without one."""
    path = Path(ckpt) / LORA_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
