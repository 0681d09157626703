"""What makes a directory a model: our checkpoint's marker files, an HF model's files. Torch-free."""

from __future__ import annotations

from pathlib import Path

STATE_FILE = "trainer_state.json"
"""Written last into a training checkpoint: its presence means the checkpoint is complete."""
WEIGHTS_FILE = "weights_info.json"
"""Written last into a weights-only checkpoint (an HF import, `redone init-model`)."""


def is_checkpoint(path: Path) -> bool:
    """A complete checkpoint of ours (training or weights-only)."""
    return (path / STATE_FILE).is_file() or (path / WEIGHTS_FILE).is_file()


def is_hf_dir(path: Path) -> bool:
    """An HF model directory (config.json + safetensors), as opposed to one of our checkpoints."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))
