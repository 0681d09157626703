"""Prove a conversion: the megatron model and transformers give the same logits on the same tokens.

`megatron_logits` runs any TP/PP layout through megatron-core's pipeline schedule and returns the
full-vocabulary logits on every rank; `compare_logits` is the pure comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region

from conversion.convert import build_for_conversion, model_parallel
from conversion.hf_config import check_layout, read_hf_config
from conversion.lora import load_lora_checkpoint, lora_settings
from conversion.mapping import bare_model
from conversion.weights import load_hf_weights
from nemo_recipes.checkpoint.files import is_hf_dir
from nemo_recipes.checkpoint.manager import load_model_weights
from nemo_recipes.launcher import read_launch_env

PROMPTS = (
    "The quick brown fox jumps over the lazy dog.",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "小红书上最受欢迎的旅行目的地是哪里？请给出三个建议。",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n",
)
RANDOM_PROMPT_TOKENS = 48


@dataclass(frozen=True)
class LogitsReport:
    """Logits of the converted model against the reference, over all compared positions."""

    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    """Fraction of positions where both pick the same next token."""
    num_positions: int

    def passed(self, max_abs_diff: float, min_top1_agreement: float) -> bool:
        return self.max_abs_diff <= max_abs_diff and self.top1_agreement >= min_top1_agreement

    def summary(self) -> str:
        return (
            f"max_abs_diff={self.max_abs_diff:.3e} mean_abs_diff={self.mean_abs_diff:.3e} "
            f"top1_agreement={self.top1_agreement:.4f} positions={self.num_positions}"
        )


def compare_logits(reference: list[torch.Tensor], test: list[torch.Tensor]) -> LogitsReport:
    """Compare [seq, vocab] logits pairwise (in float32)."""
    ref = torch.cat([r.float().reshape(-1, r.shape[-1]) for r in reference])
    got = torch.cat([t.float().reshape(-1, t.shape[-1]) for t in test])
    if ref.shape != got.shape:
        raise ValueError(f"logits shapes differ: {tuple(ref.shape)} vs {tuple(got.shape)}")
    diff = (ref - got).abs()
    agree = (ref.argmax(-1) == got.argmax(-1)).float().mean()
    return LogitsReport(diff.max().item(), diff.mean().item(), agree.item(), ref.shape[0])


def megatron_logits(model_chunks: list, token_ids: list[int]) -> torch.Tensor:
    """[len, vocab] float32 logits of one sequence, on every rank (collective over the world)."""
    tokens = torch.tensor([token_ids])
    positions = torch.arange(len(token_ids))[None]

    def step(data_iterator, chunk):
        next(data_iterator)
        output = chunk(tokens, positions, None)

        def collect(out, non_loss_data=True):
            return gather_from_tensor_model_parallel_region(out).float()

        return output, collect

    for chunk in model_chunks:
        chunk.eval()
    with torch.no_grad():
        outputs = get_forward_backward_func()(
            forward_step_func=step,
            data_iterator=[iter([None]) for _ in model_chunks] if len(model_chunks) > 1 else iter([None]),
            model=model_chunks,
            num_microbatches=1,
            seq_length=len(token_ids),
            micro_batch_size=1,
            forward_only=True,
            collect_non_loss_data=True,
        )
    vocab = bare_model(model_chunks[0]).vocab_size
    logits = outputs[0][0] if outputs else torch.empty(len(token_ids), vocab)
    dist.broadcast(
        logits.contiguous(),
        src=parallel_state.get_pipeline_model_parallel_last_rank(),
        group=parallel_state.get_pipeline_model_parallel_group(),
    )
    return logits


def verify_prompts(hf_dir: Path, vocab_size: int) -> list[list[int]]:
    """Token ids of the fixed prompts (tokenizer of `hf_dir`), else seeded random ids."""
    if (hf_dir / "tokenizer.json").is_file() or (hf_dir / "tokenizer.model").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        return [tokenizer.encode(p, add_special_tokens=False) for p in PROMPTS]
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(0, vocab_size, (RANDOM_PROMPT_TOKENS,), generator=gen).tolist() for _ in PROMPTS]


def hf_logits(hf_dir: Path, prompts: list[list[int]]) -> list[torch.Tensor]:
    """[len, vocab] float32 logits of transformers' model for each prompt."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return [model(torch.tensor([p])).logits[0].float() for p in prompts]


def verify(hf_dir: Path, ckpt: Path, tp: int = 1, pp: int = 1) -> LogitsReport | None:
    """Logits of `ckpt` (our checkpoint, a LoRA one on its base, or an HF directory), run in megatron
    at fp32, vs `hf_dir`.

    Collective; the report is returned on global rank 0 (None elsewhere), which alone runs transformers.
    """
    hf = read_hf_config(hf_dir)
    check_layout(hf, tp, pp, hf_dir / "config.json")
    prompts = verify_prompts(hf_dir, hf["vocab_size"])
    first = read_launch_env().rank == 0
    reference = hf_logits(hf_dir, prompts) if first else None
    with model_parallel(tp, pp) as parallel:
        lora = None if is_hf_dir(ckpt) else lora_settings(ckpt)
        chunks, _ = build_for_conversion(hf, "float32", parallel, lora)
        if is_hf_dir(ckpt):  # straight through the mapping: verify must not read a cached import
            load_hf_weights(chunks, ckpt)
        elif lora is not None:  # the adapters unmerged, on their base
            load_lora_checkpoint(ckpt, chunks)
        else:
            load_model_weights(ckpt, chunks)
        test = [megatron_logits(chunks, p) for p in prompts]
    return compare_logits(reference, test) if first else None
