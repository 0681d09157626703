"""The model (architecture, numerics) and its parallel layout. Torch-free."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError, StrictModel

LoRATarget = Literal["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]
"""megatron-core's names of the linear layers LoRA adapts, by role: attention qkv / output projection,
MLP fc1 (gate and up) / fc2 (down)."""
LORA_TARGETS: tuple[str, ...] = get_args(LoRATarget)


class LoRAConfig(StrictModel):
    """Low-rank adapters (LoRA) on the frozen base: y = W x + (alpha / rank) B A dropout(x)."""

    rank: PositiveInt = 16
    """The adapters' rank r (A: r x in, B: out x r); must be divisible by the tensor-parallel size."""
    alpha: PositiveFloat = 32.0
    """Scale numerator: the adapter's output is multiplied by alpha / rank (as PEFT does)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input during training (PEFT's lora_dropout)."""
    target_modules: list[LoRATarget] = Field(default_factory=lambda: list(LORA_TARGETS), min_length=1)
    """Layers adapted, by role: linear_qkv (q/k/v), linear_proj (o), linear_fc1 (gate/up), linear_fc2
    (down). MoE models: attention only (experts are not adapted)."""

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class ModelConfig(StrictModel):
    """Architecture (an HF-style config.json) and numerics."""

    hf_config: str = "tiny-qwen3"
    """A directory with an HF config.json, or a shipped preset under assets/models."""
    tokenizer: str = "tiny"
    """An HF tokenizer directory, or a shipped one under assets/tokenizer."""
    init_from: Path | None = None
    """Start from these weights: one of our checkpoints (any layout), or an HF model directory
    (imported once into hf_import_cache, reused afterwards); None = random init (seeded)."""
    hf_import_cache: Path | None = None
    """Where HF imports are kept; default $REDONE_CACHE_DIR/hf_imports or ~/.cache/redone/hf_imports."""
    transformer_impl: Literal["auto", "local", "transformer_engine"] = "auto"
    """The one switch for GPU-only kernels: auto = Transformer Engine when CUDA and TE are present."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Training precision (bfloat16: mixed precision with fp32 master weights in the optimizer)."""
    fp8: Literal["e4m3", "hybrid"] | None = None
    """FP8 recipe passed to megatron-core; needs Transformer Engine on a GPU."""
    init_method_std: PositiveFloat = 0.02
    """Standard deviation of the random initialisation (model.init_from unset)."""
    recompute: Literal["full", "selective"] | None = None
    """Activation recomputation: full layers, the attention core only (selective), or none."""
    lora: LoRAConfig | None = None
    """Train low-rank adapters on a frozen base (model.init_from) instead of every weight; None = off.
    Setting any key turns it on (`--set model.lora.rank=16`, or `model.lora: {}` for the defaults)."""

    def hf_config_file(self) -> Path:
        """The config.json `hf_config` names."""
        path = resolve_asset(self.hf_config, "models")
        return path / "config.json" if path.is_dir() else path

    def hf_config_dict(self) -> dict:
        path = self.hf_config_file()
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the model config: {e}") from e


class ParallelConfig(StrictModel):
    """Model-parallel layout; data parallel size is what the world size leaves."""

    tensor_model_parallel_size: PositiveInt = 1
    """Ranks each layer's matrices are split over (tensor parallel)."""
    pipeline_model_parallel_size: PositiveInt = 1
    """Pipeline stages the layers are split into."""
    virtual_pipeline_model_parallel_size: PositiveInt | None = None
    """Interleaved pipeline: model chunks per stage (needs pipeline_model_parallel_size >= 2)."""
    context_parallel_size: PositiveInt = 1
    """Ranks a sequence is split over (context parallel; needs Transformer Engine attention)."""
    expert_model_parallel_size: PositiveInt = 1
    """Mixture-of-experts models: experts split over this many ranks of the data-parallel group."""
    sequence_parallel: bool = False
    """Split norms and dropout over the tensor-parallel ranks along the sequence (needs TP > 1; an MoE
    model under TP needs it)."""
    data_parallel_size: PositiveInt | None = None
    """Optional: if given, must equal world_size / (tp * pp * cp)."""
    use_distributed_optimizer: bool = False
    """Shard the optimizer state over the data-parallel ranks (ZeRO-1)."""
    overlap_grad_reduce: bool = False
    """Overlap the data-parallel gradient reduce with the backward pass."""
    overlap_param_gather: bool = False
    """Overlap the distributed optimizer's parameter all-gather with the forward pass."""

    @model_validator(mode="after")
    def _param_gather_needs_distributed_optimizer(self) -> ParallelConfig:
        if self.overlap_param_gather and not self.use_distributed_optimizer:
            raise ValueError("overlap_param_gather needs use_distributed_optimizer: true")
        return self

    @property
    def model_parallel_size(self) -> int:
        return (
            self.tensor_model_parallel_size * self.pipeline_model_parallel_size * self.context_parallel_size
        )

    def data_parallel_for(self, world_size: int) -> int:
        mp = self.model_parallel_size
        if world_size % mp:
            raise ConfigError(
                f"parallel: world size {world_size} is not divisible by "
                f"tensor({self.tensor_model_parallel_size}) x pipeline({self.pipeline_model_parallel_size})"
                f" x context({self.context_parallel_size}) = {mp}"
            )
        dp = world_size // mp
        if self.data_parallel_size is not None and self.data_parallel_size != dp:
            raise ConfigError(
                f"parallel.data_parallel_size = {self.data_parallel_size}, but world size {world_size} / "
                f"(tp*pp*cp = {mp}) = {dp}"
            )
        ep = self.expert_model_parallel_size
        if (dp * self.context_parallel_size) % ep:
            raise ConfigError(
                f"parallel.expert_model_parallel_size {ep} must divide data-parallel x context-parallel "
                f"size {dp * self.context_parallel_size} (megatron-core splits experts inside that group)"
            )
        return dp


def hf_num_experts(hf: dict) -> int:
    """Routed experts per layer of an HF config (0 for a dense model).

    Published Qwen3-MoE configs say `num_experts`; transformers 5 writes `num_local_experts`.
    """
    return int(hf.get("num_experts") or hf.get("num_local_experts") or 0)
