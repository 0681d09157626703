"""Training checkpoints: megatron-core dist_checkpointing, written atomically, keep-last-k, resume.

Layout of `<run_dir>/checkpoints/`:
  step_00000040/          a complete checkpoint (model, optimizer, trainer_state.json, rng_rank*.pt)
  step_00000050.partial/  a save in progress or killed mid-way: never loaded, removed on the next save
  latest                  the name of the newest complete checkpoint (replaced atomically)
A checkpoint directory only gets its final name after every rank finished writing, and
trainer_state.json is written last inside it, so a directory with a final name is complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import numpy as np
import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing, parallel_state, tensor_parallel

from nemo_recipes import preemption
from nemo_recipes.checkpoint.files import (
    HF_SOURCE_DIR,
    LORA_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    copy_hf_source,
    read_lora_record,
)
from nemo_recipes.checkpoint.optimizer_state import load_optimizer_state, optimizer_sharded_state_dict
from nemo_recipes.config.training import CheckpointConfig


@dataclass
class TrainerState:
    """What a stage needs besides weights and optimizer to continue exactly."""

    step: int
    consumed_rows: int
    """Data position: rows (packed sequences) consumed since the start of the stage."""
    scheduler: dict[str, Any]
    layout: dict[str, int]
    """tp/pp/dp/vp sizes at save time: RNG streams are restored only into the same layout."""
    extra: dict[str, Any] = field(default_factory=dict)


def bare_chunks(model: list) -> list[torch.nn.Module]:
    """The GPTModel inside each DDP (and Float16Module) wrapper."""
    out = []
    for chunk in model:
        m = chunk
        while hasattr(m, "module"):
            m = m.module
        out.append(m)
    return out


def model_sharded_state_dict(model: list) -> dict[str, Any]:
    """Every weight of the model (the base alone where it carries adapters)."""
    return _sharded(bare_chunks(model), "model")


def trained_chunks(model: list) -> list[torch.nn.Module]:
    """What a training checkpoint holds of each chunk: its adapters where it carries them (`model.lora`:
    an `adapters` module beside the frozen base, see nemo_recipes.model.lora), else the whole model."""
    out = []
    for chunk in model:
        m = chunk
        while not isinstance(getattr(m, "adapters", None), torch.nn.Module) and hasattr(m, "module"):
            m = m.module
        out.append(getattr(m, "adapters", m))
    return out


def trained_sharded_state_dict(model: list) -> dict[str, Any]:
    """The trained weights' sharded state dict: the adapters ("lora" keys) or the whole model ("model")."""
    chunks = trained_chunks(model)
    return _sharded(chunks, "model" if chunks == bare_chunks(model) else "lora")


def _sharded(chunks: list[torch.nn.Module], name: str) -> dict[str, Any]:
    if len(chunks) == 1:
        return {name: chunks[0].sharded_state_dict()}
    return {f"{name}{i}": c.sharded_state_dict() for i, c in enumerate(chunks)}


def _load_sharded(path: Path, chunks: list[torch.nn.Module], sharded: dict[str, Any]) -> None:
    loaded = dist_checkpointing.load(sharded, str(path))  # also returns the common (non-tensor) state
    for key, chunk in zip(sorted(sharded), chunks, strict=True):
        chunk.load_state_dict(loaded[key], strict=True)


def current_layout() -> dict[str, int]:
    return {
        "tp": parallel_state.get_tensor_model_parallel_world_size(),
        "pp": parallel_state.get_pipeline_model_parallel_world_size(),
        "dp": parallel_state.get_data_parallel_world_size(),
        "cp": parallel_state.get_context_parallel_world_size(),
        "vp": parallel_state.get_virtual_pipeline_model_parallel_world_size() or 1,
    }


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        "tracker": tensor_parallel.get_cuda_rng_tracker().get_states(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    tensor_parallel.get_cuda_rng_tracker().set_states(state["tracker"])


def _rng_file(ckpt_dir: Path) -> Path:
    return ckpt_dir / f"rng_rank{dist.get_rank():05d}.pt"


def _rank0() -> bool:
    return dist.get_rank() == 0


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(
    ckpt_root: Path,
    model: list,
    optimizer,
    state: TrainerState,
    ckpt_cfg: CheckpointConfig,
    lora_record: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Collective: every rank calls it. Returns the final directory.

    The trained weights are saved (`trained_chunks`): with adapters, those alone and `lora_record`
    (their settings, the base's path and sha256) as `LORA_FILE`. `extra_files` (name -> bytes, rank 0's)
    go in the checkpoint too, before it is complete.
    """
    final = ckpt_root / checkpoint_name(state.step)
    partial = ckpt_root / (final.name + ".partial")
    if _rank0():
        ckpt_root.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_root.glob("*.partial"):
            shutil.rmtree(stale)
        if final.exists():  # re-saving the same step after a resume: replace it
            shutil.rmtree(final)
        partial.mkdir()
    dist.barrier()

    sharded = trained_sharded_state_dict(model)
    sharded["optimizer"] = optimizer_sharded_state_dict(optimizer, sharded, ckpt_cfg.optimizer_format)
    with preemption.signals_held():  # a stop signal must not kill the writer's worker processes
        dist_checkpointing.save(sharded, str(partial))
    torch.save(_rng_state(), _rng_file(partial))
    dist.barrier()

    if _rank0():
        if lora_record is not None:
            _atomic_write(partial / LORA_FILE, json.dumps(lora_record, indent=1))
        for name, data in (extra_files or {}).items():
            (partial / name).write_bytes(data)
        state.layout = current_layout()
        _atomic_write(partial / STATE_FILE, json.dumps(asdict(state), indent=1))
        os.replace(partial, final)
        _atomic_write(ckpt_root / "latest", final.name)
        _prune(ckpt_root, ckpt_cfg.keep_last)
    dist.barrier()
    return final


def _prune(ckpt_root: Path, keep_last: int) -> None:
    complete = sorted(p for p in ckpt_root.glob("step_*") if (p / STATE_FILE).is_file())
    for old in complete[:-keep_last]:
        shutil.rmtree(old)


def save_model_weights(path: Path, model: list, hf_source: tuple[Path, Path] | None = None) -> None:
    """Weights only, as a megatron-core distributed checkpoint any layout can load (collective).

    `hf_source` = (HF config directory, tokenizer directory): copied into `path/hf_source/`, so the
    checkpoint carries what export and evaluation need. Published atomically, with everything in it.
    """
    partial = path.with_name(path.name + ".partial")
    if _rank0():
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it or choose another output directory")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    dist.barrier()
    dist_checkpointing.save(model_sharded_state_dict(model), str(partial))
    dist.barrier()
    if _rank0():
        if hf_source is not None:
            copy_hf_source(*hf_source, partial / HF_SOURCE_DIR)
        _atomic_write(partial / WEIGHTS_FILE, json.dumps({"layout": current_layout()}))
        os.replace(partial, path)
    dist.barrier()


def load_model_weights(path: Path, model: list) -> None:
    """Weights only (any TP/PP layout): for starting a stage from another stage's checkpoint."""
    if not ((path / STATE_FILE).is_file() or (path / WEIGHTS_FILE).is_file()):
        raise FileNotFoundError(f"{path}: not a complete checkpoint (no {STATE_FILE} or {WEIGHTS_FILE})")
    if read_lora_record(path) is not None:
        raise ValueError(
            f"{path}: a LoRA checkpoint holds adapters only, not a whole model; export it merged first "
            "(redone convert mcore-to-hf) or load it through its base"
        )
    _load_sharded(path, bare_chunks(model), model_sharded_state_dict(model))


def load_trained_weights(path: Path, model: list) -> None:
    """A training checkpoint's trained weights (adapters, or the whole model) into `model` (collective)."""
    adapters = trained_chunks(model) != bare_chunks(model)
    if adapters != (read_lora_record(path) is not None):
        raise ValueError(
            f"{path}: a {'LoRA' if not adapters else 'full'} checkpoint cannot resume a "
            f"{'LoRA' if adapters else 'full'} run (model.lora must match the run that saved it)"
        )
    _load_sharded(path, trained_chunks(model), trained_sharded_state_dict(model))


def load_checkpoint(path: Path, model: list, optimizer, ckpt_cfg: CheckpointConfig) -> TrainerState:
    """Trained weights, optimizer, scheduler state, RNG and data position (collective). With adapters,
    the frozen base must be loaded already (it is not in the checkpoint)."""
    state = TrainerState(**json.loads((path / STATE_FILE).read_text(encoding="utf-8")))
    load_trained_weights(path, model)
    load_optimizer_state(optimizer, trained_sharded_state_dict(model), str(path), ckpt_cfg.optimizer_format)
    rng_file = _rng_file(path)
    if state.layout == current_layout() and rng_file.is_file():
        _set_rng_state(torch.load(rng_file, weights_only=False))
    elif _rank0():
        print(
            f"[checkpoint] {path.name}: saved at layout {state.layout}, loading at {current_layout()}: "
            "random-number streams are re-seeded, not restored (dropout-free models are unaffected)",
            flush=True,
        )
    return state
