"""HF config.json checks (and whether a checkpoint has LoRA adapters), torch-free so the CLI rejects bad
input before loading any framework."""

from __future__ import annotations

import json
from pathlib import Path

from nemo_recipes.checkpoint.files import LORA_FILE, read_lora_record
from nemo_recipes.config.loader import ConfigError

SUPPORTED_MODEL_TYPES = ("qwen3", "qwen3_moe", "qwen2", "llama")
"""HF model_type values with a mapping (conversion.mapping.BRIDGES) and a builder family."""
MOE_MODEL_TYPES = ("qwen3_moe",)
"""Of those, the mixture-of-experts families (every layer routed, no shared expert)."""
DTYPE_NAMES = ("float32", "bfloat16")


class ConversionError(ConfigError):
    """Bad conversion input (a path, a config, weights): printed as a message, exit code 2."""


def read_hf_config(path: Path) -> dict:
    """config.json of an HF model directory (or the file itself), checked for a supported family."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise ConversionError(f"{path}: no config.json (not an HF model directory)")
    try:
        hf = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConversionError(f"{file}: cannot read: {e}") from e
    check_supported(hf, file)
    return hf


def check_supported(hf: dict, file: Path) -> None:
    """Fail on families and options the mapping or our builder do not cover."""
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        archs = hf.get("architectures")
        raise ConversionError(
            f"{file}: model_type {model_type!r} ({archs}) is not supported; "
            f"supported: {list(SUPPORTED_MODEL_TYPES)}"
        )
    unsupported = {
        "use_sliding_window": bool(hf.get("use_sliding_window")),
        "attention_bias": model_type != "qwen2" and bool(hf.get("attention_bias")),
        "mlp_bias": bool(hf.get("mlp_bias")),
    }
    bad = sorted(k for k, on in unsupported.items() if on)
    if bad:
        raise ConversionError(f"{file}: {', '.join(f'{k}=true' for k in bad)} is not supported")
    if model_type in MOE_MODEL_TYPES:
        _check_moe_supported(hf, file)


def _check_moe_supported(hf: dict, file: Path) -> None:
    """Every decoder layer a routed MoE without a shared expert: what the builder and mapping cover.

    The builder (`nemo_recipes.model.build`) refuses the same configs for training; a test keeps the
    two lists in step.
    """
    sparse_step, dense_layers = hf.get("decoder_sparse_step", 1), hf.get("mlp_only_layers") or []
    problems = []
    if sparse_step != 1 or dense_layers:
        problems.append(
            f"decoder_sparse_step {sparse_step} / mlp_only_layers {dense_layers}: dense layers inside an "
            "MoE model are not supported (needs decoder_sparse_step 1, mlp_only_layers [])"
        )
    if hf.get("shared_expert_intermediate_size"):
        problems.append(
            f"shared_expert_intermediate_size {hf['shared_expert_intermediate_size']}: shared experts are "
            "not supported"
        )
    if problems:
        raise ConversionError(f"{file}: {'; '.join(problems)}")


def config_dtype(hf: dict) -> str:
    """The dtype an HF config declares, as one of ours; float32 when it declares none."""
    name = str(hf.get("dtype") or hf.get("torch_dtype") or "float32").replace("torch.", "")
    if name not in DTYPE_NAMES:
        raise ConversionError(f"config dtype {name!r} is not supported: pass --dtype float32 or bfloat16")
    return name


def check_layout(hf: dict, tp: int, pp: int, source: Path) -> None:
    """The model splits evenly over TP x PP."""
    heads, groups = hf["num_attention_heads"], hf.get("num_key_value_heads", hf["num_attention_heads"])
    sizes = {"num_attention_heads": heads, "num_key_value_heads": groups, "vocab_size": hf["vocab_size"]}
    if hf.get("model_type") in MOE_MODEL_TYPES:  # experts are split over TP too (expert TP = TP)
        sizes["moe_intermediate_size"] = hf["moe_intermediate_size"]
    bad = [f"{k} {v} is not divisible by --tp {tp}" for k, v in sizes.items() if v % tp]
    if hf["num_hidden_layers"] % pp:
        bad.append(f"num_hidden_layers {hf['num_hidden_layers']} is not divisible by --pp {pp}")
    if bad:
        raise ConversionError(f"{source}: {'; '.join(bad)}")


def check_lora_checkpoint(ckpt: Path, option: str) -> None:
    """`ckpt` is a LoRA checkpoint (it has the LoRA record, `LORA_FILE`), which `option` needs."""
    if read_lora_record(ckpt) is None:
        raise ConversionError(
            f"{ckpt}: has no LoRA adapters (no {LORA_FILE}): {option} needs a LoRA checkpoint (one trained "
            f"with model.lora); export this one without {option}"
        )
