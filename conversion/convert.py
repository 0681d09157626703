"""Offline conversion: an HF directory -> our megatron checkpoint, and a checkpoint -> a servable HF one.

Both run on every rank of a TP x PP launch (one process by default) and publish their output
atomically: everything is written under `OUT.partial` and renamed to `OUT` only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing

from conversion.hf_config import (
    ConversionError,
    check_layout,
    check_lora_checkpoint,
    config_dtype,
    read_hf_config,
)
from conversion.hf_io import (
    DTYPES,
    INDEX_FILE,
    expected_hf_shapes,
    write_config,
    write_generation_config,
    write_safetensors_shards,
    write_tokenizer,
)
from conversion.lora import iter_peft_tensors, load_lora_checkpoint, lora_settings, write_peft_adapter
from conversion.weights import iter_hf_weights, load_hf_weights
from nemo_recipes.checkpoint.files import HF_SOURCE_DIR, STATE_FILE, WEIGHTS_FILE
from nemo_recipes.checkpoint.manager import (
    load_model_weights,
    model_sharded_state_dict,
    save_model_weights,
)
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import load_config
from nemo_recipes.config.model import LoRAConfig, ModelConfig, ParallelConfig
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import (
    ArchSpec,
    build_gpt_chunks,
    resolve_transformer_impl,
    transformer_config,
)
from nemo_recipes.model.lora import apply_lora, lora_model

"""Inside a converted checkpoint: the source config.json, generation config and tokenizer files."""


@contextmanager
def model_parallel(tp: int, pp: int) -> Iterator[ParallelConfig]:
    """Process group and model-parallel state for this launch (a single process without a launcher)."""
    parallel = ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    launch = read_launch_env()
    parallel.data_parallel_for(launch.world_size)
    init_distributed(parallel, launch)
    try:
        seed_all(0)  # only seeds the RNG tracker the forward needs; no weight is drawn
        yield parallel
    finally:
        shutdown()


def build_for_conversion(
    hf: dict, dtype: str, parallel: ParallelConfig, lora: LoRAConfig | None = None
) -> tuple[list, ArchSpec]:
    """Bare model chunks for this rank from our builder, in `dtype` throughout (as training holds them),
    with adapters of the settings `lora` when given (to load a LoRA checkpoint).

    Weights are initialised as usual: megatron sets the tensor-parallel attributes the TP gather needs
    during initialisation, so skipping it would silently break the export at TP > 1.
    """
    model_cfg = ModelConfig(dtype=dtype, transformer_impl="local" if lora else "auto")
    impl = resolve_transformer_impl(model_cfg)
    cfg, arch = transformer_config(hf, model_cfg, parallel, impl)
    chunks = build_gpt_chunks(cfg, arch, impl)
    if lora is not None:
        chunks = apply_lora(chunks, lora, seed=0)  # the checkpoint's adapters replace the initial ones
    if dtype == "bfloat16":  # what Float16Module does in training: norms too
        chunks = [c.bfloat16() for c in chunks]
    if torch.cuda.is_available():
        chunks = [c.cuda() for c in chunks]
    return chunks, arch


def _rank0() -> bool:
    return dist.get_rank() == 0


def _check_new(out: Path) -> None:
    if out.exists():
        raise ConversionError(f"{out} exists; remove it or choose another output directory")


def _fresh_staging(out: Path) -> Path:
    """`OUT.partial`, emptied of a killed earlier attempt (collective)."""
    staging = out.with_name(out.name + ".partial")
    if _rank0():
        shutil.rmtree(staging, ignore_errors=True)
    dist.barrier()
    return staging


def hf_to_mcore(hf_dir: Path, out: Path, tp: int = 1, pp: int = 1, dtype: str | None = None) -> Path:
    """Convert an HF safetensors directory into our weights-only megatron checkpoint at `out`."""
    hf = read_hf_config(hf_dir)
    dtype = dtype or config_dtype(hf)
    check_layout(hf, tp, pp, hf_dir / "config.json")
    _check_new(out)
    with model_parallel(tp, pp) as parallel:
        chunks, _ = build_for_conversion(hf, dtype, parallel)
        load_hf_weights(chunks, hf_dir)
        save_model_weights(out, chunks, hf_source=(hf_dir, hf_dir))
    return out


def _run_config_model(ckpt: Path) -> ModelConfig | None:
    """The model section of `<run_dir>/config.yaml` for `<run_dir>/checkpoints/step_N`, if present."""
    run_config = ckpt.parent.parent / "config.yaml"
    if ckpt.parent.name != "checkpoints" or not run_config.is_file():
        return None
    return load_config(RunConfig, run_config, []).model


def export_sources(ckpt: Path, hf_config: str | None, tokenizer: str | None) -> tuple[Path, Path]:
    """Where config.json and the tokenizer come from: flags, else the run's config.yaml, else hf_source/."""
    run_model = _run_config_model(ckpt)
    embedded = ckpt / HF_SOURCE_DIR
    picked = []
    for flag, kind, from_run in (
        (hf_config, "models", run_model and run_model.hf_config),
        (tokenizer, "tokenizer", run_model and run_model.tokenizer),
    ):
        name = flag or from_run
        if name:
            picked.append(resolve_asset(name, kind))
        elif embedded.is_dir():
            picked.append(embedded)
        else:
            flag, key = (
                ("--hf-config", "model.hf_config") if kind == "models" else ("--tokenizer", "model.tokenizer")
            )
            raise ConversionError(
                f"{ckpt}: no run config.yaml next to it and no {HF_SOURCE_DIR}/ in it: name the model with "
                f"`redone convert ... {flag} DIR` or `redone eval ... --set {key}=DIR`"
            )
    return picked[0], picked[1]


def check_checkpoint(ckpt: Path, chunks: list) -> None:
    """`ckpt` holds every tensor the model needs, with the same global shapes."""
    saved = dist_checkpointing.load_tensors_metadata(str(ckpt))
    problems: dict[str, str] = {}  # by key: the layers of a stage share one stacked key
    for sub in model_sharded_state_dict(chunks).values():
        for t in sub.values():
            if not hasattr(t, "global_shape") or t.key.endswith("_extra_state"):
                continue  # fused gate/up factories and extra state: covered by their neighbours
            if t.key not in saved:
                problems[t.key] = f"missing {t.key}"
            elif tuple(saved[t.key].global_shape) != tuple(t.global_shape):
                problems[t.key] = (
                    f"{t.key} has shape {tuple(saved[t.key].global_shape)}, the config implies "
                    f"{tuple(t.global_shape)}"
                )
    if problems:
        listed = "; ".join(list(problems.values())[:8])
        raise ConversionError(f"{ckpt}: does not match the model config: {listed}")


def checkpoint_dtype(ckpt: Path) -> str:
    """The dtype the weights of a complete checkpoint were saved in (a LoRA checkpoint: its adapters',
    the dtype its run trained in)."""
    if not ((ckpt / STATE_FILE).is_file() or (ckpt / WEIGHTS_FILE).is_file()):
        raise ConversionError(f"{ckpt}: not a complete checkpoint (no {STATE_FILE} or {WEIGHTS_FILE})")
    meta = dist_checkpointing.load_tensors_metadata(str(ckpt))
    key = "embedding.word_embeddings.weight"
    if key not in meta:  # adapters only
        key = min(k for k in meta if k.startswith("lora.") and k.endswith(".weight"))
    dtype = meta[key].dtype
    names = {v: k for k, v in DTYPES.items()}
    if dtype not in names:
        raise ConversionError(f"{ckpt}: weights are {dtype}; supported: {sorted(names.values())}")
    return names[dtype]


def mcore_to_hf(
    ckpt: Path,
    out: Path,
    hf_config: str | None = None,
    tokenizer: str | None = None,
    dtype: str = "bfloat16",
    max_shard_mb: int = 5000,
    adapter_only: bool = False,
) -> Path:
    """Export a checkpoint (training or weights-only) as a serving-ready HF directory at `out`.

    A LoRA checkpoint is loaded on its base (checked by sha256) and exported merged, or with
    `adapter_only` as a PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
    """
    if adapter_only:
        check_lora_checkpoint(ckpt, "--adapter-only")
    lora = lora_settings(ckpt)
    config_dir, tokenizer_dir = export_sources(ckpt, hf_config, tokenizer)
    hf = read_hf_config(config_dir)
    _check_new(out)
    with model_parallel(1, 1) as parallel:
        staging = _fresh_staging(out)
        chunks, arch = build_for_conversion(hf, checkpoint_dtype(ckpt), parallel, lora)
        if lora is None:
            check_checkpoint(ckpt, chunks)
            load_model_weights(ckpt, chunks)
        else:
            base = load_lora_checkpoint(ckpt, chunks)
            if adapter_only:
                tensors = iter_peft_tensors(chunks)
                if _rank0():
                    write_peft_adapter(staging, tensors, lora, str(base), DTYPES[dtype])
                    os.replace(staging, out)
                dist.barrier()
                return out
            for chunk in chunks:
                lora_model(chunk).merge_()
        tensors = (
            (name, t.to(DTYPES[dtype]))
            for name, t in iter_hf_weights(chunks, arch.model_type, with_tied_lm_head=False)
        )
        if _rank0():
            staging.mkdir(parents=True)
            write_safetensors_shards(tensors, staging, max_shard_mb << 20)
            write_config(staging, config_dir, dtype)
            write_generation_config(staging, (config_dir, tokenizer_dir))
            write_tokenizer(staging, tokenizer_dir, arch.vocab_size)
            _check_written(staging)
            os.replace(staging, out)
        else:
            for _ in tensors:
                pass
        dist.barrier()
    return out


def _check_written(out_dir: Path) -> None:
    """The written weights are exactly what transformers expects for the written config.json."""
    written = json.loads((out_dir / INDEX_FILE).read_text(encoding="utf-8"))["weight_map"]
    expected = expected_hf_shapes(out_dir)
    if set(written) != set(expected):
        raise RuntimeError(
            f"export wrote {sorted(set(written) ^ set(expected))} unlike transformers' model for this config"
        )
