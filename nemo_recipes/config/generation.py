"""How a model is asked to generate: the engine (one per run) and a generation section per use. Torch-free.

Three uses generate with the same engine and the same kind of section, named `generation` in each:
GRPO rollouts (`grpo.generation`), the stage-2 rehearsal (`sft_data.generation`) and evaluation
(`eval.generation`). They differ only in their defaults (a subclass per use). The engine describes the
machine, not the use, so a run states it once (`engine`), and its unset fields take the device's
defaults when an engine starts (`EngineConfig.resolved`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from nemo_recipes.config.loader import StrictModel

CPU_KV_CACHE_BYTES = 64 << 20
"""vLLM on CPU needs an explicit KV-cache size (its default asks for most of the RAM)."""
GPU_MEMORY_BESIDE_TRAINER = 0.6
GPU_MEMORY_ALONE = 0.85


class GenerationConfig(StrictModel):
    """Token budgets and sampling of one use (defaults: GRPO rollouts)."""

    max_prompt_tokens: PositiveInt = 256
    """Longest prompt, in tokens of the model's tokenizer; a longer one is an error naming its record."""
    max_response_tokens: PositiveInt = 256
    """Most tokens generated per response (a longer response is cut: finish reason `length`)."""
    num_generations_per_prompt: PositiveInt = 8
    """Responses per prompt: the GRPO group size (at least 2 there), the rehearsal's best-of-n, eval's k."""
    temperature: float = Field(1.0, ge=0.0)
    """The policy is softmax(logits / temperature) in both the engine and the trainer's logprobs
    (GRPO needs it above 0); 0 is greedy decoding."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling; 1 = off (GRPO's logprobs match the trainer's exactly only with 1)."""
    top_k: int = Field(-1, ge=-1)
    """Sample among the k most likely tokens; -1 = off."""
    stop_at_eos: bool = True
    """End a response at the end-of-sequence token (off: always generate max_response_tokens)."""

    @property
    def max_sequence_tokens(self) -> int:
        """Prompt plus response: the longest sequence this use needs (the engine's context length)."""
        return self.max_prompt_tokens + self.max_response_tokens


class RehearsalGenerationConfig(GenerationConfig):
    """Stage 2's rehearsal: the stage-1 model answers each general prompt best-of-n (the paper: 8)."""

    max_prompt_tokens: PositiveInt = 1024
    """Longest rehearsal prompt (tokens); a longer one is an error naming its record."""


class EvalGenerationConfig(GenerationConfig):
    """Evaluation: one greedy response per item (default), or the mean over k sampled ones (avg@k)."""

    max_prompt_tokens: PositiveInt = 1024
    """Longest evaluation prompt (tokens); a longer one is an error naming its record."""
    num_generations_per_prompt: PositiveInt = 1
    """k responses per item: an item's value is the mean of its k responses' metric values (avg@k, the
    expected score of one response sampled at `temperature`); k > 1 needs a temperature above 0."""
    temperature: float = Field(0.0, ge=0.0)
    """0: greedy decoding."""

    @model_validator(mode="after")
    def _sampled_when_several(self) -> EvalGenerationConfig:
        if self.num_generations_per_prompt > 1 and self.temperature == 0:
            raise ValueError(
                f"eval.generation.num_generations_per_prompt {self.num_generations_per_prompt} needs "
                "eval.generation.temperature above 0 (greedy decoding gives the same response k times)"
            )
        return self


class EngineConfig(StrictModel):
    """The inference engine (vLLM) of every use in a run: GRPO rollouts, rehearsal and evaluation.

    A null field takes the default of the device the engine starts on and of its placement (beside a
    trainer in GRPO, alone in eval and rehearsal): see `resolved`.
    """

    backend: Literal["vllm"] = "vllm"
    """The engine library (a second backend is one module implementing rollout.engine.RolloutEngine)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """auto: the policy's dtype (model.dtype) in GRPO, the model directory's config.json elsewhere."""
    kv_cache_memory_bytes: PositiveInt | None = None
    """KV-cache size in bytes; null: 64 MiB on CPU (vLLM needs a size there), sized from
    gpu_memory_utilization on a GPU."""
    gpu_memory_utilization: float | None = Field(None, gt=0.0, lt=1.0)
    """Share of the GPU's memory for the engine; null: 0.6 beside the trainer (GRPO), 0.85 alone."""
    enforce_eager: bool | None = None
    """Run without CUDA graphs (faster start, slower decode); null: true on CPU, false on a GPU."""
    sleep_during_training: bool = True
    """GPU: free the KV cache and weights while the trainer steps (vLLM sleep mode). No-op on CPU."""

    def resolved(self, on_gpu: bool, beside_trainer: bool) -> EngineConfig:
        """This config with each null field set to the default for the device and placement."""
        defaults = {
            "kv_cache_memory_bytes": None if on_gpu else CPU_KV_CACHE_BYTES,
            "gpu_memory_utilization": GPU_MEMORY_BESIDE_TRAINER if beside_trainer else GPU_MEMORY_ALONE,
            "enforce_eager": not on_gpu,
        }
        unset = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return self.model_copy(update=unset)
