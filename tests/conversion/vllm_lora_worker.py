"""Serve a base HF directory with a PEFT adapter in vLLM (`enable_lora`) and compare its logprobs with
the trainer's LoRA model (adapters unmerged on the base) on the same sequence (fp32, one process).

Usage: python -m tests.conversion.vllm_lora_worker BASE_HF_DIR ADAPTER_DIR LORA_CKPT OUT_JSON
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

from tests.conversion.vllm_worker import CHAT, KV_CACHE_BYTES


def trainer_logprobs(base_hf: Path, ckpt: Path, ids: list[int]) -> list[float]:
    """log p(ids[i] | ids[:i]) for i >= 1 from the megatron model with the checkpoint's adapters."""
    import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

    from conversion.convert import build_for_conversion, model_parallel
    from conversion.hf_config import read_hf_config
    from conversion.lora import load_lora_checkpoint, lora_settings
    from conversion.verify import megatron_logits

    with model_parallel(1, 1) as parallel:
        chunks, _ = build_for_conversion(read_hf_config(base_hf), "float32", parallel, lora_settings(ckpt))
        load_lora_checkpoint(ckpt, chunks)
        logits = megatron_logits(chunks, ids)
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return [logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))]


def vllm_logprobs(base_hf: Path, adapter: Path, ids: list[int], rank: int) -> list[float]:
    """vLLM's prompt logprobs of the sequence, served as the base with the adapter."""
    from vllm import LLM, SamplingParams
    from vllm.distributed import destroy_distributed_environment, destroy_model_parallel
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    llm = LLM(
        model=str(base_hf),
        dtype="float32",
        enforce_eager=True,
        max_model_len=256,
        kv_cache_memory_bytes=KV_CACHE_BYTES,
        seed=0,
        enable_lora=True,
        max_lora_rank=rank,
        max_loras=1,
    )
    score = SamplingParams(max_tokens=1, prompt_logprobs=0)
    request = LoRARequest("adapter", 1, str(adapter))
    scored = llm.generate([TokensPrompt(prompt_token_ids=ids)], score, lora_request=request)
    per_position = scored[0].prompt_logprobs[1:]
    del llm
    destroy_model_parallel()
    destroy_distributed_environment()
    return [entry[tok].logprob for entry, tok in zip(per_position, ids[1:], strict=True)]


def main(base_hf: Path, adapter: Path, ckpt: Path, out: Path) -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    ids = AutoTokenizer.from_pretrained(base_hf).apply_chat_template(CHAT, return_dict=True)["input_ids"]
    rank = json.loads((adapter / "adapter_config.json").read_text())["r"]
    served = vllm_logprobs(base_hf, adapter, ids, rank)  # vLLM first (see tests/conversion/vllm_worker.py)
    trainer = trainer_logprobs(base_hf, ckpt, ids)
    diff = max(abs(a - b) for a, b in zip(trainer, served, strict=True))
    out.write_text(
        json.dumps({"num_tokens": len(ids), "max_abs_diff": diff, "trainer": trainer[:5]}, indent=1)
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
