"""What `redone eval MODEL` generates with: an HF directory as is, or one of our checkpoints exported."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nemo_recipes.checkpoint.files import TOKENIZER_FILES, is_hf_dir, is_peft_dir
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.model import ModelConfig


def hf_model_dir(
    model: Path, work_dir: Path, hf_config: str | None = None, tokenizer: str | None = None
) -> Path:
    """`model` itself when it is an HF model directory; else our checkpoint exported (in its own dtype)
    to `work_dir/hf` once, reused by later runs (the export publishes atomically). `hf_config` and
    `tokenizer` name the architecture and tokenizer when the checkpoint's run does not record them."""
    from conversion.convert import checkpoint_dtype, mcore_to_hf  # megatron: only to export a checkpoint

    model = Path(model)
    if is_hf_dir(model):
        return model
    if is_peft_dir(model):
        return merged_adapter_dir(model, work_dir, hf_config, tokenizer)
    out = work_dir / "hf"
    if not (out / "config.json").is_file():
        mcore_to_hf(model, out, hf_config, tokenizer, dtype=checkpoint_dtype(model))
    return out


def merged_adapter_dir(
    adapter: Path, work_dir: Path, hf_config: str | None = None, tokenizer: str | None = None
) -> Path:
    """A PEFT adapter directory merged by PEFT into its base (`base_model_name_or_path` of its
    adapter_config.json: an HF directory, or one of our checkpoints, exported first), written once to
    `work_dir/hf` with the base's tokenizer and generation config."""
    from peft import PeftModel  # torch: only to merge an adapter
    from transformers import AutoModelForCausalLM

    out = work_dir / "hf"
    if (out / "config.json").is_file():
        return out
    base = Path(
        json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
    )
    if not (is_hf_dir(base) or base.is_dir()):
        raise ConfigError(f"{adapter}/adapter_config.json: its base {base} is not a model directory here")
    base_hf = hf_model_dir(base, work_dir / "base", hf_config, tokenizer)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_hf, dtype="auto"), adapter)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged.merge_and_unload().save_pretrained(partial)
    for name in ("generation_config.json", *TOKENIZER_FILES):
        if (base_hf / name).is_file():
            shutil.copyfile(base_hf / name, partial / name)
    os.replace(partial, out)
    return out


def stated_model_sources(model: ModelConfig) -> tuple[str | None, str | None]:
    """(hf_config, tokenizer) for exporting a checkpoint: those the config states explicitly (a recipe
    or `--set`), else None, so that the checkpoint's own run config decides (a default never does)."""
    stated = model.model_fields_set
    return (
        model.hf_config if "hf_config" in stated else None,
        model.tokenizer if "tokenizer" in stated else None,
    )


def context_budget(hf_dir: Path, max_prompt_tokens: int, max_response_tokens: int) -> tuple[int, int]:
    """(engine max length, longest prompt allowed): prompt + response, bounded by the model's window."""
    max_len = max_prompt_tokens + max_response_tokens
    config = json.loads((Path(hf_dir) / "config.json").read_text(encoding="utf-8"))
    positions = config.get("max_position_embeddings")
    if positions is not None and max_len > positions:
        max_len = positions
    if max_len - max_response_tokens < 1:
        raise ConfigError(
            f"max_response_tokens {max_response_tokens} leaves no room in the model's {max_len}"
        )
    return max_len, max_len - max_response_tokens
