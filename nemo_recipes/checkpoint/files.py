"""What makes a directory a model: our checkpoint's marker files, an HF model's files, the HF source
a weights-only checkpoint carries, the `latest` pointer of a run's checkpoints. Torch-free."""

from __future__ import annotations

import shutil
from pathlib import Path

from nemo_recipes.config.loader import ConfigError

STATE_FILE = "trainer_state.json"
"""Written last into a training checkpoint: its presence means the checkpoint is complete."""
WEIGHTS_FILE = "weights_info.json"
"""Written last into a weights-only checkpoint (an HF import, `redone init-model`)."""
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
    """`model` is an HF model directory or a complete checkpoint of ours (else a ConfigError)."""
    model = Path(model)
    if not (is_hf_dir(model) or is_checkpoint(model)):
        raise ConfigError(
            f"{model}: neither an HF model directory (config.json + weights) nor a complete checkpoint "
            f"({STATE_FILE} or {WEIGHTS_FILE}); for a run, name runs/<run>/checkpoints/step_N"
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
