"""What makes a directory a model: our checkpoint's marker files, an HF model's files, the `latest`
pointer of a run's checkpoints. Torch-free."""

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
