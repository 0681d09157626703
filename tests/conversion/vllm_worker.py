"""Serve an exported directory with vLLM and compare its logprobs with the trainer's (one process).

Usage: python -m tests.conversion.vllm_worker EXPORT_DIR CKPT_DIR OUT_JSON
The trainer side builds our megatron model from the export's config.json and loads the training
checkpoint; vLLM loads the export. Both score the same fixed chat sequence (fp32).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

CHAT = [
    {"role": "user", "content": "Write a two-line post about autumn in Chengdu."},
    {"role": "assistant", "content": "Golden ginkgo leaves, hot pot steam and tea houses."},
]
KV_CACHE_BYTES = 64 << 20


def trainer_logprobs(export_dir: Path, ckpt: Path, ids: list[int]) -> list[float]:
    """log p(ids[i] | ids[:i]) for i >= 1 from the megatron model holding the checkpoint."""
    import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

    from conversion.convert import build_for_conversion, model_parallel
    from conversion.hf_config import read_hf_config
    from conversion.verify import megatron_logits
    from nemo_recipes.checkpoint.manager import load_model_weights

    with model_parallel(1, 1) as parallel:
        chunks, _ = build_for_conversion(read_hf_config(export_dir), "float32", parallel)
        load_model_weights(ckpt, chunks)
        logits = megatron_logits(chunks, ids)
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return [logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))]


def vllm_logprobs(export_dir: Path, ids: list[int]) -> tuple[list[float], list[int]]:
    """vLLM's prompt logprobs of the same sequence, and a short greedy continuation."""
    from vllm import LLM, SamplingParams
    from vllm.distributed import destroy_distributed_environment, destroy_model_parallel
    from vllm.inputs import TokensPrompt

    llm = LLM(
        model=str(export_dir),
        dtype="float32",
        enforce_eager=True,
        max_model_len=256,
        kv_cache_memory_bytes=KV_CACHE_BYTES,
        seed=0,
    )
    score = SamplingParams(max_tokens=1, prompt_logprobs=0)
    scored = llm.generate([TokensPrompt(prompt_token_ids=ids)], score)
    per_position = scored[0].prompt_logprobs[1:]
    logprobs = [entry[tok].logprob for entry, tok in zip(per_position, ids[1:], strict=True)]
    greedy_params = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)  # 8 tokens, even after EOS
    greedy = llm.generate([TokensPrompt(prompt_token_ids=ids[:12])], greedy_params)
    del llm
    destroy_model_parallel()
    destroy_distributed_environment()  # vLLM's process group; the trainer side makes its own
    return logprobs, list(greedy[0].outputs[0].token_ids)


def main(export_dir: Path, ckpt: Path, out: Path) -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    ids = AutoTokenizer.from_pretrained(export_dir).apply_chat_template(CHAT, return_dict=True)["input_ids"]
    # vLLM first: the CPU device layer megatron needs slows vLLM's first batch ~8x when active.
    served, generated = vllm_logprobs(export_dir, ids)
    trainer = trainer_logprobs(export_dir, ckpt, ids)
    diff = max(abs(a - b) for a, b in zip(trainer, served, strict=True))
    report = {"num_tokens": len(ids), "max_abs_diff": diff, "generated": generated, "trainer": trainer[:5]}
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
