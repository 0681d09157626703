"""The run config tree: one typed section per concern, defaults in code, cross-field rules. Torch-free.

A recipe YAML holds only what differs from these defaults; `loader.load_config` merges it with `--set`
overrides and validates once. `check_launch` adds the rules that need the world size. Each section
lives in the module named for it (model, training, rl, generation, stage2, evaluation, pipeline);
settings used by several stages (seed, task table, engine) are stated once, here at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from nemo_recipes.config.evaluation import EvalConfig
from nemo_recipes.config.generation import EngineConfig
from nemo_recipes.config.loader import ConfigError, StrictModel
from nemo_recipes.config.model import ModelConfig, ParallelConfig, hf_num_experts
from nemo_recipes.config.pipeline import PipelineConfig
from nemo_recipes.config.rl import GRPOConfig
from nemo_recipes.config.stage2 import DiagnosisConfig, SFTDataConfig
from nemo_recipes.config.training import LoggingConfig, SFTConfig

RENAMED_KEYS: dict[str, str] = {
    "grpo.sampling": "grpo.generation",
    "grpo.max_prompt_tokens": "grpo.generation.max_prompt_tokens",
    "grpo.engine": "engine",
    "grpo.task_table": "task_table",
    "sft_data.task_table": "task_table",
    "sft_data.engine": "engine",
    "sft_data.best_of_n": "sft_data.generation.num_generations_per_prompt",
    "sft_data.temperature": "sft_data.generation.temperature",
    "sft_data.max_prompt_tokens": "sft_data.generation.max_prompt_tokens",
    "sft_data.max_response_tokens": "sft_data.generation.max_response_tokens",
    "eval.task_table": "task_table",
    "eval.engine": "engine",
    "eval.seed": "seed",
    "eval.dtype": "engine.dtype",
    "eval.hf_config": "model.hf_config",
    "eval.tokenizer": "model.tokenizer",
    "eval.temperature": "eval.generation.temperature",
    "eval.max_prompt_tokens": "eval.generation.max_prompt_tokens",
    "eval.max_response_tokens": "eval.generation.max_response_tokens",
    "sft.task_table": "(removed: task records are read with the run's task_table when "
    "sft.record_format is task)",
    "grpo.micro_batch_size": "grpo.max_tokens_per_micro_batch",
    "engine.max_model_len": "(removed: each use's engine length is its generation.max_prompt_tokens "
    "+ max_response_tokens)",
    **{
        key: f"eval.{key}"  # an eval config of `redone eval --config` before it took a run recipe
        for key in ("data", "suites", "tasks", "batch_size", "lm_eval_tasks", "lm_eval_include_path")
    },
}
"""Keys of earlier versions -> where the setting lives now: a recipe using one fails naming the new key."""


class RunConfig(StrictModel):
    """The whole run. `redone sft` uses model, parallel, logging, sft; `redone grpo` uses grpo, not sft."""

    renamed_keys: ClassVar[dict[str, str]] = RENAMED_KEYS

    run_dir: Path = Path("runs/default")
    """Where the run writes: resolved config, provenance, metrics, checkpoints (a pipeline: its units)."""
    seed: int = 1234
    """Seeds everything: initialisation, data order, sampling (rollouts, rehearsal, eval) of every unit."""
    task_table: str = "sns_demo"
    """The run's task table (reward and metrics per task): a shipped name, a YAML file or a directory
    (docs/tasks.md); GRPO, stage 2's data and evaluation all read it."""
    general_task_table: str | None = "general"
    """The general tasks (stage 2's rehearsal prompts, the general suite), merged with task_table: the
    shipped `general` table by default, or yours; null when task_table defines them itself (or none)."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The model: architecture, tokenizer, starting weights, numerics."""
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    """The parallel layout of training (data parallel: what the world size leaves)."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """The inference engine of GRPO rollouts, rehearsal and evaluation (null fields: device defaults)."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Metrics: interval, TensorBoard, W&B, progress bar."""
    sft: SFTConfig = Field(default_factory=SFTConfig)
    """The SFT stage (`redone sft`; stage 2 of the pipeline)."""
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    """The RL stage (`redone grpo`; stages 1 and 3 of the pipeline)."""
    diagnosis: DiagnosisConfig = Field(default_factory=lambda: DiagnosisConfig(k_weakest=3))
    """Which tasks go to stage 2 (`redone diagnose`); default rule: the 3 weakest."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """What evaluation scores (`redone eval`; every unit of the pipeline)."""
    sft_data: SFTDataConfig = Field(default_factory=SFTDataConfig)
    """Stage 2's data (`redone build-sft-data`)."""
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    """`redone run`: which units, where they run, how stage 3 weighs hard tasks."""

    @property
    def routing_replay(self) -> bool:
        """`grpo.routing_replay` for this run's model: null is on for a mixture-of-experts model."""
        replay = self.grpo.routing_replay
        return hf_num_experts(self.model.hf_config_dict()) > 0 if replay is None else replay

    @property
    def task_tables(self) -> tuple[str, ...]:
        """The tables every command merges: `load_task_table(*cfg.task_tables)`."""
        general = self.general_task_table
        return (
            (self.task_table,)
            if general is None or general == self.task_table
            else (self.task_table, general)
        )


def _batch_rule(cfg: RunConfig, stage: Literal["sft", "grpo"], dp: int) -> str | None:
    """What is wrong with a stage's batch at data-parallel size `dp` (None: nothing)."""
    if stage == "sft":
        sft = cfg.sft
        if sft.global_batch_size % (sft.micro_batch_size * dp):
            return (
                f"sft.global_batch_size {sft.global_batch_size} must be a multiple of sft.micro_batch_size "
                f"{sft.micro_batch_size} x data-parallel size {dp}"
            )
        return None
    grpo = cfg.grpo
    responses = grpo.responses_per_step // grpo.mini_batches_per_step
    if responses < dp:
        return (
            f"grpo responses per mini-batch (prompts_per_step / mini_batches_per_step x group size) "
            f"{responses} must be at least the data-parallel size {dp} (each rank trains on some)"
        )
    return None


def _context_parallel_rule(cfg: RunConfig, experts: int) -> str | None:
    """What context parallelism (packed rows sharded per rank, SFT and GRPO alike) is not combined with
    yet, or None."""
    par = cfg.parallel
    if par.pipeline_model_parallel_size > 1:
        return (
            "with parallel.pipeline_model_parallel_size > 1 is not supported: a rank's share of a packed "
            "row varies in length, and pipeline stages pass activations of one fixed shape"
        )
    if experts:
        return (
            f"with a mixture-of-experts model ({cfg.model.hf_config}) is not supported: the routing replay "
            "and the expert load metrics are kept per whole row, not per context-parallel rank"
        )
    if par.sequence_parallel:
        return (
            "with parallel.sequence_parallel is not supported: a rank's share of a packed row is not "
            "padded to a multiple of the tensor-parallel size"
        )
    return None


def check_launch(cfg: RunConfig, world_size: int, stage: Literal["sft", "grpo"] = "sft") -> int:
    """Cross-field rules that need the world size; returns the data-parallel size.

    Run on every rank before any model is built, so a bad layout fails in seconds.
    """
    par = cfg.parallel
    dp = par.data_parallel_for(world_size)
    if (problem := _batch_rule(cfg, stage, dp)) is not None:
        raise ConfigError(problem)
    seq_length, seq_key = (
        (cfg.sft.seq_length, "sft.seq_length")
        if stage == "sft"
        else (cfg.grpo.seq_length, "grpo.generation.max_prompt_tokens + max_response_tokens")
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
    if experts and par.tensor_model_parallel_size > 1 and not par.sequence_parallel:
        raise ConfigError(
            f"parallel.tensor_model_parallel_size {par.tensor_model_parallel_size} with a mixture-of-experts "
            "model needs parallel.sequence_parallel: true (megatron-core 0.16.1 refuses to train an MoE "
            "layer under tensor parallelism without it)"
        )
    tp = par.tensor_model_parallel_size
    if par.sequence_parallel and tp == 1:
        raise ConfigError(
            "parallel.sequence_parallel needs tensor_model_parallel_size > 1 (it splits the sequence "
            "over the tensor-parallel ranks)"
        )
    if par.sequence_parallel and stage == "sft" and (cfg.sft.micro_batch_size * cfg.sft.seq_length) % tp:
        raise ConfigError(
            f"parallel.sequence_parallel: a micro-batch row of sft.micro_batch_size x sft.seq_length = "
            f"{cfg.sft.micro_batch_size} x {cfg.sft.seq_length} tokens must be divisible by "
            f"tensor_model_parallel_size {tp} (each tensor-parallel rank holds an equal slice of it)"
        )
    if par.sequence_parallel and cfg.model.lora is not None:
        raise ConfigError(
            "model.lora with parallel.sequence_parallel is not supported: the adapters take their base "
            "linear's input whole, not sliced along the sequence (turn sequence_parallel off)"
        )
    if par.virtual_pipeline_model_parallel_size and par.pipeline_model_parallel_size < 2:
        raise ConfigError(
            "parallel.virtual_pipeline_model_parallel_size needs pipeline_model_parallel_size >= 2"
        )
    if par.context_parallel_size > 1 and (problem := _context_parallel_rule(cfg, experts)) is not None:
        raise ConfigError(f"parallel.context_parallel_size {par.context_parallel_size} {problem}")
    if stage == "grpo" and cfg.grpo.routing_replay and not experts:
        raise ConfigError(
            f"grpo.routing_replay: true needs a mixture-of-experts model; {cfg.model.hf_config} has no "
            "experts (leave it null: on for MoE models, off for dense ones)"
        )
    if stage == "grpo" and experts and cfg.routing_replay and cfg.engine.enforce_eager is False:
        raise ConfigError(
            "grpo.routing_replay with engine.enforce_eager: false: the engine reports its routing from a "
            "hook that a CUDA graph would skip; leave engine.enforce_eager null (eager then) or turn "
            "grpo.routing_replay off"
        )
    if stage == "grpo" and experts and cfg.routing_replay and cfg.model.recompute == "full":
        raise ConfigError(
            "grpo.routing_replay with model.recompute: full: recomputation re-runs the routers during the "
            "backward pass, where the replayed routing is not kept; use model.recompute: selective or null"
        )
    if stage == "grpo" and cfg.engine.dtype not in ("auto", cfg.model.dtype):
        raise ConfigError(
            f"engine.dtype {cfg.engine.dtype} differs from model.dtype {cfg.model.dtype}: GRPO's engine "
            "samples the trainer's policy in the trainer's dtype (use auto)"
        )
    lora = cfg.model.lora
    if lora is not None and cfg.model.init_from is None:
        raise ConfigError("model.lora needs model.init_from: the frozen base the adapters train on")
    if lora is not None and lora.rank % par.tensor_model_parallel_size:
        raise ConfigError(
            f"model.lora.rank {lora.rank} must be divisible by parallel.tensor_model_parallel_size "
            f"{par.tensor_model_parallel_size} (A of a column-parallel layer is split along the rank)"
        )
    if stage == "grpo" and cfg.grpo.loss.kl_coef > 0 and cfg.model.init_from is None:
        raise ConfigError(
            f"grpo.loss.kl_coef {cfg.grpo.loss.kl_coef} needs a reference model: set model.init_from "
            "(the checkpoint or HF directory the policy starts from), or kl_coef 0"
        )
    return dp
