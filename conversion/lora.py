"""LoRA checkpoints <-> their base, and adapters in PEFT's format (HF names).

A LoRA training checkpoint holds the adapters and their optimizer state only; its `lora.json` names the
frozen base (path and sha256 of its weight files) and the adapters' settings. Here: loading the base
into a LoRA model and recording it, loading a LoRA checkpoint whole (base checked, then adapters), and
the adapters as PEFT tensors (`base_model.model.model.layers.<l>.self_attn.q_proj.lora_A.weight`, ...)
with PEFT's `adapter_config.json`, which `peft.PeftModel.from_pretrained` and vLLM's LoRA support load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from peft import LoraConfig
from safetensors.torch import save_file

from conversion.weights import initialize_from
from nemo_recipes.checkpoint.files import LORA_FILE, read_lora_record, weights_sha256
from nemo_recipes.checkpoint.manager import load_trained_weights
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.model import LoRAConfig, ModelConfig
from nemo_recipes.model.lora import iter_adapter_weights

PEFT_MODULES = {
    ("linear_qkv", "q"): "self_attn.q_proj",
    ("linear_qkv", "k"): "self_attn.k_proj",
    ("linear_qkv", "v"): "self_attn.v_proj",
    ("linear_proj", "out"): "self_attn.o_proj",
    ("linear_fc1", "gate"): "mlp.gate_proj",
    ("linear_fc1", "up"): "mlp.up_proj",
    ("linear_fc2", "out"): "mlp.down_proj",
}
"""(megatron role, B part) -> the HF module it adapts (Qwen3, Qwen3-MoE attention, Qwen2, Llama)."""
PEFT_PREFIX = "base_model.model.model.layers"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def _sha256_on_rank0(path: Path) -> str:
    """The base's hash, computed once per job and shared (collective)."""
    box = [weights_sha256(path) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def load_lora_base(model_cfg: ModelConfig, model: list) -> dict[str, Any]:
    """Load the frozen base (`model.init_from`) into a LoRA model (collective); returns the record a
    LoRA checkpoint keeps (`LORA_FILE`): the adapters' settings and the base's path and sha256."""
    if model_cfg.init_from is None:
        raise ConfigError("model.lora needs model.init_from: the frozen base the adapters train on")
    base = Path(model_cfg.init_from).resolve()
    if read_lora_record(base) is not None:
        raise ConfigError(
            f"model.init_from {base} is a LoRA checkpoint (adapters only): export it merged with "
            "`redone convert mcore-to-hf` and start from that directory"
        )
    record = {
        "base": str(base),
        "base_sha256": _sha256_on_rank0(base),
        "lora": model_cfg.lora.model_dump(),
        "hf_config": model_cfg.hf_config,
        "tokenizer": model_cfg.tokenizer,
    }
    initialize_from(base, model, model_cfg.hf_import_cache)
    return record


def check_resumable(ckpt: Path, record: dict[str, Any]) -> None:
    """A LoRA checkpoint continues this run only on the same base and adapter settings."""
    saved = read_lora_record(ckpt)
    if saved is None:
        raise ConfigError(f"{ckpt}: not a LoRA checkpoint, but this run sets model.lora")
    for key, setting in (("base_sha256", "model.init_from"), ("lora", "model.lora")):
        if saved[key] != record[key]:
            raise ConfigError(
                f"{ckpt}: saved with {key} {saved[key]}, this run has {record[key]}: {setting} must be "
                "the run's own to resume it"
            )


def lora_settings(ckpt: Path) -> LoRAConfig | None:
    """The adapter settings of a LoRA checkpoint (None for any other checkpoint)."""
    record = read_lora_record(ckpt)
    return None if record is None else LoRAConfig(**record["lora"])


def base_of(ckpt: Path) -> Path:
    """The base a LoRA checkpoint was trained on, checked unchanged since (sha256 of its weights)."""
    record = read_lora_record(ckpt)
    base = Path(record["base"])
    if not base.exists():
        raise ConfigError(f"{ckpt}/{LORA_FILE}: its base {base} does not exist (moved or deleted?)")
    found = weights_sha256(base)
    if found != record["base_sha256"]:
        raise ConfigError(
            f"{ckpt}/{LORA_FILE}: its base {base} changed since the adapters were trained "
            f"(sha256 {found}, recorded {record['base_sha256']})"
        )
    return base


def load_lora_checkpoint(ckpt: Path, model: list, import_cache: Path | None = None) -> Path:
    """A LoRA checkpoint into a model built with its settings: the base (checked), then the adapters
    (collective). Returns the base."""
    box = [base_of(ckpt) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    initialize_from(box[0], model, import_cache)
    load_trained_weights(ckpt, model)
    return box[0]


def iter_peft_tensors(model: list) -> Iterator[tuple[str, torch.Tensor]]:
    """PEFT-named full adapter tensors of the whole model, on every rank (collective over TP and PP).

    A fused megatron adapter becomes one PEFT adapter per HF module: its A is shared (q, k and v get the
    same lora_A), each B part is that module's lora_B, so B_q A is exactly the q rows of B A.
    """
    local: dict[str, torch.Tensor] = {}
    for adapter in iter_adapter_weights(model):
        for part, b in adapter.b.items():
            module = f"{PEFT_PREFIX}.{adapter.layer}.{PEFT_MODULES[(adapter.role, part)]}"
            local[f"{module}.lora_A.weight"] = adapter.a.cpu().clone()  # q, k, v: one A, three copies
            local[f"{module}.lora_B.weight"] = b.cpu()
    group = parallel_state.get_pipeline_model_parallel_group()
    stages: list[dict[str, torch.Tensor] | None] = [None] * dist.get_world_size(group)
    dist.all_gather_object(stages, local, group=group)  # adapters are small: a few MB per stage
    merged = {k: v for stage in stages for k, v in stage.items()}
    yield from sorted(merged.items(), key=lambda kv: _layer_order(kv[0]))


def _layer_order(name: str) -> tuple[int, str]:
    layer = name[len(PEFT_PREFIX) + 1 :].split(".", 1)[0]
    return int(layer), name


def peft_modules(lora: LoRAConfig) -> list[str]:
    """The HF module names (q_proj, ...) PEFT's target_modules lists for these settings."""
    return [PEFT_MODULES[key].rsplit(".", 1)[1] for key in PEFT_MODULES if key[0] in lora.target_modules]


def write_peft_adapter(
    out_dir: Path,
    tensors: Iterator[tuple[str, torch.Tensor]],
    lora: LoRAConfig,
    base: str,
    dtype: torch.dtype,
) -> None:
    """`adapter_config.json` (PEFT's own LoraConfig) and `adapter_model.safetensors` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=peft_modules(lora),
        task_type="CAUSAL_LM",
        bias="none",
        base_model_name_or_path=base,
    ).save_pretrained(str(out_dir))
    save_file({k: v.to(dtype).contiguous() for k, v in tensors}, str(out_dir / ADAPTER_WEIGHTS))
