"""The run config tree: typed sections, defaults in code, cross-field rules. Torch-free.

A recipe YAML holds only what differs from these defaults; `config_loader.load_config` merges it with
`--set` overrides and validates once. `check_launch` adds the rules that need the world size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from nemo_recipes.config_loader import ConfigError, StrictModel
from nemo_recipes.eval_config import EvalConfig
from nemo_recipes.pipeline_config import PipelineConfig
from nemo_recipes.rl_config import (
    DynamicSamplingConfig,
    OverlongPenaltyConfig,
    PolicyLossConfig,
    RolloutEngineConfig,
    SamplingConfig,
)

ASSETS = Path(__file__).parent / "assets"


def resolve_asset(name_or_path: str, kind: str) -> Path:
    """A shipped asset by name (`assets/<kind>/<name>`) or a filesystem path."""
    shipped = ASSETS / kind / name_or_path
    if shipped.exists():
        return shipped
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    known = sorted(p.name for p in (ASSETS / kind).iterdir()) if (ASSETS / kind).is_dir() else []
    raise ConfigError(f"{kind} {name_or_path!r}: neither a path nor a shipped {kind} (shipped: {known})")


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
    fp8: Literal["e4m3", "hybrid"] | None = None
    """FP8 recipe passed to megatron-core; needs Transformer Engine on a GPU."""
    init_method_std: PositiveFloat = 0.02
    recompute: Literal["full", "selective"] | None = None

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
    pipeline_model_parallel_size: PositiveInt = 1
    virtual_pipeline_model_parallel_size: PositiveInt | None = None
    context_parallel_size: PositiveInt = 1
    expert_model_parallel_size: PositiveInt = 1
    """Mixture-of-experts models: experts split over this many ranks of the data-parallel group."""
    sequence_parallel: bool = False
    data_parallel_size: PositiveInt | None = None
    """Optional: if given, must equal world_size / (tp * pp * cp)."""
    use_distributed_optimizer: bool = False
    overlap_grad_reduce: bool = False
    overlap_param_gather: bool = False

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


class OptimizerConfig(StrictModel):
    """AdamW through megatron-core's optimizer, and the learning-rate schedule."""

    lr: PositiveFloat = 5e-6
    min_lr: float = Field(0.0, ge=0.0)
    weight_decay: float = Field(0.1, ge=0.0)
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0)
    adam_beta2: float = Field(0.95, ge=0.0, lt=1.0)
    adam_eps: PositiveFloat = 1e-8
    clip_grad: float = Field(1.0, ge=0.0)
    """Global grad-norm clip; 0 disables."""
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"
    warmup_steps: int | None = Field(None, ge=0)
    warmup_fraction: float = Field(0.1, ge=0.0, le=1.0)
    """Used when warmup_steps is None: a fraction of the stage's optimizer steps."""

    def warmup_for(self, total_steps: int) -> int:
        return self.warmup_steps if self.warmup_steps is not None else int(self.warmup_fraction * total_steps)


class CheckpointConfig(StrictModel):
    save_interval_steps: PositiveInt = 100
    keep_last: PositiveInt = 2
    resume: Literal["auto", "never"] = "auto"
    """auto: continue from the run directory's latest checkpoint if there is one."""
    optimizer_format: Literal["dp_reshardable", "fully_reshardable"] = "dp_reshardable"
    """Distributed-optimizer state layout on disk (see docs/checkpoints.md)."""


class LoggingConfig(StrictModel):
    log_interval_steps: PositiveInt = 1
    tensorboard: bool = True
    wandb_project: str | None = None
    """Log to Weights & Biases under this project (requires `wandb` installed)."""
    progress_bar: bool = True


class SFTConfig(StrictModel):
    """The SFT stage: data, batching, schedule."""

    train_data: list[str] = Field(default_factory=lambda: ["toy_chat/train.jsonl"])
    """JSONL chat record files (data-format.md); shipped names resolve under assets/data."""
    valid_data: list[str] = Field(default_factory=lambda: ["toy_chat/valid.jsonl"])
    on_bad_record: Literal["raise", "skip"] = "raise"
    seq_length: PositiveInt = 256
    packing: bool = True
    truncate: bool = False
    """Truncate conversations longer than seq_length (otherwise they are an error)."""
    micro_batch_size: PositiveInt = 2
    global_batch_size: PositiveInt = 8
    """Rows (packed sequences) per optimizer step, over all data-parallel ranks."""
    train_steps: PositiveInt | None = None
    epochs: PositiveFloat | None = 2.0
    """Used when train_steps is None."""
    eval_interval_steps: PositiveInt = 50
    eval_max_rows: PositiveInt = 64
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> SFTConfig:
        if self.train_steps is None and self.epochs is None:
            raise ValueError("set sft.train_steps or sft.epochs")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a multiple of micro_batch_size "
                f"{self.micro_batch_size}"
            )
        return self


class RLOptimizerConfig(OptimizerConfig):
    """RL defaults (the recipe): constant learning rate after a 10-step warm-up."""

    lr_schedule: Literal["cosine", "constant", "linear"] = "constant"
    warmup_steps: int | None = Field(10, ge=0)


class RLCheckpointConfig(CheckpointConfig):
    save_interval_steps: PositiveInt = 20


class GRPOConfig(StrictModel):
    """The RL stage (stages 1 and 3 of the recipe): prompts, batch, the objective, the engine."""

    task_table: str = "sns_demo"
    """Task table (reward per task): a shipped name, a YAML file or a directory (docs/tasks.md)."""
    train_data: list[str] = Field(default_factory=lambda: ["sns_demo/train.jsonl"])
    """JSONL task records; shipped names resolve under assets/data."""
    on_bad_record: Literal["raise", "skip"] = "raise"
    task_weights: dict[str, PositiveFloat] = Field(default_factory=dict)
    """Sampling weight per task name (balanced across tasks); unlisted tasks weigh 1."""
    prompts_per_step: PositiveInt = 8
    """Prompt groups per optimizer step, over all data-parallel ranks (after dynamic sampling)."""
    mini_batches_per_step: PositiveInt = 1
    """Optimizer updates per rollout batch: the groups are split into this many mini-batches."""
    micro_batch_size: PositiveInt = 2
    """Responses per forward/backward micro-batch."""
    max_prompt_tokens: PositiveInt = 256
    """Longer prompts are an error naming the record (file:line)."""
    train_steps: PositiveInt = 100
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    engine: RolloutEngineConfig = Field(default_factory=RolloutEngineConfig)
    loss: PolicyLossConfig = Field(default_factory=PolicyLossConfig)
    dynamic_sampling: DynamicSamplingConfig = Field(default_factory=DynamicSamplingConfig)
    overlong: OverlongPenaltyConfig = Field(default_factory=OverlongPenaltyConfig)
    optimizer: RLOptimizerConfig = Field(default_factory=RLOptimizerConfig)
    checkpoint: RLCheckpointConfig = Field(default_factory=RLCheckpointConfig)

    @property
    def seq_length(self) -> int:
        """Tokens per trained row: the longest prompt plus the longest response."""
        return self.max_prompt_tokens + self.sampling.max_response_tokens

    @property
    def responses_per_step(self) -> int:
        return self.prompts_per_step * self.sampling.num_generations_per_prompt

    @model_validator(mode="after")
    def _batch_shapes(self) -> GRPOConfig:
        if self.sampling.num_generations_per_prompt < 2:
            raise ValueError("sampling.num_generations_per_prompt must be at least 2 (a group to compare)")
        if self.sampling.temperature <= 0:
            raise ValueError(
                "sampling.temperature must be above 0 (the policy is softmax(logits / temperature))"
            )
        if self.prompts_per_step % self.mini_batches_per_step:
            raise ValueError(
                f"prompts_per_step {self.prompts_per_step} is not a multiple of mini_batches_per_step "
                f"{self.mini_batches_per_step}"
            )
        if self.overlong.enabled and self.overlong.buffer_tokens >= self.sampling.max_response_tokens:
            raise ValueError(
                f"overlong.buffer_tokens {self.overlong.buffer_tokens} must be below "
                f"sampling.max_response_tokens {self.sampling.max_response_tokens}"
            )
        return self


class DiagnosisConfig(StrictModel):
    """Which tasks go into stage 2's failure bucket: any enabled rule selects a task (docs/diagnosis.md)."""

    model: Path | None = None
    """The model diagnosed (stage 1's checkpoint, or an HF directory)."""
    base_model: Path | None = None
    """The model before stage 1, for the regression rule (and the report)."""
    model_report: Path | None = None
    """An existing eval report (report.json or its directory) of `model`: used instead of evaluating."""
    base_report: Path | None = None
    """Likewise for `base_model`."""
    suites: list[Literal["sns", "translation", "general"]] = Field(
        default_factory=lambda: ["sns", "translation"], min_length=1
    )
    """Whose tasks can be selected (general tasks are rehearsal, not targets, by default)."""
    below_target: float | None = Field(None, ge=0, le=100)
    """Select a task scoring below this (0-100)."""
    regression_margin: float | None = Field(None, ge=0)
    """Select a task scoring more than this below the base model (needs base_model)."""
    k_weakest: PositiveInt | None = None
    """Select the k lowest-scoring tasks."""
    reference_scores: dict[str, float] = Field(default_factory=dict)
    """Scores to compare with (e.g. a stronger model's, 0-100), by task."""
    reference_gap: float | None = Field(None, ge=0)
    """Select a task scoring more than this below its reference score."""

    @model_validator(mode="after")
    def _some_rule(self) -> DiagnosisConfig:
        rules = (self.below_target, self.regression_margin, self.k_weakest, self.reference_gap)
        if all(r is None for r in rules):
            raise ValueError("no rule enabled: set below_target, regression_margin, k_weakest, reference_gap")
        if self.reference_gap is not None and not self.reference_scores:
            raise ValueError("reference_gap needs reference_scores")
        return self


class SFTDataConfig(StrictModel):
    """Stage 2's data: the failing tasks' records plus judged best-of-n rehearsal (docs/diagnosis.md)."""

    diagnosis: Path | None = None
    """diagnosis.json naming the failing tasks (default: run_dir/diagnosis/diagnosis.json)."""
    task_table: str = "sns_demo"
    sns_data: list[str] = Field(default_factory=lambda: ["sns_demo/train.jsonl"])
    """Task records to draw the failing tasks' examples from (only their tasks are used)."""
    max_sns_records: PositiveInt | None = None
    """Cap on targeted records, split evenly over capabilities, then tasks (null: all of them)."""
    upweight: dict[str, PositiveInt] = Field(default_factory=dict)
    """meta key -> repeat count: records whose meta has that key truthy (rare cases) appear this often."""
    general_data: list[str] = Field(default_factory=lambda: ["sns_demo/train.jsonl"])
    """Task records of general-capability tasks: the rehearsal prompts."""
    rehearsal_ratio: float = Field(0.0625, ge=0.0, lt=1.0)
    """Share of general rehearsal in the built set (the paper: about 6%)."""
    rehearsal_model: Path | None = None
    """The model that answers the rehearsal prompts (stage 1's checkpoint or an HF directory)."""
    best_of_n: int = Field(8, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    max_prompt_tokens: PositiveInt = 1024
    max_response_tokens: PositiveInt = 256
    min_judge_score: float = Field(0.0, ge=0.0, le=1.0)
    """A rehearsal prompt whose best answer scores below this is dropped (counted)."""
    engine: RolloutEngineConfig = Field(default_factory=RolloutEngineConfig)


class RunConfig(StrictModel):
    """The whole run. `redone sft` uses model, parallel, logging, sft; `redone grpo` uses grpo, not sft."""

    run_dir: Path = Path("runs/default")
    seed: int = 1234
    model: ModelConfig = Field(default_factory=ModelConfig)
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    diagnosis: DiagnosisConfig = Field(default_factory=lambda: DiagnosisConfig(k_weakest=3))
    eval: EvalConfig = Field(default_factory=EvalConfig)
    sft_data: SFTDataConfig = Field(default_factory=SFTDataConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)


def hf_num_experts(hf: dict) -> int:
    """Routed experts per layer of an HF config (0 for a dense model).

    Published Qwen3-MoE configs say `num_experts`; transformers 5 writes `num_local_experts`.
    """
    return int(hf.get("num_experts") or hf.get("num_local_experts") or 0)


def _stage_batch(cfg: RunConfig, stage: Literal["sft", "grpo"]) -> tuple[int, str, int, int, str]:
    """(rows per optimizer step, what they are, micro-batch size, seq length, its key) of a stage."""
    if stage == "sft":
        sft = cfg.sft
        return (
            sft.global_batch_size,
            "sft.global_batch_size",
            sft.micro_batch_size,
            sft.seq_length,
            "sft.seq_length",
        )
    grpo = cfg.grpo
    rows = grpo.responses_per_step // grpo.mini_batches_per_step
    what = "grpo responses per mini-batch (prompts_per_step / mini_batches_per_step x group size)"
    seq_key = "grpo.max_prompt_tokens + grpo.sampling.max_response_tokens"
    return rows, what, grpo.micro_batch_size, grpo.seq_length, seq_key


def check_launch(cfg: RunConfig, world_size: int, stage: Literal["sft", "grpo"] = "sft") -> int:
    """Cross-field rules that need the world size; returns the data-parallel size.

    Run on every rank before any model is built, so a bad layout fails in seconds.
    """
    par = cfg.parallel
    dp = par.data_parallel_for(world_size)
    rows, what, micro_batch_size, seq_length, seq_key = _stage_batch(cfg, stage)
    if rows % (micro_batch_size * dp):
        raise ConfigError(
            f"{what} {rows} must be a multiple of {stage}.micro_batch_size {micro_batch_size} x "
            f"data-parallel size {dp}"
        )
    hf = cfg.model.hf_config_dict()
    max_pos = hf.get("max_position_embeddings")
    if max_pos is not None and seq_length > max_pos:
        raise ConfigError(f"{seq_key} = {seq_length} exceeds the model's max_position_embeddings {max_pos}")
    vocab = hf.get("vocab_size", 0)
    if vocab % par.tensor_model_parallel_size:
        raise ConfigError(
            f"model vocab_size {vocab} is not divisible by tensor_model_parallel_size "
            f"{par.tensor_model_parallel_size}"
        )
    heads, groups = hf.get("num_attention_heads", 0), hf.get("num_key_value_heads", 0)
    if heads % par.tensor_model_parallel_size or (groups and groups % par.tensor_model_parallel_size):
        raise ConfigError(
            f"attention heads ({heads}) and key/value heads ({groups}) must be divisible by "
            f"tensor_model_parallel_size {par.tensor_model_parallel_size}"
        )
    layers = hf.get("num_hidden_layers", 0)
    stages = par.pipeline_model_parallel_size * (par.virtual_pipeline_model_parallel_size or 1)
    if layers % stages:
        raise ConfigError(
            f"num_hidden_layers {layers} is not divisible by pipeline stages x virtual stages {stages}"
        )
    experts, ep = hf_num_experts(hf), par.expert_model_parallel_size
    if ep > 1 and (not experts or experts % ep):
        raise ConfigError(
            f"parallel.expert_model_parallel_size {ep} needs a mixture-of-experts model whose "
            f"num_experts is divisible by it; {cfg.model.hf_config} has num_experts {experts or None}"
        )
    if par.virtual_pipeline_model_parallel_size and par.pipeline_model_parallel_size < 2:
        raise ConfigError(
            "parallel.virtual_pipeline_model_parallel_size needs pipeline_model_parallel_size >= 2"
        )
    if stage == "grpo" and par.context_parallel_size > 1:
        raise ConfigError(
            f"parallel.context_parallel_size {par.context_parallel_size}: the GRPO stage does not support "
            "context parallelism yet (rollout rows are short; use tensor/pipeline/data parallelism)"
        )
    if stage == "grpo" and par.expert_model_parallel_size > 1:
        raise ConfigError(
            f"parallel.expert_model_parallel_size {par.expert_model_parallel_size}: expert parallelism is "
            "not supported in the GRPO stage yet (untested there); run MoE models there at size 1"
        )
    if stage == "grpo" and cfg.grpo.loss.kl_coef > 0 and cfg.model.init_from is None:
        raise ConfigError(
            f"grpo.loss.kl_coef {cfg.grpo.loss.kl_coef} needs a reference model: set model.init_from "
            "(the checkpoint or HF directory the policy starts from), or kl_coef 0"
        )
    return dp
